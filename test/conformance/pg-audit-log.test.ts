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
import {PgAuditLog, REPLICA_EPOCH} from '../../src/audit/pg-log.js'
import {withAuditSnapshot} from '../../src/audit/pg-snapshot.js'
import {verifyLive} from '../../src/audit/verify.js'
import {HoopError} from '../../src/shared/errors.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {tempDir} from '../helpers/cli.js'
import {adminQuery, freshDatabase as freshDb} from './backends.js'

const made: string[] = []
const freshDatabase = (): Promise<string> => freshDb('hoop_audit_log_test', made)

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
    // /readyz: unavailable while the store is gone, even with no statement trying; a probe clears it once it is back.
    assert.equal(r.log.unavailable?.code, 'AUDIT_UNAVAILABLE')
    await r.log.probe()
    assert.ok(r.log.unavailable, 'a probe against the cut store keeps the log unavailable')
    await proxy.start()
    await r.log.probe()
    assert.equal(r.log.unavailable, undefined, 'the probe found the store writable again')
    assert.equal((await adminQuery<{n: number}>('SELECT count(*)::int AS n FROM audit_events', urlOf(db)))[0].n, 10, 'the probe wrote no event')
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

  it('a replica frozen inside a group commit (the head row locked) holds the others up only until the store ends its idle transaction', async () => {
    const a = await open()
    const b = await open()
    await a.log.append(policyEvent('a', 0))
    // The default every store connection gets: no transaction waits on a silent client for long.
    const [{t}] = await a.store.query('SELECT current_setting($1) AS t', ['idle_in_transaction_session_timeout'])
    assert.equal(t, '5s')
    // A frozen replica: a transaction holds the head row's lock and sends nothing more. The
    // store connection gives it 300 ms here (5 s by default) before PostgreSQL ends it.
    const frozen = await PostgresStore.open({url: urlOf(db), poolSize: 1, idleInTransactionMs: 300})
    let thaw!: () => void
    const thawed = new Promise<void>((r) => (thaw = r))
    let locked!: () => void
    const holding = new Promise<void>((r) => (locked = r))
    const stalled = frozen.transaction(async (q) => {
      await q('SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE')
      locked()
      await thawed
      await q('SELECT 1')
    })
    await holding
    try {
      // B's append waits for the head row; without the limit it would wait past its query
      // time-out (10 s) and be refused.
      const appended = await b.log.append(policyEvent('b', 1))
      assert.equal(appended.seq, 2)
    } finally {
      thaw()
    }
    await assert.rejects(stalled, (err: HoopError) => err.code === 'STORE_UNAVAILABLE', 'the frozen transaction learns on waking that it was ended')
    // Its pool replaces the lost connection.
    assert.deepEqual(await frozen.query('SELECT 1 AS one'), [{one: 1}])
    await frozen.close()
  })

  it('a fenced replica (its row ended by another) records nothing more of the sessions it had open, and goes on as a new incarnation', async () => {
    const r = await open()
    const register = async () =>
      (await r.store.query(
        `INSERT INTO replicas (id, url, started_at, heartbeat_at, heartbeat_ms) VALUES ('r1', 'http://r1', clock_timestamp(), now(), 300)
         ON CONFLICT (id) DO UPDATE SET started_at = clock_timestamp() RETURNING ${REPLICA_EPOCH} AS epoch`,
      ))[0].epoch as string
    let fenced = 0
    r.log.setFence({replica: 'r1', epoch: await register(), onFenced: () => fenced++})
    const at = (kind: 'session.start' | 'statement' | 'session.end', session: string) => ({kind, session, time: new Date().toISOString(), data: {}})
    await r.log.append(at('session.start', 'old'))
    await r.log.append(at('statement', 'old'))
    // Another replica took r1 for dead: it ended r1's sessions and deleted its row (replicas.ts).
    await r.store.query("DELETE FROM replicas WHERE id = 'r1'")
    const refused = await Promise.allSettled([r.log.append(at('statement', 'old')), r.log.append(policyEvent('p', 1))])
    for (const s of refused) {
      assert.equal(s.status, 'rejected')
      assert.match(((s as PromiseRejectedResult).reason as HoopError).message, /taken for dead/)
    }
    assert.equal(fenced, 1, 'the replica was told once')
    await r.log.probe()
    assert.match(r.log.unavailable?.message ?? '', /taken for dead/, 'and /readyz says so')

    // Registered again: the old session's stragglers stay refused; new sessions and other events are recorded.
    r.log.setFence({replica: 'r1', epoch: await register(), onFenced: () => fenced++})
    await assert.rejects(r.log.append(at('statement', 'old')), /the session is over/)
    await assert.rejects(r.log.append(at('session.end', 'old')), /the session is over/)
    await r.log.append(at('session.start', 'new'))
    await r.log.append(at('statement', 'new'))
    await r.log.append(policyEvent('p', 2))
    const kinds = await adminQuery<{kind: string; session: string | null}>('SELECT kind, session FROM audit_events ORDER BY seq', urlOf(db))
    assert.deepEqual(
      kinds.map((k) => `${k.kind}:${k.session ?? '-'}`),
      ['session.start:old', 'statement:old', 'session.start:new', 'statement:new', 'policy.reload:-'],
    )
    assert.equal(r.log.unavailable, undefined)
    assert.equal(fenced, 1)
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
