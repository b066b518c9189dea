// Durable audit appends on the PostgreSQL store (pg-log.ts), with one and with three writers (three
// replicas: each its own pool, key and data dir) on one database: the same 1,000 sequential
// "sessions" as the SQLite case, spread over the writers, each appending its next statement event
// only once the previous one is committed. A commit is one transaction holding the head row's lock,
// so replicas queue on it; the figure says what that costs. The database
// (hoop_bench_audit_<pid>_<n>) lives on the local server and is dropped afterwards.
// `audit-sink-pg`: one writer with a JSONL file sink (driven under its advisory lock, cursor in the
// store, pg-sinks.ts): the append rate beside the sink's work, and the rate at which events reach
// the file (from the first append until the sink has the last event).
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {PgAuditLog} from '../../src/audit/pg-log.js'
import {JsonlFileSink} from '../../src/audit/sinks.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {statementEvent} from './inproc-cases.js'
import {type CaseResult, median} from './report.js'

const ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres'

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({connectionString: ADMIN_URL})
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

async function oneRound(o: {writers: number; events: number; sessions: number; round: number; sink?: boolean}): Promise<number> {
  return (await timedRound(o)).appended
}

async function timedRound(o: {writers: number; events: number; sessions: number; round: number; sink?: boolean}): Promise<{appended: number; delivered: number}> {
  const name = `hoop_bench_audit_${process.pid}_${o.writers}_${o.round}${o.sink ? '_sink' : ''}`
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin(`CREATE DATABASE ${name}`)
  const opened: Array<{store: PostgresStore; log: PgAuditLog; dir: string}> = []
  try {
    for (let w = 0; w < o.writers; w++) {
      const dir = mkdtempSync(join(tmpdir(), 'hoop-bench-pg-audit-'))
      const store = await PostgresStore.open({url: `postgresql://postgres@127.0.0.1:5432/${name}`, poolSize: 4})
      const sinks = o.sink ? [new JsonlFileSink(join(dir, 'sink.jsonl'), 'bench')] : undefined
      opened.push({store, dir, log: await PgAuditLog.open({store, dataDir: dir, sinks})})
    }
    let next = 0
    const t0 = performance.now()
    await Promise.all(
      Array.from({length: o.sessions}, async (_, s) => {
        const log = opened[s % o.writers].log
        while (next < o.events) await log.append(statementEvent(next++))
      }),
    )
    const appended = o.events / ((performance.now() - t0) / 1000)
    if (o.sink && !(await opened[0].log.drainSinks(600_000))) throw new Error('the sink did not catch up in 10 minutes')
    return {appended, delivered: o.events / ((performance.now() - t0) / 1000)}
  } finally {
    for (const x of opened) {
      await x.log.close().catch(() => undefined)
      await x.store.close().catch(() => undefined)
      rmSync(x.dir, {recursive: true, force: true})
    }
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

export async function caseAuditAppendPg(o: {events: number; sessions: number; rounds: number; log: (s: string) => void}): Promise<CaseResult[]> {
  const results: CaseResult[] = []
  for (const writers of [1, 3]) {
    const rates: number[] = []
    for (let r = 0; r < o.rounds; r++) {
      rates.push(await oneRound({writers, events: o.events, sessions: o.sessions, round: r}))
      o.log(`  audit append on PostgreSQL, ${writers} writer(s), round ${r + 1}/${o.rounds}: ${rates.at(-1)!.toFixed(0)}/s`)
    }
    const rate = median(rates)
    results.push({
      id: `audit-append-pg-${writers}`,
      title: `audit append on PostgreSQL, ${writers} replica${writers > 1 ? 's' : ''}`,
      metric: 'events per second',
      value: rate,
      unit: '/s',
      ratio: false,
      summary: `${o.events.toLocaleString('en-US')} statement events from ${o.sessions} concurrent sessions over ${writers} writer(s) on one database (one transaction per group, synchronous_commit on)`,
      detail: {events: o.events, sessions: o.sessions, writers, samples: rates},
    })
  }
  return results
}

export async function caseAuditSinkPg(o: {events: number; sessions: number; rounds: number; log: (s: string) => void}): Promise<CaseResult[]> {
  const appended: number[] = []
  const delivered: number[] = []
  for (let r = 0; r < o.rounds; r++) {
    const t = await timedRound({writers: 1, events: o.events, sessions: o.sessions, round: r, sink: true})
    appended.push(t.appended)
    delivered.push(t.delivered)
    o.log(`  audit append on PostgreSQL with a file sink, round ${r + 1}/${o.rounds}: appends ${t.appended.toFixed(0)}/s, delivered ${t.delivered.toFixed(0)}/s`)
  }
  const common = {unit: '/s', ratio: false, metric: 'events per second'} as const
  return [
    {...common, id: 'audit-sink-pg-append', title: 'audit append on PostgreSQL beside a file sink', value: median(appended), summary: `${o.events.toLocaleString('en-US')} statement events from ${o.sessions} concurrent sessions, one writer driving a JSONL file sink`, detail: {events: o.events, samples: appended}},
    {...common, id: 'audit-sink-pg-delivered', title: 'audit events reaching a file sink on PostgreSQL', value: median(delivered), summary: `the same ${o.events.toLocaleString('en-US')} events, from the first append until the sink had the last one (batches of 500, cursor saved per batch)`, detail: {events: o.events, samples: delivered}},
  ]
}
