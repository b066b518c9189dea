// The approval service on both approval stores (SQLite in a temp dir, PostgreSQL in a database of
// its own) with an injected clock: approve, N approvals, self-approval and non-approvers refused,
// reject, expiry, one-time consumption, replay for another statement, session grants, the audit
// hook, and two services on one store (two replicas) racing to spend one approval.
import assert from 'node:assert/strict'
import {ApprovalService, approvalStoreFor, reviewMessage, sessionReviewFor, type ApprovalEventKind, type ApprovalRecord} from '../../src/approvals/index.js'
import type {Identity} from '../../src/identity/types.js'
import {parsePolicy, type ReviewDecision} from '../../src/policy/index.js'
import {HoopError} from '../../src/shared/errors.js'
import type {Store} from '../../src/store/types.js'
import {adminQuery, type Backend, type Backing, postgresBackend, sqliteBackend} from './backends.js'

const alice: Identity = {kind: 'user', subject: 'alice-sub', name: 'alice@example.com', email: 'alice@example.com', groups: ['engineering']}
const bob: Identity = {kind: 'user', subject: 'bob-sub', name: 'bob@example.com', email: 'bob@example.com', groups: ['dba']}
const carol: Identity = {kind: 'user', subject: 'carol-sub', name: 'carol@example.com', groups: ['dba']}
const mallory: Identity = {kind: 'user', subject: 'mallory-sub', name: 'mallory@example.com', groups: ['engineering']}
/** A dba who also asks: the requester-is-approver case. */
const dave: Identity = {kind: 'user', subject: 'dave-sub', name: 'dave@example.com', groups: ['dba', 'engineering']}

const review: ReviewDecision = {ruleId: 'writes-need-approval', approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 3600, scope: 'statement'}
const UPDATE = 'UPDATE accounts SET plan = 1 WHERE id = 7'

function code(err: unknown): string {
  return err instanceof HoopError ? err.code : String(err)
}

