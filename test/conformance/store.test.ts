// One conformance suite for every Store: the same cases against SQLite (a temp dir) and PostgreSQL
// (databases of its own on 127.0.0.1:5432). What one store does, the other must do the same way.
import assert from 'node:assert/strict'
import {HoopError} from '../../src/shared/errors.js'
import {MIGRATIONS} from '../../src/store/pg-migrations.js'
import type {SessionStart, Store} from '../../src/store/types.js'
import {adminQuery, type Backend, type Backing, postgresBackend, sqliteBackend} from './backends.js'

const isConflict = (what: string) => (err: unknown) =>
  err instanceof HoopError && err.code === 'CONFLICT' && err.message === `${what} already exists; revoke it first`

function session(id: string, startedAt: string, extra: Partial<SessionStart> = {}): SessionStart {
  return {id, subject: 'alice@example.com', identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt, ...extra}
}

for (const make of [sqliteBackend, postgresBackend]) {
  const backend: Backend = make()
  describe(`store conformance: ${backend.name}`, () => {
    const opened: Store[] = []
    let backing: Backing
    let store: Store
    const open = async (b = backing) => {
      const s = await b.open()
      opened.push(s)
      return s
    }

    beforeEach(async () => {
      backing = await backend.fresh()
      store = await open()
    })
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
    })
    after(() => backend.cleanup())

    it('creates, finds, lists and revokes agents', async () => {
      const created = await store.createAgent('api-agent', 'ag_1', 'hash-1')
      assert.equal(created.name, 'api-agent')
      const found = await store.findAgentById('ag_1')
      assert.deepEqual({id: found?.id, name: found?.name, hash: found?.hash, createdAt: found?.createdAt, revokedAt: found?.revokedAt}, {
        id: 'ag_1',
        name: 'api-agent',
        hash: 'hash-1',
        createdAt: created.createdAt,
        revokedAt: undefined,
      })
      assert.equal(await store.findAgentById('ag_nope'), undefined)
      await store.createAgent('db-agent', 'ag_2', 'hash-2')
      // Listed by creation time, then name (two made in one millisecond sort by name).
      assert.deepEqual((await store.listAgents()).map((a) => a.name), ['api-agent', 'db-agent'])

      const revoked = await store.revokeAgent('api-agent')
      assert.equal(revoked?.id, 'ag_1')
      assert.ok(revoked?.revokedAt && Date.parse(revoked.revokedAt) >= Date.parse(created.createdAt))
      assert.equal((await store.findAgentById('ag_1'))?.revokedAt, revoked.revokedAt, 'the revocation is stored as returned')
      assert.equal(await store.revokeAgent('api-agent'), undefined, 'a revoked agent is not revoked twice')
      assert.equal(await store.revokeAgent('nobody'), undefined)
      assert.deepEqual((await store.listAgents()).map((a) => [a.name, Boolean(a.revokedAt)]), [['api-agent', true], ['db-agent', false]])
    })

    it('records when a live agent was last seen, and not for a revoked one', async () => {
      await store.createAgent('db-agent', 'ag_1', 'h')
      assert.equal((await store.findAgentById('ag_1'))?.lastSeenAt, undefined)
      await store.touchAgent('db-agent')
      const seen = (await store.findAgentById('ag_1'))?.lastSeenAt
      assert.ok(seen && !Number.isNaN(Date.parse(seen)))
      await store.revokeAgent('db-agent')
      await store.createAgent('db-agent', 'ag_2', 'h')
      await store.touchAgent('db-agent')
      assert.equal((await store.findAgentById('ag_1'))?.lastSeenAt, seen, 'the revoked record keeps its last time')
      assert.ok((await store.findAgentById('ag_2'))?.lastSeenAt)
    })

    it('creates, finds, lists and revokes service accounts with their groups', async () => {
      await store.createServiceAccount('etl', ['etl', 'readers:prod'], 'sa_1', 'hash-1')
      await store.createServiceAccount('tests', [], 'sa_2', 'hash-2')
      const etl = await store.findServiceAccountById('sa_1')
      assert.deepEqual([etl?.name, etl?.groups, etl?.hash], ['etl', ['etl', 'readers:prod'], 'hash-1'])
      assert.deepEqual((await store.findServiceAccountById('sa_2'))?.groups, [])
      assert.equal(await store.findServiceAccountById('sa_3'), undefined)
      assert.deepEqual((await store.listServiceAccounts()).map((a) => a.name), ['etl', 'tests'])
      const revoked = await store.revokeServiceAccount('etl')
      assert.deepEqual([revoked?.id, revoked?.groups], ['sa_1', ['etl', 'readers:prod']])
      assert.ok((await store.findServiceAccountById('sa_1'))?.revokedAt)
      assert.equal(await store.revokeServiceAccount('etl'), undefined)
    })

    it('keeps live names unique, and a revoked name can be created again', async () => {
      await store.createAgent('db-agent', 'ag_1', 'h')
      await assert.rejects(store.createAgent('db-agent', 'ag_2', 'h'), isConflict('agent "db-agent"'))
      await store.createServiceAccount('etl', [], 'sa_1', 'h')
      await assert.rejects(store.createServiceAccount('etl', ['x'], 'sa_2', 'h'), isConflict('service account "etl"'))
      // Agents and service accounts are separate name spaces.
      await store.createServiceAccount('db-agent', [], 'sa_3', 'h')

      await store.revokeAgent('db-agent')
      await store.createAgent('db-agent', 'ag_2', 'h2')
      assert.equal((await store.findAgentById('ag_2'))?.hash, 'h2')
      await assert.rejects(store.createAgent('db-agent', 'ag_3', 'h'), isConflict('agent "db-agent"'), 'the new one is live again')
      await store.revokeServiceAccount('etl')
      await store.createServiceAccount('etl', ['again'], 'sa_4', 'h')
      const etls = (await store.listServiceAccounts()).filter((a) => a.name === 'etl')
      assert.deepEqual(etls.map((a) => [a.id, Boolean(a.revokedAt)]), [['sa_1', true], ['sa_4', false]])
    })

    it('lets exactly one of several concurrent creations of a name win, across store instances', async () => {
      const stores = [store, await open(), await open()]
      const agents = await Promise.allSettled(stores.flatMap((s, i) => [0, 1].map((j) => s.createAgent('racer', `ag_${i}${j}`, 'h'))))
      assert.equal(agents.filter((r) => r.status === 'fulfilled').length, 1)
      for (const r of agents) if (r.status === 'rejected') assert.ok(isConflict('agent "racer"')(r.reason), String(r.reason))
      const accounts = await Promise.allSettled(stores.flatMap((s, i) => [0, 1].map((j) => s.createServiceAccount('racer', [], `sa_${i}${j}`, 'h'))))
      assert.equal(accounts.filter((r) => r.status === 'fulfilled').length, 1)
      assert.equal((await store.listAgents()).length, 1)
      assert.equal((await store.listServiceAccounts()).length, 1)
    })

    it('starts, ends and lists sessions, newest first, with a limit', async () => {
      await store.startSession(session('ses_A', '2026-01-01T10:00:00.000Z', {clientAddress: '10.0.0.7'}))
      await store.startSession(session('ses_B', '2026-01-01T10:00:01.000Z', {identityKind: 'service-account', subject: 'etl', agent: 'db-agent'}))
      await store.startSession(session('ses_C', '2026-01-01T10:00:02.000Z'))
      await store.endSession('ses_A', {endedAt: '2026-01-01T10:05:00.000Z', bytesUp: 1234, bytesDown: 5_000_000_000, endReason: 'client closed'})

      const all = await store.listSessions()
      assert.deepEqual(all.map((s) => s.id), ['ses_C', 'ses_B', 'ses_A'])
      assert.deepEqual(all[2], {
        id: 'ses_A',
        subject: 'alice@example.com',
        identityKind: 'user',
        connection: 'prod-db',
        agent: 'embedded',
        clientAddress: '10.0.0.7',
        startedAt: '2026-01-01T10:00:00.000Z',
        endedAt: '2026-01-01T10:05:00.000Z',
        bytesUp: 1234,
        bytesDown: 5_000_000_000,
        endReason: 'client closed',
      })
      assert.deepEqual([all[1].subject, all[1].identityKind, all[1].agent, all[1].clientAddress, all[1].endedAt, all[1].bytesUp], ['etl', 'service-account', 'db-agent', undefined, undefined, 0])
      assert.deepEqual((await store.listSessions({limit: 2})).map((s) => s.id), ['ses_C', 'ses_B'])
      assert.deepEqual(await store.listOpenSessions(), [
        {id: 'ses_B', startedAt: '2026-01-01T10:00:01.000Z'},
        {id: 'ses_C', startedAt: '2026-01-01T10:00:02.000Z'},
      ])
    })

    it('keeps what it stored across a reopen, and a reopen migrates nothing twice', async () => {
      await store.createAgent('db-agent', 'ag_1', 'h')
      await store.startSession(session('ses_A', '2026-01-01T10:00:00.000Z'))
      await store.close()
      opened.splice(opened.indexOf(store), 1)
      const again = await open()
      assert.equal((await again.findAgentById('ag_1'))?.name, 'db-agent')
      assert.deepEqual((await again.listOpenSessions()).map((s) => s.id), ['ses_A'])
      await again.ping()
      if (backing.url) {
        const rows = await adminQuery<{version: number}>('SELECT version FROM schema_migrations ORDER BY version', backing.url)
        assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version))
      }
    })

    it('opens safely when several gateways start on a new store at once', async () => {
      const empty = await backend.fresh()
      const stores = await Promise.all([open(empty), open(empty), open(empty), open(empty)])
      await stores[0].createAgent('shared', 'ag_1', 'h')
      for (const s of stores) assert.equal((await s.findAgentById('ag_1'))?.name, 'shared', 'every instance sees one schema and one row')
      if (empty.url) {
        const rows = await adminQuery<{version: number}>('SELECT version FROM schema_migrations ORDER BY version', empty.url)
        assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version), 'each migration recorded once')
      }
    })
  })
}
