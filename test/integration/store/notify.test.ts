// LISTEN/NOTIFY between replicas on the real PostgreSQL (src/store/notify.ts): signals published on
// one store reach another store's listener; a revocation made on the store is heard by every
// listener; junk on a channel is ignored; a listener whose connection is killed with
// pg_terminate_backend comes back and asks for a resync, and so does one whose connection hangs
// silently (its probe finds it out); an approval decided through one service
// wakes a wait on another whose own re-read is an hour away; a policy reload on one gateway makes
// another reload its file, and a gateway whose file gives another version says so in /readyz.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {ApprovalService, approvalStoreFor} from '../../../src/approvals/index.js'
import {startGateway} from '../../../src/gateway/main.js'
import type {Identity} from '../../../src/identity/types.js'
import type {ReviewDecision} from '../../../src/policy/index.js'
import {silentLogger} from '../../../src/shared/log.js'
import {openSignals, type Signal, type Signals} from '../../../src/store/notify.js'
import {PostgresStore} from '../../../src/store/postgres.js'
import {adminQuery} from '../../conformance/backends.js'
import {tempDir} from '../../helpers/cli.js'
import {freezableRelay} from '../../helpers/freezable-relay.js'

const DB = `hoop_notify_test_${process.pid}`
const URL_ = `postgresql://postgres@127.0.0.1:5432/${DB}`

/** Resolves with the first signal `s` hears that `match` accepts. */
function heard(s: Signals, match: (signal: Signal, from?: string) => boolean): Promise<{signal: Signal; from?: string}> {
  return new Promise((resolve) => {
    const on = (signal: Signal, from?: string) => {
      if (!match(signal, from)) return
      s.off('signal', on)
      resolve({signal, from})
    }
    s.on('signal', on)
  })
}

