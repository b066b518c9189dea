// The SQLite log has no index on every event's session (schema.ts): a session's start and end are
// found through the partial marks index, its last event's time through audit_session_last and the
// events past it, and a session's events by seq from its start. These tests hold those answers to
// what a scan of every event says, across the table's periodic writes, a restart, a migration of a
// store from before, and erasure in batches.
import assert from 'node:assert/strict'
import type Database from 'better-sqlite3'
import {events} from '../../../src/audit/events.js'
import {AuditLog} from '../../../src/audit/log.js'
import {erasePayloads, expirePayloads} from '../../../src/audit/retention.js'
import {SESSION_LAST_EVERY, sessionFirstSeq, sessionMarksOf} from '../../../src/audit/session-marks.js'
import {verifyLive} from '../../../src/audit/verify.js'
import {alice, bob, openDb, tempDir} from './_helpers.js'

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 10) + s * 1000)

/** What a scan of every event says: each session's marks and the newest time of its events. */
function scanned(db: Database.Database): Map<string, {kinds: string[]; last: string}> {
  const out = new Map<string, {kinds: string[]; last: string}>()
  for (const r of db.prepare('SELECT session, kind, time FROM audit_events WHERE session IS NOT NULL ORDER BY seq').all() as {session: string; kind: string; time: string}[]) {
    const s = out.get(r.session) ?? {kinds: [], last: r.time}
    if (r.kind === 'session.start' || r.kind === 'session.end') s.kinds.push(r.kind)
    if (r.time > s.last) s.last = r.time
    out.set(r.session, s)
  }
  return out
}

/** Every session's marks as the log's look-up gives them agree with the scan (the last time, for those not ended). */
function assertMarksAgree(db: Database.Database): number {
  const lookup = sessionMarksOf(db)
  let open = 0
  for (const [session, want] of scanned(db)) {
    const got = lookup(session)
    assert.deepEqual(got.rows.map((r) => r.kind), want.kinds, session)
    if (!want.kinds.includes('session.end')) {
      assert.equal(got.last, want.last, `last event time of ${session}`)
      open++
    }
  }
  return open
}

const start = (session: string, s: number) => events.sessionStart({at: at(s), session, identity: alice, connection: 'prod-db', agent: 'embedded'})
const statement = (session: string, s: number, text = 'SELECT 1') => events.statement({at: at(s), session, identity: alice, connection: 'prod-db', statementId: `st${s}`, text, decision: 'allow'})
const end = (session: string, s: number) => events.sessionEnd({at: at(s), session, identity: alice, connection: 'prod-db', agent: 'embedded', startedAt: at(0), bytesUp: 1, bytesDown: 1, reason: 'client closed'})

