// One audit log on one PostgreSQL store, written by three writers at once (three replicas, each
// with its own pool, key and witness file): one gap-free total order, the chain and Merkle tree
// verify (the live verifier on a snapshot of the store), every checkpoint verifies with the key of
// the replica that signed it, a restarted replica vouches for the store, a store replaced by an
// empty one is refused, and a store that stops answering fails appends with AUDIT_UNAVAILABLE
// and acknowledges nothing, then recovers without a gap. Databases: hoop_audit_log_test_<pid>_<n>.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {createServer, connect, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import {events, type AppendedEvent} from '../../src/audit/index.js'
import {publicKeyFromPem, verifyTreeHead, type SignedTreeHead} from '../../src/audit/keys.js'
import {PgAuditLog} from '../../src/audit/pg-log.js'
import {withAuditSnapshot} from '../../src/audit/pg-snapshot.js'
import {verifyLive} from '../../src/audit/verify.js'
import {HoopError} from '../../src/shared/errors.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {tempDir} from '../helpers/cli.js'
import {adminQuery} from './backends.js'

const made: string[] = []
async function freshDatabase(): Promise<string> {
  const name = `hoop_audit_log_test_${process.pid}_${made.length}`
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await adminQuery(`CREATE DATABASE ${name}`)
  made.push(name)
  return name
}

const urlOf = (name: string, port = 5432) => `postgresql://postgres@127.0.0.1:${port}/${name}`

function policyEvent(writer: string, i: number) {
  return events.policyReload({source: `${writer}/policy.yaml`, sha256: i.toString(16).padStart(64, '0'), rules: i, ok: true})
}

interface Replica {
  store: PostgresStore
  log: PgAuditLog
  dir: {path: string; cleanup(): void}
  witness: string
}

