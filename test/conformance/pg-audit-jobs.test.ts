// The audit log's background jobs on one PostgreSQL store shared by two replicas: a sink is driven
// by one replica at a time (its advisory lock), its cursor lives in the store, and when the
// driver's lock connection is cut mid-delivery (its replica died) the other takes the sink over
// from the stored cursor, every event reaching the sink in order; retention runs on one replica at
// a time, keeps what a legal hold covers, and leaves a log that verifies; `hoop audit erase` and
// `hoop audit hold` on the store commit each change with its audit event. Real PostgreSQL 15 on
// 127.0.0.1:5432; databases hoop_audit_jobs_test_<pid>_<n>.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {events, type AuditEvent} from '../../src/audit/index.js'
import {PgAuditLog} from '../../src/audit/pg-log.js'
import {erasePayloadsPg, setHoldPg} from '../../src/audit/pg-retention.js'
import {withAuditSnapshot} from '../../src/audit/pg-snapshot.js'
import type {AuditSink} from '../../src/audit/sinks.js'
import {verifyLive} from '../../src/audit/verify.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {tempDir} from '../helpers/cli.js'
import {adminQuery, freshDatabase as freshDb} from './backends.js'

const made: string[] = []
const freshDatabase = (): Promise<string> => freshDb('hoop_audit_jobs_test', made)
const urlOf = (name: string) => `postgresql://postgres@127.0.0.1:5432/${name}`

const alice = {kind: 'user' as const, subject: 'alice', name: 'alice', groups: []}
const bob = {kind: 'user' as const, subject: 'bob', name: 'bob', groups: []}
const statement = (i: number, o: {connection?: string; identity?: typeof alice; session?: string} = {}): AuditEvent =>
  events.statement({session: o.session ?? `ses_${i % 3}`, identity: o.identity ?? alice, connection: o.connection ?? 'db', statementId: String(i), text: `SELECT ${i}`, decision: 'allow'})

/** A sink shared by the replicas (same name), recording what each delivered; `die` makes a delivery hang forever, as in a dead process. */
class RecordingSink implements AuditSink {
  readonly name = 'siem'
  dead = false
  constructor(
    readonly seqs: number[],
    readonly by: string,
    readonly who: string[],
  ) {}

