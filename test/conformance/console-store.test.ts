// The web console's login state on both stores (SQLite in a temp dir, PostgreSQL in a database of
// its own), with an injected clock: sessions made, read and ended; expiry; the bounds under a
// flood; a pending login taken once, even by two replicas at the same moment; and a second store
// object on the same backing (another replica) that sees the first one's sessions, logins and
// sign-outs. Rows are keyed by a hash: the raw cookie id and login state are never stored.
import assert from 'node:assert/strict'
import {consoleStoreFor} from '../../src/console/store-for.js'
import type {ConsoleSession, ConsoleStore, ConsoleStoreLimits, PendingLogin} from '../../src/console/store.js'
import type {Identity} from '../../src/identity/types.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {SqliteStore} from '../../src/store/sqlite.js'
import type {Store} from '../../src/store/types.js'
import {type Backend, type Backing, postgresBackend, sqliteBackend} from './backends.js'

const alice: Identity = {kind: 'user', subject: 'alice-sub', name: 'alice@example.com', email: 'alice@example.com', groups: ['dba'], issuer: 'https://id.example.com', expiresAt: 1_900_000_000}
const T0 = Date.parse('2026-01-01T10:00:00Z')
const session = (expiresAt: number, csrf = 'csrf-1'): ConsoleSession => ({identity: alice, csrf, expiresAt})
const login = (expiresAt: number, verifier = 'v'.repeat(43)): PendingLogin => ({verifier, next: '/console/approvals', expiresAt})

for (const make of [sqliteBackend, postgresBackend]) {
  const backend: Backend = make()
  describe(`console store conformance: ${backend.name}`, function () {
    this.timeout(30_000)
    const opened: Store[] = []
    let backing: Backing
    let first: Store
    let store: ConsoleStore
    /** A console store on its own Store over the same backing: another replica. */
    const replica = async (limits?: ConsoleStoreLimits) => {
      const s = await backing.open()
      opened.push(s)
      return {raw: s, console: consoleStoreFor(s, limits)}
    }
    /** Rows of one table, read beside the store under test. */
    const rows = async (sql: string): Promise<Array<Record<string, unknown>>> =>
      first instanceof PostgresStore ? first.query(sql) : (first as SqliteStore).db.prepare(sql).all() as Array<Record<string, unknown>>

    beforeEach(async () => {
      backing = await backend.fresh()
      const r = await replica({maxSessions: 3, maxLogins: 3})
      first = r.raw
      store = r.console
    })
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
    })
    after(() => backend.cleanup())

    it('keeps a session under the hash of its id, reads it back whole, and ends it', async () => {
      await store.addSession('cookie-id-1', session(T0 + 3_600_000), T0)
      assert.deepEqual(await store.session('cookie-id-1', T0 + 1), session(T0 + 3_600_000))
      assert.equal(await store.session('cookie-id-2', T0 + 1), undefined, 'another id finds nothing')
      const keys = await rows('SELECT key, identity_json, csrf FROM console_sessions')
      assert.equal(keys.length, 1)
      assert.notEqual(keys[0].key, 'cookie-id-1', 'the raw id is not the key')
      assert.ok(!JSON.stringify(keys).includes('cookie-id-1'), 'the raw id is nowhere in the row')
      await store.endSession('cookie-id-1')
      assert.equal(await store.session('cookie-id-1', T0 + 1), undefined)
      await store.endSession('cookie-id-1') // ending twice is not an error
    })

    it('never returns an expired session or login, and sweeps them on the next insert', async () => {
      await store.addSession('short', session(T0 + 60_000), T0)
      await store.addLogin('old-state', login(T0 + 600_000), T0)
      assert.ok(await store.session('short', T0 + 59_999))
      assert.equal(await store.session('short', T0 + 60_000), undefined, 'expired at its expiry time')
      assert.equal(await store.takeLogin('old-state', T0 + 600_000), undefined, 'an expired login is refused')
      assert.equal((await rows('SELECT key FROM console_logins')).length, 0, 'and taken away')

      await store.addLogin('expiring', login(T0 + 600_000), T0)
      await store.addLogin('fresh', login(T0 + 1_300_000), T0 + 700_000)
      assert.equal((await rows('SELECT key FROM console_logins')).length, 1, 'the expired login went with the next insert')
      await store.addSession('long', session(T0 + 3_600_000), T0 + 61_000)
      assert.equal((await rows('SELECT key FROM console_sessions')).length, 1, 'the expired session went with the next insert')
      assert.ok(await store.takeLogin('fresh', T0 + 700_001))
    })

    it('holds its bounds against a flood: the newest stay, the oldest give way', async () => {
      for (let i = 0; i < 40; i++) await store.addLogin(`state-${i}`, login(T0 + 600_000 + i), T0 + i)
      assert.equal((await rows('SELECT key FROM console_logins')).length, 3)
      assert.equal(await store.takeLogin('state-36', T0 + 50), undefined, 'the fourth newest is gone')
      for (const i of [37, 38, 39]) assert.ok(await store.takeLogin(`state-${i}`, T0 + 50), `state-${i} stays`)

      for (let i = 0; i < 5; i++) await store.addSession(`id-${i}`, session(T0 + 3_600_000), T0 + i)
      assert.equal((await rows('SELECT key FROM console_sessions')).length, 3)
      assert.equal(await store.session('id-1', T0 + 10), undefined)
      for (const i of [2, 3, 4]) assert.ok(await store.session(`id-${i}`, T0 + 10), `id-${i} stays`)
    })

    it('gives a pending login to exactly one of two replicas taking it at once, and never again', async () => {
      const other = (await replica()).console
      for (let i = 0; i < 20; i++) {
        await store.addLogin(`race-${i}`, login(T0 + 600_000, `verifier-${i}`), T0)
        const got = await Promise.all([store.takeLogin(`race-${i}`, T0 + 1), other.takeLogin(`race-${i}`, T0 + 1)])
        const winners = got.filter((g) => g !== undefined)
        assert.equal(winners.length, 1, `race ${i}: exactly one replica gets the login`)
        assert.deepEqual(winners[0], login(T0 + 600_000, `verifier-${i}`))
        assert.equal(await store.takeLogin(`race-${i}`, T0 + 2), undefined, 'a replayed callback finds nothing')
      }
    })

    it('lets a second replica on the same store finish a login, use the session, and see its sign-out', async () => {
      const b = (await replica()).console
      await store.addLogin('state-a', login(T0 + 600_000), T0)
      assert.deepEqual(await b.takeLogin('state-a', T0 + 1000), login(T0 + 600_000), 'B finishes the login A started')
      assert.equal(await store.takeLogin('state-a', T0 + 2000), undefined, 'and A cannot finish it again')

      await b.addSession('cookie-b', session(T0 + 3_600_000, 'csrf-b'), T0 + 1000)
      assert.deepEqual(await store.session('cookie-b', T0 + 2000), session(T0 + 3_600_000, 'csrf-b'), 'A serves the session B opened')
      await store.endSession('cookie-b')
      assert.equal(await b.session('cookie-b', T0 + 3000), undefined, 'signed out on A is signed out on B')
    })
  })
}
