// The `replicas` table on the PostgreSQL store (src/gateway/replicas.ts): a dead replica's
// sessions are ended exactly once when several live replicas look for the dead at the same time,
// a replica that beats is never taken for dead, and the live list leaves out the dead and the
// unroutable. Database: hoop_pg_replicas_test_<pid>, dropped afterwards.
import assert from 'node:assert/strict'
import {liveReplicaUrls, ReplicaHeartbeat} from '../../src/gateway/replicas.js'
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