  async deliver(batch: {first: number; last: number; lines: string[]}): Promise<void> {
    if (this.dead) return new Promise<void>(() => undefined)
    for (const line of batch.lines) {
      this.seqs.push((JSON.parse(line) as {seq: number}).seq)
      this.who.push(this.by)
    }
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe('audit log jobs on PostgreSQL: sinks, retention, erasure, holds', function () {
  this.timeout(60_000)
  let db: string
  const opened: {log: PgAuditLog; store: PostgresStore; cleanup(): void}[] = []
  after(async () => {
    for (const name of made) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  })
  beforeEach(async () => {
    db = await freshDatabase()
  })
  afterEach(async () => {
    for (const r of opened.splice(0)) {
      await r.log.close({sinkDrainMs: 200})
      await r.store.close()
      r.cleanup()
    }
  })

  const open = async (o: Partial<Parameters<typeof PgAuditLog.open>[0]> = {}): Promise<{log: PgAuditLog; store: PostgresStore}> => {
    const dir = tempDir('hoop-pg-jobs-')
    const store = await PostgresStore.open({url: urlOf(db), poolSize: 3})
    const log = await PgAuditLog.open({store, dataDir: dir.path, checkpointEvery: {events: 25, ms: 0}, anchors: {witness: join(dir.path, 'witness.jsonl')}, jobPollMs: 50, sinkBackoff: {baseMs: 20, maxMs: 200, batchSize: 10}, ...o})
    const r = {log, store, cleanup: dir.cleanup}
    opened.push(r)
    return r
  }

  const verify = (store: PostgresStore) => withAuditSnapshot(store, {}, (snap) => verifyLive(snap))

  it('one replica drives a sink; when its lock connection is cut mid-delivery the other takes over from the stored cursor, in order, nothing lost', async () => {
    const seqs: number[] = []
    const who: string[] = []
    const sinkA = new RecordingSink(seqs, 'a', who)
    const sinkB = new RecordingSink(seqs, 'b', who)
    const a = await open({sinks: [sinkA]})
    await until('replica a drives the sink', () => a.log.sinkStatus()[0].active)
    const b = await open({sinks: [sinkB]})
    for (let i = 0; i < 30; i++) await (i % 2 ? a : b).log.append(statement(i))
    await until('30 events delivered', () => seqs.length >= 30)
    assert.deepEqual([...new Set(who)], ['a'], 'only the lock holder delivered')
    assert.equal(b.log.sinkStatus()[0].active, false)
    const stored = async () => Number((await a.store.query("SELECT seq FROM audit_sink_cursors WHERE name = 'siem'"))[0]?.seq ?? 0)
    await until('the position saved in the store', async () => (await stored()) >= 30)

    // Replica a dies: its deliveries hang and PostgreSQL drops its lock connection.
    sinkA.dead = true
    await b.log.append(statement(100))
    await new Promise((r) => setTimeout(r, 200))
    const killed = await adminQuery(`SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = '${db}')`)
    assert.ok(killed.length >= 1, 'the sink lock was held')
    for (let i = 0; i < 20; i++) await b.log.append(statement(200 + i))
    const size = b.log.size
    await until('replica b delivered everything', () => seqs.length > 0 && seqs.at(-1) === size)
    assert.ok(b.log.sinkStatus()[0].active, 'replica b drives the sink now')
    // At least once and in order: every seq delivered, never going back past one already delivered by the new driver.
    assert.deepEqual([...new Set(seqs)].sort((x, y) => x - y), Array.from({length: size}, (_, i) => i + 1), 'no event lost')
    const firstB = who.indexOf('b')
    assert.deepEqual(seqs.slice(firstB), Array.from({length: size - seqs[firstB] + 1}, (_, i) => seqs[firstB] + i), 'the new driver goes on in order from the stored cursor')
    assert.ok(seqs[firstB] <= seqs[firstB - 1] + 1, 'no gap at the takeover')
    await until('the new driver saved its position', async () => (await stored()) === size)
  })

  it('retention runs on one replica at a time, keeps what a legal hold covers, appends audit.retention, and the log still verifies', async () => {
    const policy = {payloads: {statement: 1}, intervalMs: 3_600_000}
    const a = await open({retention: policy})
    const b = await open({retention: policy})
    for (let i = 0; i < 12; i++) await a.log.append(statement(i, {connection: i % 4 === 0 ? 'held-db' : 'db'}))
    await setHoldPg(a.store, {action: 'place', scope: 'connection', target: 'held-db', reason: 'litigation 17', operator: 'test'})
    // The runs each replica starts on open (nothing is due yet) are over first.
    await Promise.all([a.log.runRetention(policy), b.log.runRetention(policy)])
    const later = new Date(Date.now() + 3 * 86_400_000)
    const [ra, rb] = await Promise.all([a.log.runRetention(policy, later), b.log.runRetention(policy, later)])
    assert.equal(ra.removed + rb.removed, 9, 'the 9 payloads not under the hold expired')
    assert.ok(ra.removed === 0 || rb.removed === 0, 'one replica ran it')
    const left = await a.store.query("SELECT connection, count(*)::int AS n FROM audit_events WHERE kind = 'statement' AND payload IS NOT NULL GROUP BY connection")
    assert.deepEqual(left.map((r) => [r.connection, r.n]), [['held-db', 3]])
    const retention = await a.store.query("SELECT seq, body FROM audit_events WHERE kind = 'audit.retention'")
    assert.equal(retention.length, 1)
    assert.equal(JSON.parse(retention[0].body as string).data.removed, 9)
    const [hold] = await a.store.query("SELECT count(*)::int AS n FROM audit_events WHERE kind = 'audit.hold'")
    assert.equal(hold.n, 1)
    await a.log.signHead()
    const v = await verify(a.store)
    assert.ok(v.ok, JSON.stringify(v.failures))
    assert.ok(v.notes.some((n) => /9 payload\(s\).*expired by retention/.test(n)), v.notes.join('\n'))
  })

  it('erasure on the store removes a session\'s payloads with its audit.erasure event, skips a held user, and the log verifies', async () => {
    const a = await open()
    for (let i = 0; i < 6; i++) await a.log.append(statement(i, {session: 'ses_erase', identity: i < 3 ? alice : bob}))
    await a.log.append(statement(99, {session: 'ses_other', identity: bob}))
    await setHoldPg(a.store, {action: 'place', scope: 'user', target: 'bob', reason: 'case 4', operator: 'test'})
    const r = await erasePayloadsPg(a.store, {scope: 'session', target: 'ses_erase', reason: 'GDPR #12', operator: 'test'})
    assert.equal(r.removed, 3, "alice's three")
    assert.equal(r.held, 3, "bob's three are held")
    await assert.rejects(setHoldPg(a.store, {action: 'release', scope: 'user', target: 'carol', reason: 'x', operator: 'test'}), /no legal hold on user "carol"/)
    await setHoldPg(a.store, {action: 'release', scope: 'user', target: 'bob', reason: 'case closed', operator: 'test'})
    const again = await erasePayloadsPg(a.store, {scope: 'user', target: 'bob', reason: 'left', operator: 'test'})
    assert.equal(again.removed, 4)
    const kinds = (await a.store.query("SELECT kind FROM audit_events WHERE kind LIKE 'audit.%' ORDER BY seq")).map((x) => x.kind)
    assert.deepEqual(kinds, ['audit.hold', 'audit.erasure', 'audit.hold', 'audit.erasure'])
    const v = await verify(a.store)
    assert.ok(v.ok, JSON.stringify(v.failures))
    assert.ok(v.notes.some((n) => /payload erased on .*user bob: left/.test(n)), v.notes.join('\n'))
  })
})
