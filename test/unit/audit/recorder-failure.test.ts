// A store that refuses writes must never make the recorder throw: the recorder runs inside socket
// listeners, where a throw reaches the process (issue 13: a full disk during raw TCP sessions
// crashed the gateway). The recording stops, and its summary says why and covers what was stored.
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {join} from 'node:path'
import {AuditLog} from '../../../src/audit/log.js'
import {events} from '../../../src/audit/events.js'
import {recordingDigest, SessionRecorder} from '../../../src/audit/recorder.js'
import {verifyLive} from '../../../src/audit/verify.js'
import type {Logger} from '../../../src/shared/log.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {alice, tempDir} from './_helpers.js'

function warnings(): Logger & {warned: string[]} {
  const warned: string[] = []
  const log: Logger = {debug() {}, info() {}, warn: (m, f) => warned.push(`${m} ${String(f?.error)}`), error() {}, child: () => log}
  return Object.assign(log, {warned})
}

const chunk = (i: number) => Buffer.alloc(16 * 1024, i % 251)

describe('session recorder when the store refuses writes', () => {
  it('a full store (max_page_count) stops the recording without a throw; the summary covers what was stored and says why', async () => {
    const t = tempDir()
    const store = new SqliteStore(t.dir)
    try {
      const log = warnings()
      const session = 'ses_FFFFFFFFFFFF'
      const rec = new SessionRecorder({db: store.db, sessionId: session, connection: 'raw', connectionType: 'tcp', logger: log})
      for (let i = 0; i < 40; i++) rec.record('client', 'bytes', chunk(i)) // 640 KiB: at least two flushes
      rec.flush()
      const stored = (store.db.prepare('SELECT count(*) AS n FROM audit_recording_chunks WHERE session_id = ?').get(session) as {n: number}).n
      assert.equal(stored, 40)
      // The disk is full from here on: the database may not grow by a single page.
      const pages = store.db.pragma('page_count', {simple: true}) as number
      store.db.pragma(`max_page_count = ${pages}`)
      for (let i = 0; i < 200; i++) assert.doesNotThrow(() => rec.record(i % 2 ? 'server' : 'client', 'bytes', chunk(i)))
      assert.equal(rec.failed, true)
      const summary = rec.finish()
      assert.match(summary.failed ?? '', /could not store recording chunks: database or disk is full/)
      assert.equal(summary.truncated, true)
      assert.equal(summary.chunks, 40)
      assert.equal(summary.bytes, 40 * 16 * 1024)
      assert.equal(summary.droppedBytes, 200 * 16 * 1024)
      // The digest names exactly the chunks that are in the store.
      assert.equal(recordingDigest(store.db, session), summary.sha256)
      assert.equal(log.warned.length, 1, `one warning, got ${log.warned.join('; ')}`)

      // The store has room again: the session.end event carries the failure, and the chain verifies.
      store.db.pragma('max_page_count = 1073741823')
      const audit = AuditLog.open({db: store.db, dataDir: t.dir})
      await audit.append(events.sessionEnd({session, identity: alice, connection: 'raw', agent: 'embedded', startedAt: new Date(), bytesUp: 1, bytesDown: 1, reason: 'closed', recording: summary}))
      await audit.close()
      const body = JSON.parse((store.db.prepare("SELECT body FROM audit_events WHERE kind = 'session.end'").get() as {body: string}).body)
      assert.match(body.data.recording.failed, /database or disk is full/)
      assert.equal(body.data.recording.chunks, 40)
      assert.equal(verifyLive(store.db).ok, true)
    } finally {
      store.close()
      t.cleanup()
    }
  })

  it('a closed database: record, flush and finish never throw', () => {
    const t = tempDir()
    const store = new SqliteStore(t.dir)
    try {
      const rec = new SessionRecorder({db: store.db, sessionId: 'ses_CCCCCCCCCCCC', capBytes: 1024 * 1024})
      rec.record('client', 'bytes', Buffer.from('before'))
      store.close()
      assert.doesNotThrow(() => {
        for (let i = 0; i < 100; i++) rec.record('server', 'bytes', chunk(i))
        rec.flush()
      })
      const summary = rec.finish()
      assert.match(summary.failed ?? '', /could not store recording chunks: The database connection is not open/)
      assert.equal(summary.chunks, 0)
      assert.equal(summary.truncated, true)
      assert.equal(summary.droppedBytes, 6 + 100 * 16 * 1024)
    } finally {
      t.cleanup()
    }
  })

  it('a read-only database: the recording cannot even start, and nothing throws', () => {
    const t = tempDir()
    const store = new SqliteStore(t.dir)
    store.close()
    const ro = new Database(join(t.dir, 'hoop.db'), {readonly: true})
    try {
      let rec: SessionRecorder | undefined
      assert.doesNotThrow(() => {
        rec = new SessionRecorder({db: ro, sessionId: 'ses_RRRRRRRRRRRR'})
        rec.record('client', 'statement', 'SELECT 1')
        rec.record('server', 'result', {rows: 1})
      })
      const summary = rec!.finish()
      assert.match(summary.failed ?? '', /could not start the recording: attempt to write a readonly database/)
      assert.equal(summary.chunks, 0)
      assert.equal(summary.droppedBytes, 'SELECT 1'.length + JSON.stringify({rows: 1}).length)
    } finally {
      ro.close()
      t.cleanup()
    }
  })
})
