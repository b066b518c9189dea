import assert from 'node:assert/strict'
import {AuditLog} from '../../../src/audit/log.js'
import {events} from '../../../src/audit/events.js'
import {pruneRecordings, recordingDigest, SessionRecorder} from '../../../src/audit/recorder.js'
import {listSessions, renderReplay, showSession} from '../../../src/audit/sessions.js'
import {verifyLive} from '../../../src/audit/verify.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {alice, tempDir} from './_helpers.js'

describe('session recording and retention', () => {
  it('records the exchange with a cap, replays it, and keeps the chain verifiable after payloads are pruned', async () => {
    const t = tempDir()
    const store = new SqliteStore(t.dir)
    try {
      const db = store.db
      const log = AuditLog.open({db, dataDir: t.dir})
      const session = 'ses_RRRRRRRRRRRR'
      const started = new Date('2024-01-01T00:00:00Z')
      await store.startSession({id: session, subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', clientAddress: '127.0.0.1:1', startedAt: started.toISOString()})
      let clock = started.getTime()
      const rec = new SessionRecorder({db, sessionId: session, connection: 'prod-db', connectionType: 'postgres', capBytes: 200, now: () => (clock += 5)})
      rec.record('client', 'statement', 'SELECT email FROM users')
      rec.record('server', 'result', {columns: ['email'], rows: [['a***@example.com']]})
      rec.record('client', 'bytes', Buffer.from([0, 1, 2, 0x41, 0x42]))
      rec.record('server', 'result', 'x'.repeat(500)) // over the cap
      rec.record('client', 'statement', 'SELECT 1') // dropped after the cap
      const summary = rec.finish()
      assert.equal(summary.chunks, 3)
      assert.equal(summary.truncated, true)
      assert.equal(summary.droppedBytes, 508)
      assert.equal(summary.capBytes, 200)
      await store.endSession(session, {endedAt: new Date(clock).toISOString(), bytesUp: 10, bytesDown: 20, endReason: 'client closed'})
      await log.append(events.sessionEnd({session, identity: alice, connection: 'prod-db', agent: 'embedded', startedAt: started, bytesUp: 10, bytesDown: 20, reason: 'client closed', recording: summary}))
      await log.close()

      const list = listSessions(db)
      assert.equal(list.length, 1)
      assert.equal(list[0].recording!.truncated, true)
      const detail = showSession(db, session)
      const text = renderReplay(detail)
      assert.match(text, /> statement\n {4}SELECT email FROM users/)
      assert.match(text, /a\*\*\*@example\.com/)
      assert.match(text, /TRUNCATED at the cap, 508 bytes not recorded/)
      assert.match(text, /000000 {2}00 01 02 41 42/)

      // Retention: payloads go, hashes stay; the digest in the signed event still matches.
      assert.equal(pruneRecordings(db, {olderThanDays: 30, now: new Date('2024-03-01T00:00:00Z')}), 1)
      const pruned = showSession(db, session)
      assert.ok(pruned.chunks.every((c) => c.payload === undefined))
      assert.match(renderReplay(pruned), /pruned by retention/)
      assert.equal(recordingDigest(db, session), summary.sha256)
      const endEvent = JSON.parse((db.prepare("SELECT body FROM audit_events WHERE kind = 'session.end'").get() as {body: string}).body)
      assert.equal(endEvent.data.recording.sha256, summary.sha256)
      assert.equal(verifyLive(db).ok, true)
    } finally {
      store.close()
      t.cleanup()
    }
  })
})
