// What a gateway does at start with the sessions its store still has open, on both stores: a
// session this gateway's audit log started is ended with a session.end event. A row with no start
// in this audit log is ended on the embedded store, where no other gateway can be serving it; on a
// shared store it may be another replica's live session, and is left open.
import assert from 'node:assert/strict'
import {events} from '../../src/audit/events.js'
import {AuditLog} from '../../src/audit/log.js'
import {closeUnendedSessions} from '../../src/gateway/sessions.js'
import {silentLogger} from '../../src/shared/log.js'
import {SqliteStore} from '../../src/store/sqlite.js'
import {alice, tempDir} from '../unit/audit/_helpers.js'
import {postgresBackend, sqliteBackend} from './backends.js'

for (const make of [sqliteBackend, postgresBackend]) {
  const backend = make()
  describe(`open sessions at start: ${backend.name}`, () => {
    after(() => backend.cleanup())

    it("ends this gateway's own cut sessions, and another replica's only on a store no replica shares", async () => {
      const store = await (await backend.fresh()).open()
      const t = tempDir()
      const local = new SqliteStore(t.dir)
      const audit = AuditLog.open({db: local.db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
      try {
        const started = '2026-01-01T10:00:00.000Z'
        await store.startSession({id: 'ses_MINE00000000', subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: started})
        await audit.append(events.sessionStart({at: started, session: 'ses_MINE00000000', identity: alice, connection: 'prod-db', agent: 'embedded'}))
        await store.startSession({id: 'ses_OTHER0000000', subject: 'bob@example.com', identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: started})

        assert.equal(await closeUnendedSessions(store, local.db, audit, silentLogger), 1, 'one session.end event, for its own session')
        const ends = local.db.prepare("SELECT session FROM audit_events WHERE kind = 'session.end'").all() as {session: string}[]
        assert.deepEqual(ends.map((e) => e.session), ['ses_MINE00000000'])
        const open = (await store.listOpenSessions()).map((s) => s.id)
        assert.deepEqual(open, store.shared ? ['ses_OTHER0000000'] : [])
        assert.equal(store.shared, backend.name === 'postgres')
      } finally {
        await audit.close()
        await local.close()
        await store.close()
        t.cleanup()
      }
    })
  })
}
