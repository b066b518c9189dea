// The background-job locks of the replicas (src/store/pg-locks.ts) against the real PostgreSQL: a
// replica frozen or cut off with its socket open lets go of its jobs once the server has heard
// nothing from it for the idle limit, and a live one keeps them past that limit (it pings).
import assert from 'node:assert/strict'
import {silentLogger} from '../../src/shared/log.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {freezableRelay} from '../helpers/freezable-relay.js'
import {eventually} from '../helpers/wait.js'
import {adminQuery, freshDatabase as freshDb} from './backends.js'

const made: string[] = []
const urlOf = (name: string, port = 5432) => `postgresql://postgres@127.0.0.1:${port}/${name}`

describe('background-job locks on PostgreSQL: frozen and live holders', function () {
  this.timeout(60_000)
  let db: string
  const stores: PostgresStore[] = []
  before(async () => {
    db = await freshDb('hoop_pg_locks_test', made)
  })
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
  })
  after(async () => {
    for (const name of made) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  })
  const open = async (url: string) => {
    const s = await PostgresStore.open({url, poolSize: 1})
    stores.push(s)
    return s
  }

  it('a holder whose link goes silent (frozen, cut off) loses its job to another replica, and cannot write as its driver afterwards', async () => {
    const relay = await freezableRelay()
    try {
      const frozenStore = await open(urlOf(db, relay.port))
      const a = frozenStore.lockSession(silentLogger, {idleSessionMs: 800, pingMs: 200})
      const b = (await open(urlOf(db))).lockSession(silentLogger)
      try {
        assert.equal(await a.claim('sink:siem'), 'gained')
        assert.equal(await b.claim('sink:siem'), 'taken')
        relay.freeze()
        // Without the server's idle limit the lock would stay with the frozen session for as long
        // as TCP keepalive takes to give up on it (two hours by default).
        assert.equal(await eventually('the other replica takes the job', 30_000, async () => ((await b.claim('sink:siem')) === 'gained' ? 'gained' : undefined)), 'gained')
        relay.cut()
        await eventually('the frozen holder learns it lost its lock', 30_000, async () => (a.holds('sink:siem') ? undefined : true))
        await assert.rejects(a.query('sink:siem', 'SELECT 1'), /no longer holds the lock/)
      } finally {
        await a.close()
        await b.close()
      }
    } finally {
      relay.close()
    }
  })

  it('a live holder keeps its job well past the idle limit: its pings keep the session from being silent', async () => {
    const a = (await open(urlOf(db))).lockSession(silentLogger, {idleSessionMs: 600, pingMs: 150})
    const b = (await open(urlOf(db))).lockSession(silentLogger)
    try {
      assert.equal(await a.claim('retention'), 'gained')
      const [{t}] = await adminQuery<{t: string}>(`SELECT setting AS t FROM pg_settings WHERE name = 'idle_session_timeout'`, urlOf(db))
      assert.equal(t, '0', 'the limit is the lock session\'s own, not the server\'s')
      // Five idle limits without a job query: only the pings keep the session alive.
      await new Promise((r) => setTimeout(r, 3000))
      assert.equal(a.holds('retention'), true)
      assert.equal(await b.claim('retention'), 'taken')
      assert.equal(await a.claim('retention'), 'held')
      assert.deepEqual(await a.query('retention', 'SELECT 1 AS one'), [{one: 1}])
    } finally {
      await a.close()
      await b.close()
    }
  })
})