describe('store signals between replicas (LISTEN/NOTIFY on the real PostgreSQL)', function () {
  this.timeout(60_000)
  const stores: PostgresStore[] = []
  const signals: Signals[] = []
  const open = async () => {
    const store = await PostgresStore.open({url: URL_, poolSize: 2})
    stores.push(store)
    const s = await openSignals({...store.listenOptions(silentLogger), backoffMs: 50, maxBackoffMs: 500})
    signals.push(s)
    return {store, s}
  }

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB}`)
    await adminQuery(`CREATE DATABASE ${DB}`)
  })
  afterEach(async () => {
    for (const s of signals.splice(0)) await s.close()
    for (const s of stores.splice(0)) await s.close()
  })
  after(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
  })

  it("a signal published on one replica reaches the other, naming the sender", async () => {
    const a = await open()
    const b = await open()
    const got = heard(b.s, (sig) => sig.kind === 'approval')
    await a.s.publish({kind: 'approval', id: 'apr_abcdefghijkl'})
    const {signal, from} = await got
    assert.deepEqual(signal, {kind: 'approval', id: 'apr_abcdefghijkl'})
    assert.equal(from, a.s.replica)
    assert.notEqual(a.s.replica, b.s.replica)
  })

  it('a revocation made on the store is heard by every listener, and only once it happened', async () => {
    const a = await open()
    const b = await open()
    await a.store.createAgent('edge-1', 'ag_notify_1', 'hash')
    const seen = [heard(a.s, (sig) => sig.kind === 'revoked'), heard(b.s, (sig) => sig.kind === 'revoked')]
    assert.equal(await a.store.revokeAgent('no-such-agent'), undefined, 'nothing revoked, nothing sent')
    const rec = await a.store.revokeAgent('edge-1')
    assert.ok(rec?.revokedAt)
    for (const got of await Promise.all(seen)) assert.deepEqual(got.signal, {kind: 'revoked', what: 'agent', name: 'edge-1'})
    // How long a revocation takes to reach another replica's listener (printed, not asserted).
    const took: number[] = []
    for (let i = 0; i < 20; i++) {
      await a.store.createAgent(`edge-m${i}`, `ag_notify_m${i}`, 'hash')
      const got = heard(b.s, (sig) => sig.kind === 'revoked' && sig.name === `edge-m${i}`)
      const t0 = process.hrtime.bigint()
      await a.store.revokeAgent(`edge-m${i}`)
      await got
      took.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
    took.sort((x, y) => x - y)
    console.log(`      revocation heard by the other replica ${took[10].toFixed(1)} ms after the UPDATE was sent (median of 20; max ${took[19].toFixed(1)} ms)`)
    await a.store.createServiceAccount('ci-bot', ['eng'], 'sa_notify_1', 'hash')
    const sa = heard(b.s, (sig) => sig.kind === 'revoked')
    await a.store.revokeServiceAccount('ci-bot')
    assert.deepEqual((await sa).signal, {kind: 'revoked', what: 'service-account', name: 'ci-bot'})
  })

  it('ignores what hoop did not send (junk, wrong fields, oversized) and keeps listening', async () => {
    const a = await open()
    const got = heard(a.s, () => true)
    for (const [channel, payload] of [
      ['hoop_revocations', 'not json'],
      ['hoop_revocations', '{"what":"agent","name":"bad name with spaces"}'],
      ['hoop_revocations', '[1,2]'],
      ['hoop_policy', '{"version":"short"}'],
      ['hoop_approvals', JSON.stringify({id: 'apr_x', pad: 'x'.repeat(5000)})],
    ]) {
      await adminQuery(`SELECT pg_notify('${channel}', '${payload.replace(/'/g, "''")}')`, URL_)
    }
    await a.s.publish({kind: 'revoked', what: 'agent', name: 'after-junk'})
    assert.deepEqual((await got).signal, {kind: 'revoked', what: 'agent', name: 'after-junk'}, 'the first signal delivered is the first valid one')
  })

  it('a listener whose connection is terminated reconnects, asks for a resync, and hears again', async () => {
    const a = await open()
    const b = await open()
    const pids = await adminQuery<{pid: number}>(`SELECT pid FROM pg_stat_activity WHERE datname = '${DB}' AND application_name = 'hoop-listen'`, URL_)
    assert.equal(pids.length, 2, 'one listening connection per replica')
    const resync = once(b.s, 'resync')
    // Both listeners go: whichever is b's is among them.
    for (const {pid} of pids) await adminQuery(`SELECT pg_terminate_backend(${pid})`, URL_)
    await resync
    const got = heard(b.s, (sig) => sig.kind === 'approval')
    await a.s.publish({kind: 'approval', id: 'apr_after_reconnect'})
    assert.equal((await got).from, a.s.replica)
    // b has resynced; a reconnects on its own schedule: wait for it (a few seconds at most, 30 s
    // allowed). A terminated backend may linger in pg_stat_activity a moment after its client saw
    // the error and reconnected, so the new connections are told apart from the old by pid.
    const old = new Set(pids.map((p) => p.pid))
    const deadline = Date.now() + 30_000
    let now: number[]
    for (;;) {
      now = (await adminQuery<{pid: number}>(`SELECT pid FROM pg_stat_activity WHERE datname = '${DB}' AND application_name = 'hoop-listen'`, URL_)).map((p) => p.pid)
      if ((now.length === 2 && now.every((pid) => !old.has(pid))) || Date.now() > deadline) break
      await new Promise((r) => setTimeout(r, 100))
    }
    assert.deepEqual({listening: now.length, old: now.filter((pid) => old.has(pid))}, {listening: 2, old: []}, 'each replica listens on one new connection')
  })

  it('a listener whose connection hangs without an error (a network cut) is found out by its probe and reconnects', async () => {
    const relay = await freezableRelay()
    try {
      const store = await PostgresStore.open({url: URL_, poolSize: 2})
      stores.push(store)
      const s = await openSignals({...store.listenOptions(silentLogger), url: `postgresql://postgres@127.0.0.1:${relay.port}/${DB}`, backoffMs: 50, maxBackoffMs: 500, probeMs: 200, probeTimeoutMs: 500})
      signals.push(s)
      assert.equal(relay.connections(), 1)
      const resync = once(s, 'resync')
      relay.freeze()
      await resync
      assert.equal(relay.connections(), 2, 'a new listening connection was made')
      const got = heard(s, (sig) => sig.kind === 'approval')
      await adminQuery(`SELECT pg_notify('hoop_approvals', '{"id":"apr_after_the_cut"}')`, URL_)
      assert.deepEqual((await got).signal, {kind: 'approval', id: 'apr_after_the_cut'})
    } finally {
      relay.close()
    }
  })

  it('an approval decided through one service wakes a wait on another at once, not at its next re-read', async () => {
    const a = await open()
    const b = await open()
    const announce = (s: Signals) => (id: string) => void s.publish({kind: 'approval', id})
    // Each service re-reads only once an hour: only the signal can end the wait within the test.
    const svcA = new ApprovalService(approvalStoreFor(a.store), {announce: announce(a.s), recheckMs: 3_600_000})
    const svcB = new ApprovalService(approvalStoreFor(b.store), {announce: announce(b.s), recheckMs: 3_600_000})
    b.s.on('signal', (sig: Signal, from?: string) => {
      if (sig.kind === 'approval' && from !== b.s.replica) svcB.changed(sig.id)
    })
    const alice: Identity = {kind: 'user', subject: 'alice', name: 'alice', groups: ['eng']}
    const bob: Identity = {kind: 'user', subject: 'bob', name: 'bob', groups: ['dba']}
    const review: ReviewDecision = {ruleId: 'r', approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 3600, scope: 'statement'}
    const held = await svcB.resolve({identity: alice, connection: 'pg', statement: 'DELETE FROM t', review})
    assert.equal(held.status, 'pending')
    const waiting = svcB.wait(held.approval.id, alice, 3_600_000)
    await svcA.approve(held.approval.id, bob, 'ticket 16')
    assert.equal((await waiting).state, 'approved')
  })

  it('a policy reload on one gateway makes another reload its file; a differing file is reported in /readyz', async () => {
    const dir = tempDir('hoop-notify-policy-')
    const prev = process.env.HOOP_STORE_URL
    process.env.HOOP_STORE_URL = URL_
    const running: Array<Awaited<ReturnType<typeof startGateway>>> = []
    try {
      const policy = (rule: string) => `version: 1\nrules:\n  - {id: ${rule}, subjects: {groups: [eng]}, connections: ['*'], effect: allow}\n`
      // B's policy is a symlink in a directory of its own to a file elsewhere: writing the target
      // does not wake B's watcher (it watches the link's directory), so only A's signal can.
      for (const d of ['a', 'b', 'b-target']) mkdirSync(join(dir.path, d))
      writeFileSync(join(dir.path, 'a', 'policy.yaml'), policy('v1'))
      writeFileSync(join(dir.path, 'b-target', 'policy.yaml'), policy('v1'))
      symlinkSync(join(dir.path, 'b-target', 'policy.yaml'), join(dir.path, 'b', 'policy.yaml'))
      for (const d of ['a', 'b']) {
        writeFileSync(join(dir.path, d, 'gateway.yaml'), `store:\n  postgres:\n    url: {env: HOOP_STORE_URL}\npolicy: policy.yaml\n`)
        running.push(await startGateway({configFile: join(dir.path, d, 'gateway.yaml'), listen: '127.0.0.1:0', dataDir: join(dir.path, d, 'data'), dev: false, logger: silentLogger}))
      }
      const [a, b] = running
      const readyz = async (g: (typeof running)[number]) => (await fetch(`${g.gateway.url}/readyz`)).json() as Promise<{status: string; policy?: string}>
      assert.deepEqual(await readyz(b), {status: 'ok'})

      // B's file now says v2 too, unseen by B; A's reload to v2 makes B reload it.
      writeFileSync(join(dir.path, 'b-target', 'policy.yaml'), policy('v2'))
      const bReloaded = once(b.policy, 'reload')
      writeFileSync(join(dir.path, 'a', 'policy.yaml'), policy('v2'))
      const [result, cause] = (await bReloaded) as [{ok: boolean}, string]
      assert.equal(result.ok, true)
      assert.equal(cause, 'signal')
      assert.equal(b.policy.current.rules[0].id, 'v2')
      assert.equal(b.gateway.policyDiffers, false)
      assert.deepEqual(await readyz(b), {status: 'ok'})

      // A moves to v3; B's file still says v2: B keeps enforcing v2 and says so.
      const bAgain = once(b.policy, 'reload')
      writeFileSync(join(dir.path, 'a', 'policy.yaml'), policy('v3'))
      await bAgain
      assert.equal(b.policy.current.rules[0].id, 'v2')
      assert.equal(b.gateway.policyDiffers, true)
      assert.deepEqual(await readyz(b), {status: 'ok', policy: 'differs from the last reload on another replica'})
      assert.deepEqual(await readyz(a), {status: 'ok'})
    } finally {
      for (const r of running) await r.close()
      if (prev === undefined) delete process.env.HOOP_STORE_URL
      else process.env.HOOP_STORE_URL = prev
      dir.cleanup()
    }
  })
})
