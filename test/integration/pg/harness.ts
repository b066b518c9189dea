// Test harness: a TCP listener on 127.0.0.1:0 whose sockets are handed to runPgSession, with the
// target reached by a plain net.connect (no gateway, no agent), and a judge built from a table.
import {execFile} from 'node:child_process'
import {promisify} from 'node:util'
import pg from 'pg'
import {StatementGate, type AuditMode, type GateHooks, type Verdict as StatementVerdict} from '../../../src/engines/gate.js'
import {runPgSession, type PgSessionOptions, type PgSessionResult} from '../../../src/engines/postgres/session.js'
import {silentLogger} from '../../../src/shared/log.js'
import type {MaskPlan} from '../../../src/masking/types.js'
import {connect, serveEngine} from '../../helpers/engine-server.js'

export const PG_PORT = 5432

export interface HarnessEvent {
  hook: 'beforeForward' | 'afterStatement' | 'refused'
  sql: string
  effect: string
  rows?: number
  error?: string
  masked?: Record<string, number>
}

export interface Harness {
  port: number
  events: HarnessEvent[]
  results: PgSessionResult[]
  /** Resolves when every accepted session has ended. */
  settle(): Promise<void>
  close(): Promise<void>
}

export interface HarnessOptions {
  judge?: (sql: string) => StatementVerdict | Promise<StatementVerdict>
  target?: Partial<PgSessionOptions['target']>
  upstreamPort?: number
  beforeForward?: GateHooks['beforeForward']
  /** The gate's audit mode (default hold). */
  audit?: AuditMode
  maxMessageBytes?: number
  prepared?: PgSessionOptions['prepared']
}

export const noMask: MaskPlan = {columns: [], entities: [], ruleIds: []}
export const allow = (mask: MaskPlan = noMask): StatementVerdict => ({effect: 'allow', ruleId: 'r-allow', mask})

/** A judge from a literal table: the first regex that matches the SQL decides. */
export function tableJudge(rows: [RegExp, StatementVerdict][], fallback: StatementVerdict = allow()): (sql: string) => StatementVerdict {
  return (sql) => rows.find(([re]) => re.test(sql))?.[1] ?? fallback
}

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const events: HarnessEvent[] = []
  const judge = o.judge ?? (() => allow())
  const srv = await serveEngine<PgSessionResult>((client) =>
    runPgSession({
      client,
      openUpstream: () => connect(o.upstreamPort ?? PG_PORT),
      target: {host: '127.0.0.1', tls: {mode: 'disable'}, ...o.target},
      logger: silentLogger,
      limits: o.maxMessageBytes ? {maxMessageBytes: o.maxMessageBytes} : undefined,
      ...(o.prepared ? {prepared: o.prepared} : {}),
      gate: new StatementGate(
        {
        judge: async (sql) => judge(sql),
        beforeForward: async (info, mode) => {
          events.push({hook: 'beforeForward', sql: info.text, effect: info.verdict.effect})
          if (o.beforeForward) await o.beforeForward(info, mode)
        },
        afterStatement: (info) => events.push({hook: 'afterStatement', sql: info.text, effect: info.verdict.effect, rows: info.rows, error: info.error, masked: info.masked}),
        refused: (info) => events.push({hook: 'refused', sql: info.text, effect: info.verdict.effect}),
        },
        silentLogger,
        o.audit,
      ),
    }),
  )
  const {port, results, settle} = srv
  return {
    port,
    events,
    results,
    settle,
    close: srv.close,
  }
}

export {connect}

/**
 * Resolves once PostgreSQL itself runs a statement containing `text` (pg_stat_activity says
 * active). A cancel sent before the statement got there finds nothing to cancel, and on a loaded
 * machine no fixed pause is sure to be long enough; fails after `timeoutMs` naming what ran.
 */
export async function untilRunning(text: string, timeoutMs = 30_000): Promise<void> {
  const c = new pg.Client({host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'postgres'})
  await c.connect()
  try {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const {rows} = await c.query<{state: string; query: string}>('SELECT state, query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND position($1 in query) > 0', [text])
      if (rows.some((r) => r.state === 'active')) return
      if (Date.now() > deadline) throw new Error(`PostgreSQL did not run "${text}" within ${timeoutMs} ms; seen: ${JSON.stringify(rows)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  } finally {
    await c.end()
  }
}

const exec = promisify(execFile)

/** Runs the real psql against the harness. */
export async function psql(port: number, sql: string, opts: {db?: string; user?: string; extra?: string[]; stdin?: string} = {}): Promise<{stdout: string; stderr: string; code: number}> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-U', opts.user ?? 'postgres', '-d', opts.db ?? 'test', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=0', ...(opts.extra ?? []), '-c', sql]
  try {
    const r = await exec('psql', args, {env: {...process.env, PGCONNECT_TIMEOUT: '5', PGSSLMODE: 'prefer'}, timeout: 20_000})
    return {stdout: r.stdout, stderr: r.stderr, code: 0}
  } catch (err) {
    const e = err as {stdout?: string; stderr?: string; code?: number}
    return {stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1}
  }
}

/** psql reading a script from stdin (several statements in one session). */
export function psqlScript(port: number, script: string, opts: {db?: string} = {}): Promise<{stdout: string; stderr: string; code: number}> {
  return new Promise((resolve) => {
    const child = execFile(
      'psql',
      ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', opts.db ?? 'test', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=0'],
      {env: {...process.env, PGCONNECT_TIMEOUT: '5'}, timeout: 20_000},
      (err, stdout, stderr) => resolve({stdout, stderr, code: err ? ((err as {code?: number}).code ?? 1) : 0}),
    )
    child.stdin?.end(script)
  })
}
