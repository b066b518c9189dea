// The `replicas` table on the PostgreSQL store (src/gateway/replicas.ts): a dead replica's
// sessions are ended exactly once when several live replicas look for the dead at the same time,
// a replica that beats is never taken for dead, and the live list leaves out the dead and the
// unroutable. Database: hoop_pg_replicas_test_<pid>, dropped afterwards.
import assert from 'node:assert/strict'
import {liveReplicaUrls, ReplicaHeartbeat} from '../../src/gateway/replicas.js'
import type {HoopError} from '../../src/shared/errors.js'
import {silentLogger} from '../../src/shared/log.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {adminQuery} from './backends.js'

const DB = `hoop_pg_replicas_test_${process.pid}`
const URL = `postgresql://postgres@127.0.0.1:5432/${DB}`

describe('replica heartbeats on the PostgreSQL store', () => {
  const stores: PostgresStore[] = []
  const open = async () => {
    const s = await PostgresStore.open({url: URL, poolSize: 3})
    stores.push(s)
    return s
  }

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    await adminQuery(`CREATE DATABASE ${DB}`)
  })

  after(async () => {
    for (const s of stores) await s.close()
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
  })

  it('three live replicas racing for one dead row end its sessions once, and delete the row', async () => {
    const ended: string[] = []
    const live = await Promise.all(
      ['l1', 'l2', 'l3'].map(async (id) =>
        ReplicaHeartbeat.register({
          store: await open(),
          id,
          url: `http://127.0.0.1:1/${id}`,
          intervalMs: 1000,
          logger: silentLogger,
          endSessionsOf: async (dead) => {
            // Slow, so that the others look while this one holds the row.
            await new Promise((r) => setTimeout(r, 300))
            ended.push(`${id} ended ${dead}`)
            return 1
          },
        }),
      ),
    )
    // A replica whose last beat is a minute old (its interval: 1 s).
    await adminQuery("INSERT INTO replicas VALUES ('dead', 'http://127.0.0.1:2', now() - interval '2 minutes', now() - interval '1 minute', 1000)", URL)
    const counts = await Promise.all(live.flatMap((r) => [r.endDead(), r.endDead()]))
    assert.equal(counts.reduce((a, b) => a + b, 0), 1)
    assert.equal(ended.length, 1, ended.join('; '))
    assert.match(ended[0], /ended dead$/)
    assert.deepEqual((await adminQuery<{id: string}>('SELECT id FROM replicas ORDER BY id', URL)).map((r) => r.id), ['l1', 'l2', 'l3'])
    for (const r of live) await r.stop()
  })

  it('a replica paused inside a transaction does not hold the others up: the server ends that transaction, and a live replica ends its sessions', async () => {
    // What PostgreSQL sees of a replica paused in the middle of an audit commit (SIGSTOP, a frozen
    // VM): its transaction share-locked its own row, then nothing more comes. The row stops beating.
    const paused = await PostgresStore.open({url: URL, poolSize: 1, idleInTransactionMs: 1000})
    stores.push(paused)
    await adminQuery("INSERT INTO replicas VALUES ('paused', 'http://127.0.0.1:5', now(), now(), 200)", URL)
    let resume = () => {}
    const held = paused.transaction(async (q) => {
      await q("SELECT id FROM replicas WHERE id = 'paused' FOR SHARE")
      await new Promise<void>((r) => (resume = r))
      await q('SELECT 1')
    })
    // The live replica takes longer than that timeout to end the sessions: its own transaction,
    // idle meanwhile, holds the dead row and must not be ended by the timeout.
    const ended: string[] = []
    const liveStore = await PostgresStore.open({url: URL, poolSize: 3, idleInTransactionMs: 1000})
    stores.push(liveStore)
    const live = await ReplicaHeartbeat.register({
      store: liveStore,
      id: 'alive',
      url: 'http://127.0.0.1:6',
      intervalMs: 200,
      logger: silentLogger,
      endSessionsOf: async (dead) => {
        await new Promise((r) => setTimeout(r, 1500))
        ended.push(dead)
        return 1
      },
    })
    // While the paused transaction holds the row, the live replica passes over it; once the server
    // has ended that transaction, it ends the sessions. 30 s is a generous bound for a 1 s timeout.
    try {
      const deadline = Date.now() + 30_000
      while (ended.length === 0 && Date.now() < deadline) {
        if ((await live.endDead()) === 0) await new Promise((r) => setTimeout(r, 100))
      }
      assert.deepEqual(ended, ['paused'], "the live replica ended the paused one's sessions")
      assert.deepEqual(await adminQuery("SELECT id FROM replicas WHERE id = 'paused'", URL), [], 'and removed its row')
    } finally {
      resume()
      await live.stop()
    }
    await assert.rejects(held, (e: HoopError) => e.code === 'STORE_UNAVAILABLE', 'the paused transaction was ended by the server: nothing it had not committed counts')
  })

  it('a replica that beats is live; one silent for 3 of its intervals is not listed; a wildcard URL is never listed', async () => {
    const store = await open()
    const r = await ReplicaHeartbeat.register({store, id: 'beats', url: 'http://127.0.0.1:3', intervalMs: 200, logger: silentLogger, endSessionsOf: async () => 0})
    await adminQuery("INSERT INTO replicas VALUES ('wild', 'http://0.0.0.0:8009', now(), now(), 5000)", URL)
    await adminQuery("INSERT INTO replicas VALUES ('quiet', 'http://127.0.0.1:4', now(), now() - interval '1 second', 200)", URL)
    assert.deepEqual(await liveReplicaUrls(store), ['http://127.0.0.1:3'])
    for (let i = 0; i < 5; i++) {
      await new Promise((res) => setTimeout(res, 200))
      await r.beat()
    }
    assert.deepEqual(await liveReplicaUrls(store), ['http://127.0.0.1:3'], 'still live after more than 3 intervals, since it beats')
    await r.stop()
    assert.deepEqual(await adminQuery("SELECT id FROM replicas WHERE id = 'beats'", URL), [], 'a clean stop removes the row')
    await adminQuery("DELETE FROM replicas WHERE id IN ('wild', 'quiet')", URL)
  })
})