for (const make of [sqliteBackend, postgresBackend]) {
  const backend: Backend = make()
  describe(`approvals conformance: ${backend.name}`, () => {
    const opened: Store[] = []
    let backing: Backing
    let clock: number
    let events: Array<[ApprovalEventKind, ApprovalRecord]>
    let svc: ApprovalService
    /** A service on its own Store over the same backing: another replica, or the same one restarted. */
    const replica = async (opts: ConstructorParameters<typeof ApprovalService>[1] = {now: () => clock}) => {
      const store = await backing.open()
      opened.push(store)
      return new ApprovalService(approvalStoreFor(store), opts)
    }

    beforeEach(async () => {
      backing = await backend.fresh()
      clock = Date.parse('2025-01-01T10:00:00Z')
      events = []
      svc = await replica({now: () => clock, onEvent: (k, r) => events.push([k, r])})
    })
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
    })
    after(() => backend.cleanup())

    it('creates one pending request per requester, connection and statement, and formats the refusal', async () => {
      const a = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      assert.equal(a.status, 'pending')
      assert.match(a.approval.id, /^apr_[A-Za-z0-9_-]{12}$/)
      assert.equal(a.approval.statement, UPDATE)
      assert.equal(a.approval.expiresAt, '2025-01-01T11:00:00.000Z')
      const again = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      assert.equal(again.approval.id, a.approval.id, 'the same triple reuses the pending request')
      assert.notEqual((await svc.resolve({identity: mallory, connection: 'prod', statement: UPDATE, review})).approval.id, a.approval.id)
      assert.notEqual((await svc.resolve({identity: alice, connection: 'staging', statement: UPDATE, review})).approval.id, a.approval.id)
      assert.equal(
        reviewMessage(a.approval),
        `hoop: approval required by rule writes-need-approval; request ${a.approval.id} is pending (0 of 1 approvals). An approver runs: hoop approvals approve ${a.approval.id} --reason "..."`,
      )
      assert.deepEqual(events.map(([k]) => k), ['requested', 'requested', 'requested'])
    })

    it('approves, lets the exact statement run once, then asks anew', async () => {
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      const approved = await svc.approve(approval.id, bob, 'ticket OPS-1')
      assert.equal(approved.state, 'approved')
      assert.equal(approved.decisions.length, 1)
      assert.equal(approved.decisions[0].approver.subject, 'bob-sub')
      assert.equal(approved.decisions[0].reason, 'ticket OPS-1')
      assert.equal(approved.decidedAt, '2025-01-01T10:00:00.000Z')
      assert.equal(approved.validUntil, '2025-01-01T11:00:00.000Z')

      clock += 60_000
      const run = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      assert.equal(run.status, 'approved')
      assert.equal(run.approval.id, approval.id)
      assert.equal(run.approval.state, 'used')
      assert.equal(run.approval.usedAt, '2025-01-01T10:01:00.000Z')

      const replay = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      assert.equal(replay.status, 'pending', 'a one-time approval cannot be replayed')
      assert.notEqual(replay.approval.id, approval.id)
      assert.deepEqual(events.map(([k]) => k), ['requested', 'approved', 'used', 'requested'])
    })

    it('does not cover another statement, another connection or another requester', async () => {
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      await svc.approve(approval.id, bob, 'ok')
      const other = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE + ' ', review})
      assert.equal(other.status, 'pending', 'one extra space is another statement')
      assert.notEqual(other.approval.id, approval.id)
      assert.equal((await svc.resolve({identity: alice, connection: 'staging', statement: UPDATE, review})).status, 'pending')
      assert.equal((await svc.resolve({identity: mallory, connection: 'prod', statement: UPDATE, review})).status, 'pending')
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: {...review, ruleId: 'other-rule'}})).status, 'pending')
      // ...and the original approval is still there for the statement it names.
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).status, 'approved')
    })

    it('refuses self-approval, even by someone in the approver group', async () => {
      const {approval} = await svc.resolve({identity: dave, connection: 'prod', statement: UPDATE, review})
      await assert.rejects(
        () => svc.approve(approval.id, dave, 'mine'),
        (e: HoopError) => code(e) === 'ACCESS_DENIED' && /requested apr_\S+ and cannot approve it/.test(e.message),
      )
      // Same subject but another kind is another identity.
      const twin: Identity = {...dave, kind: 'service-account'}
      assert.equal((await svc.approve(approval.id, twin, 'different principal')).state, 'approved')
    })

    it('refuses approvers outside the rule and names the approvers', async () => {
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      await assert.rejects(
        () => svc.approve(approval.id, mallory, 'lgtm'),
        (e: HoopError) => code(e) === 'ACCESS_DENIED' && e.message.includes('not an approver for rule writes-need-approval (approvers: groups dba)'),
      )
      await assert.rejects(() => svc.reject(approval.id, mallory, 'no'), (e: HoopError) => code(e) === 'ACCESS_DENIED')
      assert.equal((await svc.show(approval.id, alice)).state, 'pending')
    })

    it('needs N approvals from distinct approvers', async () => {
      const two = {...review, approvals: 2}
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: two})
      const first = await svc.approve(approval.id, bob, 'one')
      assert.equal(first.state, 'pending')
      assert.match(reviewMessage(first), /\(1 of 2 approvals\)/)
      await assert.rejects(() => svc.approve(approval.id, bob, 'again'), (e: HoopError) => code(e) === 'CONFLICT' && /needs 1 more/.test(e.message))
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: two})).status, 'pending')
      const second = await svc.approve(approval.id, carol, 'two')
      assert.equal(second.state, 'approved')
      assert.deepEqual(second.decisions.map((d) => d.approver.subject), ['bob-sub', 'carol-sub'])
      assert.deepEqual(events.map(([k]) => k), ['requested', 'approval', 'approved'])
    })

    it('ends a request on one rejection', async () => {
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: {...review, approvals: 2}})
      await svc.approve(approval.id, bob, 'fine by me')
      const rejected = await svc.reject(approval.id, carol, 'not during the freeze')
      assert.equal(rejected.state, 'rejected')
      assert.match(reviewMessage(rejected), /was rejected by carol@example.com: not during the freeze/)
      await assert.rejects(() => svc.approve(approval.id, {...carol, subject: 'erin'}, 'late'), (e: HoopError) => code(e) === 'CONFLICT' && /is rejected/.test(e.message))
      const next = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      assert.equal(next.status, 'pending')
      assert.notEqual(next.approval.id, approval.id, 'a rejected request is not reopened')
    })

    it('requires a justification of at most 1000 characters', async () => {
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      await assert.rejects(() => svc.approve(approval.id, bob, '   '), (e: HoopError) => code(e) === 'INVALID_INPUT' && /required/.test(e.message))
      await assert.rejects(() => svc.approve(approval.id, bob, 'x'.repeat(1001)), (e: HoopError) => code(e) === 'INVALID_INPUT' && /1001 characters; the limit is 1000/.test(e.message))
      assert.equal((await svc.approve(approval.id, bob, 'x'.repeat(1000))).state, 'approved')
    })

    it('expires pending requests after the ttl, and unused approvals too', async () => {
      const a = (await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).approval
      clock += 3600_000
      await assert.rejects(() => svc.approve(a.id, bob, 'too late'), (e: HoopError) => code(e) === 'CONFLICT' && /is expired/.test(e.message))
      assert.equal((await svc.show(a.id, alice)).state, 'expired')
      assert.equal((await svc.list(alice, {state: 'expired'})).length, 1)

      const b = (await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).approval
      assert.notEqual(b.id, a.id)
      await svc.approve(b.id, bob, 'ok')
      clock += 3600_000 + 1
      const late = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      assert.equal(late.status, 'pending', 'an approval not used within its ttl cannot be used')
      assert.equal((await svc.show(b.id, bob)).state, 'expired')
      assert.equal((await svc.show(b.id, bob)).decidedAt, '2025-01-01T11:00:00.000Z', 'the approval time is kept')
      assert.deepEqual(events.map(([k]) => k), ['requested', 'expired', 'requested', 'approved', 'expired', 'requested'])
    })

    it('session scope: one approval covers every statement of the rule on the connection until the grant ends', async () => {
      const session: ReviewDecision = {...review, ruleId: 'prod-writes-timeboxed', scope: 'session', ttlSeconds: 7200}
      const req = await svc.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'incident 42', durationSeconds: 1800})
      assert.equal(req.status, 'pending')
      assert.equal(req.approval.requestReason, 'incident 42')
      assert.match(reviewMessage(req.approval), /time-boxed access request apr_/)
      // A statement under the rule joins the same pending request.
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: session})).approval.id, req.approval.id)
      const ok = await svc.approve(req.approval.id, bob, 'go')
      assert.equal(ok.validUntil, '2025-01-01T10:30:00.000Z')
      for (const sql of [UPDATE, 'DELETE FROM t WHERE id = 1', UPDATE]) {
        assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: sql, review: session})).status, 'approved')
      }
      assert.equal((await svc.resolve({identity: mallory, connection: 'prod', statement: UPDATE, review: session})).status, 'pending')
      assert.equal((await svc.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'again'})).status, 'approved')
      clock += 1800_000
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: session})).status, 'pending')
      assert.equal((await svc.show(req.approval.id, alice)).state, 'expired')
      await assert.rejects(
        () => svc.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'long', durationSeconds: 3 * 3600}),
        (e: HoopError) => code(e) === 'INVALID_INPUT' && /duration 3h exceeds the 2h rule prod-writes-timeboxed allows/.test(e.message),
      )
    })

    it('repeat scope: the approved statement runs as often as needed until the ttl, and each run is a use (two identical statements no longer use it up)', async () => {
      const repeat: ReviewDecision = {...review, ruleId: 'dump-reads', scope: 'repeat', ttlSeconds: 900}
      const uses: Array<string | undefined> = []
      svc.onEvent = (k, r, _d, use) => {
        events.push([k, r])
        if (k === 'used') uses.push(use?.session)
      }
      const SQL = 'LOCK TABLE public.customers IN ACCESS SHARE MODE'
      const held = await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat, session: 's1'})
      assert.equal(held.status, 'pending')
      assert.equal(held.approval.scope, 'repeat')
      const ok = await svc.approve(held.approval.id, bob, 'dump window')
      assert.equal(ok.validUntil, '2025-01-01T10:15:00.000Z')
      assert.match(reviewMessage(ok), /as often as needed, until 2025-01-01T10:15:00.000Z/)

      for (const session of ['s2', 's2', 's3']) {
        clock += 60_000
        const r = await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat, session, clientRequest: `run-${session}`})
        assert.equal(r.status, 'approved')
        assert.equal(r.approval.id, held.approval.id)
        assert.equal(r.approval.state, 'approved', 'not used up')
      }
      assert.deepEqual(uses, ['s2', 's2', 's3'], 'every run is an approval.used')
      assert.equal((await svc.show(held.approval.id, alice)).usedAt, '2025-01-01T10:01:00.000Z', 'usedAt is the first run')
      assert.deepEqual((await svc.usesOf(alice, 'run-s2')).map((u) => [u.approvalId, u.scope]), [[held.approval.id, 'repeat'], [held.approval.id, 'repeat']])

      // Still bound to the text, the requester, the connection and the rule's scope.
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: SQL + ' ', review: repeat})).status, 'pending')
      assert.equal((await svc.resolve({identity: mallory, connection: 'prod', statement: SQL, review: repeat})).status, 'pending')
      assert.equal((await svc.resolve({identity: alice, connection: 'staging', statement: SQL, review: repeat})).status, 'pending')
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: {...repeat, scope: 'statement'}})).status, 'pending', 'a rule changed to one-time does not reuse a repeat approval')
      await assert.rejects(() => svc.approve(held.approval.id, alice, 'me'), (e: HoopError) => code(e) === 'ACCESS_DENIED')

      clock = Date.parse('2025-01-01T10:15:00Z')
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat})).status, 'pending', 'over at the ttl')
      assert.equal((await svc.show(held.approval.id, alice)).state, 'expired')
    })

    it('lists what the viewer requested or may approve, and hides the rest', async () => {
      const a = (await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).approval
      const m = (await svc.resolve({identity: mallory, connection: 'prod', statement: 'DELETE FROM t', review})).approval
      assert.deepEqual(new Set((await svc.list(bob)).map((r) => r.id)), new Set([a.id, m.id]))
      assert.deepEqual((await svc.list(alice)).map((r) => r.id), [a.id])
      assert.deepEqual((await svc.list(bob, {mine: true})), [])
      await assert.rejects(() => svc.show(m.id, alice), (e: HoopError) => code(e) === 'ACCESS_DENIED')
      await assert.rejects(() => svc.show('apr_doesnotexist', bob), (e: HoopError) => code(e) === 'NOT_FOUND')
      await svc.approve(a.id, bob, 'ok')
      assert.deepEqual((await svc.list(bob, {state: 'approved'})).map((r) => r.id), [a.id])
      assert.equal((await svc.list(bob, {state: 'all'})).length, 2)
      await assert.rejects(() => svc.list(bob, {state: 'bogus' as 'all'}), (e: HoopError) => code(e) === 'INVALID_INPUT')
    })

    it('wait resolves when a decision is made, and returns pending on timeout', async () => {
      const a = (await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).approval
      const still = await svc.wait(a.id, alice, 10)
      assert.equal(still.state, 'pending')
      const waiting = svc.wait(a.id, alice, 30_000)
      setImmediate(() => void svc.approve(a.id, bob, 'ok'))
      assert.equal((await waiting).state, 'approved')
    })

    it('keeps requests and decisions across a reopen of the store', async () => {
      const a = (await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).approval
      await svc.approve(a.id, bob, 'durable')
      for (const s of opened.splice(0)) await s.close()
      const again = await replica()
      const rec = await again.show(a.id, bob)
      assert.equal(rec.state, 'approved')
      assert.equal(rec.decisions[0].reason, 'durable')
      assert.equal((await again.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).status, 'approved')
    })

    it('spends a one-time approval exactly once when two replicas race for it', async () => {
      const other = await replica()
      for (let round = 0; round < 5; round++) {
        const sql = `${UPDATE} -- round ${round}`
        const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: sql, review})
        // Approved on one replica, seen by the other at once: no cache between them.
        await other.approve(approval.id, bob, 'ok')
        const runs = await Promise.all([svc, other, svc, other].map((s) => s.resolve({identity: alice, connection: 'prod', statement: sql, review})))
        assert.deepEqual(
          runs.filter((r) => r.status === 'approved').map((r) => r.approval.id),
          [approval.id],
          'exactly one statement ran on the approval',
        )
        assert.equal((await other.show(approval.id, alice)).state, 'used')
      }
    })

    it('opens one request when two replicas hold the same new statement at once', async () => {
      const other = await replica()
      const held = await Promise.all([svc, other, svc, other].map((s) => s.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})))
      assert.equal(new Set(held.map((r) => r.approval.id)).size, 1, 'one request for all four')
      const session: ReviewDecision = {...review, ruleId: 'timeboxed', scope: 'session'}
      const asked = await Promise.all([svc, other].map((s) => s.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'incident'})))
      assert.equal(asked[0].approval.id, asked[1].approval.id)
      assert.equal((await svc.list(bob)).length, 2)
    })

    it('counts two approvers deciding at once on two replicas, and a third is refused', async () => {
      const other = await replica()
      const two = {...review, approvals: 2}
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: two})
      const [b, c] = await Promise.all([svc.approve(approval.id, bob, 'one'), other.approve(approval.id, carol, 'two')])
      assert.deepEqual([b.state, c.state].sort(), ['approved', 'pending'], 'one of them saw the other and completed the request')
      const rec = await svc.show(approval.id, alice)
      assert.equal(rec.state, 'approved')
      assert.deepEqual(rec.decisions.map((d) => d.approver.subject).sort(), ['bob-sub', 'carol-sub'])
      await assert.rejects(() => other.approve(approval.id, {...carol, subject: 'erin'}, 'three'), (e: HoopError) => code(e) === 'CONFLICT' && /is approved/.test(e.message))
      // The same approver twice at once on two replicas: one decision is kept.
      const {approval: next} = await svc.resolve({identity: alice, connection: 'prod', statement: 'DELETE FROM t', review: two})
      const results = await Promise.allSettled([svc.approve(next.id, bob, 'a'), other.approve(next.id, bob, 'b')])
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
      assert.equal((await svc.show(next.id, alice)).decisions.length, 1)
    })

    it('reports each expiry once when two replicas look at the same moment', async () => {
      const expired: string[] = []
      const onEvent = (k: ApprovalEventKind, r: ApprovalRecord) => k === 'expired' && expired.push(r.id)
      const a = await replica({now: () => clock, onEvent})
      const b = await replica({now: () => clock, onEvent})
      const ids: string[] = []
      for (const sql of ['DELETE FROM a', 'DELETE FROM b', 'DELETE FROM c']) ids.push((await a.resolve({identity: alice, connection: 'prod', statement: sql, review})).approval.id)
      clock += 3600_000
      const counts = await Promise.all([a.expireDue(), b.expireDue(), a.expireDue(), b.expireDue()])
      assert.equal(counts.reduce((x, y) => x + y, 0), 3)
      assert.deepEqual(expired.sort(), ids.sort())
    })

    it('finds the session-scope rule for a time-boxed request from the policy', async () => {
      const policy = parsePolicy(
        `version: 1
rules:
  - id: eng
    effect: allow
    subjects: {groups: [engineering]}
    connections: [prod]
  - id: prod-writes
    effect: review
    connections: [prod]
    match: {writes: true}
    review: {approvers: {groups: [dba]}, approvals: 2, ttl: 2h, scope: session}
`,
        'policy.yaml',
      )
      const r = sessionReviewFor(policy, alice, {name: 'prod', type: 'postgres'})
      assert.deepEqual(r, {ruleId: 'prod-writes', approvers: {groups: ['dba']}, approvals: 2, ttlSeconds: 7200, scope: 'session'})
      assert.throws(() => sessionReviewFor(policy, bob, {name: 'prod', type: 'postgres'}), (e: HoopError) => code(e) === 'ACCESS_DENIED')
      assert.throws(() => sessionReviewFor(policy, alice, {name: 'other', type: 'postgres'}), (e: HoopError) => code(e) === 'ACCESS_DENIED')
    })
  })
}

describe('approvals on a PostgreSQL store that stops answering', () => {
  const backend = postgresBackend()
  after(() => backend.cleanup())

  it('fail with STORE_UNAVAILABLE, and work again once the store is back', async () => {
    const backing = await backend.fresh()
    const store = await backing.open()
    const name = new URL(backing.url!).pathname.slice(1)
    try {
      const svc = new ApprovalService(approvalStoreFor(store))
      const {approval} = await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
      await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`)
      await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`)
      try {
        await assert.rejects(() => svc.approve(approval.id, bob, 'ok'), (e: HoopError) => code(e) === 'STORE_UNAVAILABLE' && /store query failed at postgresql:/.test(e.message))
        await assert.rejects(() => svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}), (e: HoopError) => code(e) === 'STORE_UNAVAILABLE')
      } finally {
        await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`)
      }
      assert.equal((await svc.approve(approval.id, bob, 'ok')).state, 'approved', 'nothing was half-written')
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})).status, 'approved')
    } finally {
      await store.close()
    }
  })
})