describe('one audit log on PostgreSQL across replicas', () => {
  after(async () => {
    for (const name of made) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  })
  let db: string
  const replicas: Replica[] = []
  const open = async (dir = tempDir('hoop-pg-audit-'), url = urlOf(db)): Promise<Replica> => {
    const store = await PostgresStore.open({url, poolSize: 3})
    const witness = join(dir.path, 'audit-witness.jsonl')
    try {
      const log = await PgAuditLog.open({store, dataDir: dir.path, checkpointEvery: {events: 40, ms: 0}, anchors: {witness}, vouch: {}})
      const r = {store, log, dir, witness}
      replicas.push(r)
      return r
    } catch (err) {
      await store.close()
      throw err
    }
  }
  const closeAll = async () => {
    for (const r of replicas.splice(0)) {
      await r.log.close()
      await r.store.close()
    }
  }

  beforeEach(async () => {
    db = await freshDatabase()
  })
  afterEach(closeAll)

  it('three writers appending at once make one gap-free order that verifies, each checkpoint with its signer key', async () => {
    const [a, b, c] = [await open(), await open(), await open()]
    const acks = new Map<string, AppendedEvent[]>()
    for (let round = 0; round < 8; round++) {
      await Promise.all(
        [a, b, c].map(async (r, w) => {
          const mine = await Promise.all(Array.from({length: 25}, (_, i) => r.log.append(policyEvent(`w${w}`, round * 25 + i))))
          acks.set(`w${w}`, [...(acks.get(`w${w}`) ?? []), ...mine])
        }),
      )
    }
    const all = [...acks.values()].flat()
    assert.equal(all.length, 600)
    const seqs = all.map((e) => e.seq).sort((x, y) => x - y)
    assert.deepEqual(seqs, Array.from({length: 600}, (_, i) => i + 1), 'one total order: every seq once, no gap')
    for (const [w, mine] of acks) {
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i].seq > mine[i - 1].seq, `${w} keeps its own append order`)
    }
    for (const r of [a, b, c]) await r.log.signHead()
    const result = await withAuditSnapshot(a.store, {}, (snap) => verifyLive(snap))
    assert.equal(result.ok, true, JSON.stringify(result.failures.slice(0, 3)))
    assert.equal(result.events, 600)
    assert.equal(result.treeSize, 600)

    const keys = new Map((await a.store.query('SELECT fingerprint, public_pem FROM audit_keys')).map((r) => [r.fingerprint as string, r.public_pem as string]))
    assert.deepEqual(new Set(keys.keys()), new Set([a, b, c].map((r) => r.log.fingerprint())), 'every replica key is in audit_keys')
    const cps = await a.store.query('SELECT * FROM audit_checkpoints ORDER BY tree_size')
    // One checkpoint per group commit that crosses 40 events since the last one (a group may cross by more).
    assert.ok(cps.length >= 5, `checkpoints every 40 events or so: ${cps.length}`)
    for (const cp of cps) {
      const sth = {v: 1, ...cp, tree_size: Number(cp.tree_size)} as SignedTreeHead
      assert.ok(verifyTreeHead(sth, publicKeyFromPem(keys.get(sth.key_fingerprint)!)), `checkpoint ${sth.tree_size} verifies with its signer's key`)
    }
    // Each witness holds only heads its own replica signed.
    for (const r of [a, b, c]) {
      for (const line of readFileSync(r.witness, 'utf8').trim().split('\n')) {
        const head = (JSON.parse(line) as {tree_head: SignedTreeHead}).tree_head
        assert.equal(head.key_fingerprint, r.log.fingerprint())
        assert.ok(verifyTreeHead(head, publicKeyFromPem(r.log.publicKeyPem())))
      }
    }
  })

  it('a replica restarted on the same store vouches for it and continues the chain; an empty store in its place is refused', async () => {
    const a = await open()
    await Promise.all(Array.from({length: 50}, (_, i) => a.log.append(policyEvent('a', i))))
    await closeAll() // close signs a final head to a's witness
    const again = await open(a.dir)
    assert.equal(again.log.size, 50)
    const next = await again.log.append(policyEvent('a', 50))
    assert.equal(next.seq, 51)
    await closeAll()
    // The store is replaced by a new, empty one (a restore that lost everything).
    await adminQuery(`DROP DATABASE ${db} WITH (FORCE)`)
    await adminQuery(`CREATE DATABASE ${db}`)
    await assert.rejects(open(a.dir), (err: unknown) => err instanceof HoopError && err.code === 'AUDIT_STORE_REFUSED' && /covers 51 events, but the store is empty/.test(err.message))
  })

  it('a store that stops answering fails appends with AUDIT_UNAVAILABLE, acknowledges none, and the log goes on without a gap once it is back', async () => {
    const proxy = await tcpProxy(5432)
    const r = await open(undefined, urlOf(db, proxy.port))
    const first = await Promise.all(Array.from({length: 10}, (_, i) => r.log.append(policyEvent('p', i))))
    assert.equal(first.at(-1)!.seq, 10)
    await proxy.stop()
    const refused = await Promise.allSettled(Array.from({length: 10}, (_, i) => r.log.append(policyEvent('p', 100 + i))))
    for (const s of refused) {
      assert.equal(s.status, 'rejected')
      const err = (s as PromiseRejectedResult).reason as HoopError
      assert.equal(err.code, 'AUDIT_UNAVAILABLE')
      assert.match(err.message, /audit store cannot write/)
    }
    const [{n}] = await adminQuery<{n: number}>('SELECT count(*)::int AS n FROM audit_events', urlOf(db))
    assert.equal(n, 10, 'nothing refused was stored')
    await proxy.start()
    const back = await r.log.append(policyEvent('p', 200))
    assert.equal(back.seq, 11, 'the chain continues right after the last committed event')
    const result = await withAuditSnapshot(r.store, {}, (snap) => verifyLive(snap))
    assert.equal(result.ok, true)
    assert.equal(result.events, 11)
    await proxy.stop()
    // The log must close without throwing while the store is gone (its final checkpoint fails and is logged).
    await r.log.close()
    await closeAll()
  })
})

/** A TCP forwarder to PostgreSQL that can be cut (every connection destroyed, port closed) and restored on the same port. */
async function tcpProxy(targetPort: number): Promise<{port: number; stop(): Promise<void>; start(): Promise<void>}> {
  let server: Server | undefined
  const sockets = new Set<Socket>()
  let port = 0
  const start = async () => {
    server = createServer((c) => {
      const u = connect(targetPort, '127.0.0.1')
      for (const s of [c, u]) {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
        s.on('error', () => s.destroy())
      }
      c.pipe(u)
      u.pipe(c)
    })
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject)
      server!.listen(port, '127.0.0.1', () => resolve())
    })
    port = (server.address() as {port: number}).port
  }
  await start()
  return {
    get port() {
      return port
    },
    start,
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server!.close(() => resolve()))
    },
  }
}