describe('audit sessions without an index on every event', () => {
  let t: {dir: string; cleanup: () => void}
  let db: Database.Database
  beforeEach(() => {
    t = tempDir()
    db = openDb(t.dir)
  })
  afterEach(() => {
    db.close()
    t.cleanup()
  })

  it("each open session's last event time is what a scan finds: across writes of audit_session_last, out-of-order times and a restart", async () => {
    let log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    // Sessions that go quiet before the table is first written, one that ends, and many busy ones
    // whose events arrive with times out of order (a deferred event keeps the time it happened).
    await log.append(start('ses_QUIET0000000', 0))
    await log.append(statement('ses_QUIET0000000', 50))
    await log.append(statement('ses_QUIET0000000', 10))
    await log.append(start('ses_ENDED0000000', 1))
    await log.append(statement('ses_ENDED0000000', 2))
    await log.append(end('ses_ENDED0000000', 3))
    const busy = Array.from({length: 20}, (_, i) => `ses_BUSY${String(i).padStart(8, '0')}`)
    for (const s of busy) await log.append(start(s, 4))
    // Two waves: the table is written with the first group that starts past SESSION_LAST_EVERY.
    for (const [from, n] of [[0, SESSION_LAST_EVERY], [SESSION_LAST_EVERY, 1500]]) {
      await Promise.all(Array.from({length: n}, (_, k) => log.append(statement(busy[(from + k) % busy.length], 100 + (((from + k) * 7919) % 5000)))))
    }
    const upto = () => Number((db.prepare("SELECT value FROM audit_meta WHERE key = 'session_last_upto'").get() as {value: string}).value)
    assert.ok(upto() > 0 && upto() < log.size, `the table was written once, up to ${upto()} of ${log.size}: the rest is read from the events`)
    assert.equal(assertMarksAgree(db), 21)
    assert.ok(db.prepare("SELECT 1 FROM audit_session_last WHERE session = 'ses_QUIET0000000'").get(), 'a quiet session keeps its row')
    assert.equal(db.prepare("SELECT 1 FROM audit_session_last WHERE session = 'ses_ENDED0000000'").get(), undefined, 'an ended session has none')

    // A restart (here after a close; after a crash the same): the events past the table's seq are folded in on open.
    await log.append(statement('ses_QUIET0000000', 9000))
    await log.close()
    log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    assert.equal(upto(), log.size)
    assert.equal((db.prepare("SELECT time FROM audit_session_last WHERE session = 'ses_QUIET0000000'").get() as {time: string}).time, at(9000).toISOString())
    assert.equal(assertMarksAgree(db), 21)
    await log.close()
    assert.equal(verifyLive(db).ok, true)
  })

  it('a store from before (an index on every event session) is migrated on open, and again after a gateway of before opened it', async () => {
    let log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    for (const s of ['ses_A00000000000', 'ses_B00000000000']) {
      await log.append(start(s, 0))
      await log.append(statement(s, 5))
    }
    await log.append(end('ses_B00000000000', 6))
    await log.close()
    const asBefore = () => {
      // What the log of before left: the index on every event's session, none of what replaces it.
      db.exec("DROP INDEX audit_events_marks; DROP TABLE audit_session_last; DELETE FROM audit_meta WHERE key = 'session_last_upto'")
      db.exec('CREATE INDEX audit_events_session ON audit_events(session)')
    }
    const indexes = () => (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' ORDER BY name").pluck().all() as string[])
    asBefore()
    assert.deepEqual(indexes(), ['audit_events_session', 'audit_events_time'])
    log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    assert.deepEqual(indexes(), ['audit_events_marks', 'audit_events_time'])
    assert.equal(assertMarksAgree(db), 1)
    await log.append(statement('ses_A00000000000', 7))
    await log.close()
    assert.equal(verifyLive(db).ok, true)

    // A gateway of before opened it since: it made its index again and wrote events the table does not know.
    db.exec('CREATE INDEX audit_events_session ON audit_events(session)')
    db.exec("UPDATE audit_session_last SET time = '2000-01-01T00:00:00.000Z'")
    log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    assert.deepEqual(indexes(), ['audit_events_marks', 'audit_events_time'])
    assert.equal((db.prepare("SELECT time FROM audit_session_last WHERE session = 'ses_A00000000000'").get() as {time: string}).time, at(7).toISOString())
    assert.equal(assertMarksAgree(db), 1)
    await log.close()
  })

  it('erasure by session reads from its start in batches that go on from the last one, and leaves no payload of it', async () => {
    const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    await log.append(statement('ses_EARLY0000000', 0, 'SELECT before_any_start'))
    await log.append(start('ses_ERASE0000000', 1))
    await log.append(start('ses_KEEP00000000', 1))
    for (let i = 0; i < 25; i++) {
      await log.append(statement('ses_ERASE0000000', 2 + i, `SELECT secret_${i}`))
      await log.append(statement('ses_KEEP00000000', 2 + i, `SELECT kept_${i}`))
    }
    assert.equal(sessionFirstSeq(db, 'ses_ERASE0000000'), 2)
    assert.equal(sessionFirstSeq(db, 'ses_EARLY0000000'), 1, 'no start in the log: from the first event')
    const r = erasePayloads(db, {scope: 'session', target: 'ses_ERASE0000000', reason: 'request #1', operator: 'dpo', limit: 4})
    assert.equal(r.removed, 25)
    assert.equal(r.refs.length, 7, 'batches of 4, each one erasure event')
    const left = (s: string) => (db.prepare('SELECT count(*) AS n FROM audit_events WHERE session = ? AND payload IS NOT NULL').get(s) as {n: number}).n
    assert.equal(left('ses_ERASE0000000'), 0)
    assert.equal(left('ses_KEEP00000000'), 25)
    assert.equal(erasePayloads(db, {scope: 'session', target: 'ses_EARLY0000000', reason: 'request #2', operator: 'dpo'}).removed, 1)
    const byUser = erasePayloads(db, {scope: 'user', target: alice.subject, reason: 'request #3', operator: 'dpo', limit: 10})
    assert.equal(byUser.removed, 25)
    assert.equal(left('ses_KEEP00000000'), 0)
    await log.absorbPendingNow()
    log.checkpoint()
    const live = verifyLive(db)
    assert.equal(live.ok, true, JSON.stringify(live.failures))
    await log.close()
  })

  it('the look-ups by session use the marks index or a seq range, never a scan of every event', async () => {
    const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    await log.append(start('ses_A00000000000', 0))
    await log.append(statement('ses_A00000000000', 1))
    db.prepare("INSERT INTO audit_recordings (session_id, connection, started_at, finished_at, cap_bytes) VALUES ('ses_A00000000000', 'prod-db', ?, ?, 100)").run(at(0).toISOString(), at(2).toISOString())
    // Every statement these run is planned; none may read audit_events whole.
    const plans: {sql: string; detail: string[]}[] = []
    const prepare = db.prepare.bind(db)
    db.prepare = ((sql: string) => {
      if (/audit_events/.test(sql) && !/^\s*(INSERT|UPDATE|DELETE)/i.test(sql)) {
        const named = Object.fromEntries([...sql.matchAll(/@(\w+)/g)].map((m) => [m[1], null]))
        const positional = Array.from({length: (sql.match(/\?/g) ?? []).length}, () => null)
        const detail = (prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(Object.keys(named).length ? [named] : positional)) as {detail: string}[]).map((r) => r.detail)
        plans.push({sql: sql.replace(/\s+/g, ' '), detail})
      }
      return prepare(sql)
    }) as typeof db.prepare
    try {
      sessionMarksOf(db)('ses_A00000000000')
      sessionFirstSeq(db, 'ses_A00000000000')
      erasePayloads(db, {scope: 'session', target: 'ses_A00000000000', reason: 'r', operator: 'dpo', holds: [{user: bob.subject}]})
      expirePayloads(db, {payloads: {'session.recording': 1}, holds: [{user: bob.subject}]}, {now: at(86400 * 3)})
    } finally {
      db.prepare = prepare
    }
    assert.ok(plans.filter((p) => /session = /.test(p.sql)).length >= 5, JSON.stringify(plans, null, 1))
    for (const p of plans) for (const d of p.detail) assert.ok(d !== 'SCAN audit_events' && d !== 'SCAN e', `${p.sql}: ${p.detail.join(' | ')}`)
    await log.close()
  })
})
