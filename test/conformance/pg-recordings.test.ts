// Session recordings and the session list on the PostgreSQL store, next to the one audit log:
// a recording written by one replica is stored in order with the digest its summary names, listed
// and replayed through any replica; after a crash, a replica closes its own cut sessions (ending
// them in the one log with the recording's stored part) and leaves another replica's alone.
// Database: hoop_pg_recordings_test_<pid>, dropped afterwards.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {events} from '../../src/audit/events.js'
import {PgAuditLog} from '../../src/audit/pg-log.js'
import {listPgSessions, showPgSession} from '../../src/audit/pg-recordings.js'
import {SessionRecorder} from '../../src/audit/recorder.js'
import {closeUnendedSessions, UNRECORDED_END} from '../../src/gateway/sessions.js'
import {silentLogger} from '../../src/shared/log.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {SqliteStore} from '../../src/store/sqlite.js'
import {alice, tempDir} from '../unit/audit/_helpers.js'
import {adminQuery} from './backends.js'

const DB = `hoop_pg_recordings_test_${process.pid}`
const URL = `postgresql://postgres@127.0.0.1:5432/${DB}`

describe('session recordings on the PostgreSQL store', () => {
  const opened: Array<() => Promise<void>> = []
  const replica = async () => {
    const t = tempDir()
    const store = await PostgresStore.open({url: URL, poolSize: 3})
    const local = new SqliteStore(t.dir)
    const audit = await PgAuditLog.open({store, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    opened.push(async () => {
      await audit.close()
      await local.close()
      await store.close()
      t.cleanup()
    })
    return {store, local, audit}
  }

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    await adminQuery(`CREATE DATABASE ${DB}`)
  })
  afterEach(async () => {
    for (const close of opened.splice(0).reverse()) await close()
  })
  after(() => adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`))

  it('stores a recording in order under the digest its summary names; any replica lists and replays it', async () => {
    const a = await replica()
    const b = await replica()
    const id = 'ses_REC000000001'
    await a.store.startSession({id, subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: new Date().toISOString()})
    const rec = new SessionRecorder({db: a.local.db, pg: {store: a.store, replica: a.audit.fingerprint()}, sessionId: id, connection: 'prod-db', connectionType: 'postgres', capBytes: 1000})
    for (let i = 0; i < 50; i++) rec.record('client', 'statement', `SELECT ${i}`)
    rec.record('server', 'bytes', Buffer.from([0, 1, 2, 255]))
    rec.record('server', 'result', 'x'.repeat(2000)) // beyond the cap: dropped, counted
    const summary = await rec.finishStored()
    await a.store.endSession(id, {endedAt: new Date().toISOString(), bytesUp: 0, bytesDown: 0, endReason: 'closed'})
    assert.equal(summary.chunks, 51)
    assert.equal(summary.truncated, true)
    assert.equal(summary.droppedBytes, 2000)
    assert.equal(summary.failed, undefined)

    const shown = await showPgSession(b.store, id)
    assert.deepEqual(shown.chunks.map((c) => c.idx), Array.from({length: 51}, (_, i) => i))
    assert.equal(shown.chunks[3].payload, 'SELECT 3')
    assert.equal(shown.chunks[50].payload, Buffer.from([0, 1, 2, 255]).toString('base64'))
    assert.equal(shown.recording?.sha256, summary.sha256)
    assert.equal(shown.recording?.chunks, 51)
    const digest = createHash('sha256')
    for (const c of shown.chunks) digest.update(`${c.idx}\t${c.atMs}\t${c.direction}\t${c.kind}\t${c.encoding}\t${c.size}\t${c.sha256}\n`)
    assert.equal(digest.digest('hex'), summary.sha256, 'the stored chunks rebuild the digest')
    const listed = await listPgSessions(b.store, {connection: 'prod-db'})
    assert.ok(listed.some((s) => s.id === id && s.recording?.bytes === summary.bytes))
  })

  it('after a crash, a replica closes its own cut sessions and leaves another replica\'s open', async () => {
    const a = await replica()
    const b = await replica()
    const started = '2026-01-01T10:00:00.000Z'
    for (const [id, r] of [['ses_MINE00000000', a], ['ses_OTHER0000000', b]] as const) {
      await a.store.startSession({id, subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: started})
      await r.audit.append(events.sessionStart({at: started, session: id, identity: alice, connection: 'prod-db', agent: 'embedded'}))
      const rec = new SessionRecorder({db: r.local.db, pg: {store: r.store, replica: r.audit.fingerprint()}, sessionId: id, connection: 'prod-db'})
      rec.record('client', 'statement', 'SELECT 1')
      rec.flush()
      await new Promise((resolve) => setTimeout(resolve, 100)) // the writer's round trip; the recorder is then dropped, as by a crash
    }
    assert.equal(await closeUnendedSessions(a.store, a.local.db, a.audit, silentLogger), 1)
    const ends = await a.store.query("SELECT session, body FROM audit_events WHERE kind = 'session.end'")
    assert.deepEqual(ends.map((e) => e.session), ['ses_MINE00000000'])
    assert.match(JSON.stringify(ends[0]), new RegExp(UNRECORDED_END.slice(0, 20)))
    assert.deepEqual((await a.store.listOpenSessions()).map((s) => s.id), ['ses_OTHER0000000'])
    const [mine] = await a.store.query("SELECT finished_at, chunks FROM audit_recordings WHERE session_id = 'ses_MINE00000000'")
    assert.ok(mine.finished_at, 'its recording is closed over the stored chunk')
    assert.equal(mine.chunks, 1)
  })
})
