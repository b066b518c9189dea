// The approval service over a real SQLite file with an injected clock: approve, N approvals,
// self-approval and non-approvers refused, reject, expiry, one-time consumption, replay for another
// statement, session grants, and the audit hook.
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import Database from 'better-sqlite3'
import {ApprovalService, reviewMessage, sessionReviewFor, type ApprovalEventKind, type ApprovalRecord} from '../../../src/approvals/index.js'
import type {Identity} from '../../../src/identity/types.js'
import {parsePolicy, type ReviewDecision} from '../../../src/policy/index.js'
import {HoopError} from '../../../src/shared/errors.js'

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

describe('ApprovalService', () => {
  let dir: string
  let db: Database.Database
  let clock: number
  let events: Array<[ApprovalEventKind, ApprovalRecord]>
  let svc: ApprovalService

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-approvals-'))
    db = new Database(join(dir, 'hoop.db'))
    clock = Date.parse('2025-01-01T10:00:00Z')
    events = []
    svc = new ApprovalService(db, {now: () => clock, onEvent: (k, r) => events.push([k, r])})
  })
  afterEach(() => {
    db.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('creates one pending request per requester, connection and statement, and formats the refusal', () => {
    const a = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.equal(a.status, 'pending')
    assert.match(a.approval.id, /^apr_[A-Za-z0-9_-]{12}$/)
    assert.equal(a.approval.statement, UPDATE)
    assert.equal(a.approval.expiresAt, '2025-01-01T11:00:00.000Z')
    const again = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.equal(again.approval.id, a.approval.id, 'the same triple reuses the pending request')
    assert.notEqual(svc.resolve({identity: mallory, connection: 'prod', statement: UPDATE, review}).approval.id, a.approval.id)
    assert.notEqual(svc.resolve({identity: alice, connection: 'staging', statement: UPDATE, review}).approval.id, a.approval.id)
    assert.equal(
      reviewMessage(a.approval),
      `hoop: approval required by rule writes-need-approval; request ${a.approval.id} is pending (0 of 1 approvals). An approver runs: hoop approvals approve ${a.approval.id} --reason "..."`,
    )
    assert.deepEqual(events.map(([k]) => k), ['requested', 'requested', 'requested'])
  })

  it('approves, lets the exact statement run once, then asks anew', () => {
    const {approval} = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    const approved = svc.approve(approval.id, bob, 'ticket OPS-1')
    assert.equal(approved.state, 'approved')
    assert.equal(approved.decisions.length, 1)
    assert.equal(approved.decisions[0].approver.subject, 'bob-sub')
    assert.equal(approved.decisions[0].reason, 'ticket OPS-1')
    assert.equal(approved.decidedAt, '2025-01-01T10:00:00.000Z')
    assert.equal(approved.validUntil, '2025-01-01T11:00:00.000Z')

    clock += 60_000
    const run = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.equal(run.status, 'approved')
    assert.equal(run.approval.id, approval.id)
    assert.equal(run.approval.state, 'used')
    assert.equal(run.approval.usedAt, '2025-01-01T10:01:00.000Z')

    const replay = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.equal(replay.status, 'pending', 'a one-time approval cannot be replayed')
    assert.notEqual(replay.approval.id, approval.id)
    assert.deepEqual(events.map(([k]) => k), ['requested', 'approved', 'used', 'requested'])
  })

  it('does not cover another statement, another connection or another requester', () => {
    const {approval} = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    svc.approve(approval.id, bob, 'ok')
    const other = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE + ' ', review})
    assert.equal(other.status, 'pending', 'one extra space is another statement')
    assert.notEqual(other.approval.id, approval.id)
    assert.equal(svc.resolve({identity: alice, connection: 'staging', statement: UPDATE, review}).status, 'pending')
    assert.equal(svc.resolve({identity: mallory, connection: 'prod', statement: UPDATE, review}).status, 'pending')
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: {...review, ruleId: 'other-rule'}}).status, 'pending')
    // ...and the original approval is still there for the statement it names.
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).status, 'approved')
  })

  it('refuses self-approval, even by someone in the approver group', () => {
    const {approval} = svc.resolve({identity: dave, connection: 'prod', statement: UPDATE, review})
    assert.throws(
      () => svc.approve(approval.id, dave, 'mine'),
      (e: HoopError) => code(e) === 'ACCESS_DENIED' && /requested apr_\S+ and cannot approve it/.test(e.message),
    )
    // Same subject but another kind is another identity.
    const twin: Identity = {...dave, kind: 'service-account'}
    assert.equal(svc.approve(approval.id, twin, 'different principal').state, 'approved')
  })

  it('refuses approvers outside the rule and names the approvers', () => {
    const {approval} = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.throws(
      () => svc.approve(approval.id, mallory, 'lgtm'),
      (e: HoopError) => code(e) === 'ACCESS_DENIED' && e.message.includes('not an approver for rule writes-need-approval (approvers: groups dba)'),
    )
    assert.throws(() => svc.reject(approval.id, mallory, 'no'), (e: HoopError) => code(e) === 'ACCESS_DENIED')
    assert.equal(svc.show(approval.id, alice).state, 'pending')
  })

  it('needs N approvals from distinct approvers', () => {
    const two = {...review, approvals: 2}
    const {approval} = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: two})
    const first = svc.approve(approval.id, bob, 'one')
    assert.equal(first.state, 'pending')
    assert.match(reviewMessage(first), /\(1 of 2 approvals\)/)
    assert.throws(() => svc.approve(approval.id, bob, 'again'), (e: HoopError) => code(e) === 'CONFLICT' && /needs 1 more/.test(e.message))
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: two}).status, 'pending')
    const second = svc.approve(approval.id, carol, 'two')
    assert.equal(second.state, 'approved')
    assert.deepEqual(second.decisions.map((d) => d.approver.subject), ['bob-sub', 'carol-sub'])
    assert.deepEqual(events.map(([k]) => k), ['requested', 'approval', 'approved'])
  })

  it('ends a request on one rejection', () => {
    const {approval} = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: {...review, approvals: 2}})
    svc.approve(approval.id, bob, 'fine by me')
    const rejected = svc.reject(approval.id, carol, 'not during the freeze')
    assert.equal(rejected.state, 'rejected')
    assert.match(reviewMessage(rejected), /was rejected by carol@example.com: not during the freeze/)
    assert.throws(() => svc.approve(approval.id, {...carol, subject: 'erin'}, 'late'), (e: HoopError) => code(e) === 'CONFLICT' && /is rejected/.test(e.message))
    const next = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.equal(next.status, 'pending')
    assert.notEqual(next.approval.id, approval.id, 'a rejected request is not reopened')
  })

  it('requires a justification of at most 1000 characters', () => {
    const {approval} = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.throws(() => svc.approve(approval.id, bob, '   '), (e: HoopError) => code(e) === 'INVALID_INPUT' && /required/.test(e.message))
    assert.throws(() => svc.approve(approval.id, bob, 'x'.repeat(1001)), (e: HoopError) => code(e) === 'INVALID_INPUT' && /1001 characters; the limit is 1000/.test(e.message))
    assert.equal(svc.approve(approval.id, bob, 'x'.repeat(1000)).state, 'approved')
  })

  it('expires pending requests after the ttl, and unused approvals too', () => {
    const a = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).approval
    clock += 3600_000
    assert.throws(() => svc.approve(a.id, bob, 'too late'), (e: HoopError) => code(e) === 'CONFLICT' && /is expired/.test(e.message))
    assert.equal(svc.show(a.id, alice).state, 'expired')
    assert.equal(svc.list(alice, {state: 'expired'}).length, 1)

    const b = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).approval
    assert.notEqual(b.id, a.id)
    svc.approve(b.id, bob, 'ok')
    clock += 3600_000 + 1
    const late = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review})
    assert.equal(late.status, 'pending', 'an approval not used within its ttl cannot be used')
    assert.equal(svc.show(b.id, bob).state, 'expired')
    assert.equal(svc.show(b.id, bob).decidedAt, '2025-01-01T11:00:00.000Z', 'the approval time is kept')
    assert.deepEqual(events.map(([k]) => k), ['requested', 'expired', 'requested', 'approved', 'expired', 'requested'])
  })

  it('session scope: one approval covers every statement of the rule on the connection until the grant ends', () => {
    const session: ReviewDecision = {...review, ruleId: 'prod-writes-timeboxed', scope: 'session', ttlSeconds: 7200}
    const req = svc.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'incident 42', durationSeconds: 1800})
    assert.equal(req.status, 'pending')
    assert.equal(req.approval.requestReason, 'incident 42')
    assert.match(reviewMessage(req.approval), /time-boxed access request apr_/)
    // A statement under the rule joins the same pending request.
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: session}).approval.id, req.approval.id)
    const ok = svc.approve(req.approval.id, bob, 'go')
    assert.equal(ok.validUntil, '2025-01-01T10:30:00.000Z')
    for (const sql of [UPDATE, 'DELETE FROM t WHERE id = 1', UPDATE]) {
      assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: sql, review: session}).status, 'approved')
    }
    assert.equal(svc.resolve({identity: mallory, connection: 'prod', statement: UPDATE, review: session}).status, 'pending')
    assert.equal(svc.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'again'}).status, 'approved')
    clock += 1800_000
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review: session}).status, 'pending')
    assert.equal(svc.show(req.approval.id, alice).state, 'expired')
    assert.throws(
      () => svc.requestAccess({identity: alice, connection: 'prod', review: session, reason: 'long', durationSeconds: 3 * 3600}),
      (e: HoopError) => code(e) === 'INVALID_INPUT' && /duration 3h exceeds the 2h rule prod-writes-timeboxed allows/.test(e.message),
    )
  })

  it('repeat scope: the approved statement runs as often as needed until the ttl, and each run is a use (two identical statements no longer use it up)', () => {
    const repeat: ReviewDecision = {...review, ruleId: 'dump-reads', scope: 'repeat', ttlSeconds: 900}
    const uses: Array<string | undefined> = []
    svc.onEvent = (k, r, _d, use) => {
      events.push([k, r])
      if (k === 'used') uses.push(use?.session)
    }
    const SQL = 'LOCK TABLE public.customers IN ACCESS SHARE MODE'
    const held = svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat, session: 's1'})
    assert.equal(held.status, 'pending')
    assert.equal(held.approval.scope, 'repeat')
    const ok = svc.approve(held.approval.id, bob, 'dump window')
    assert.equal(ok.validUntil, '2025-01-01T10:15:00.000Z')
    assert.match(reviewMessage(ok), /as often as needed, until 2025-01-01T10:15:00.000Z/)

    for (const session of ['s2', 's2', 's3']) {
      clock += 60_000
      const r = svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat, session, clientRequest: `run-${session}`})
      assert.equal(r.status, 'approved')
      assert.equal(r.approval.id, held.approval.id)
      assert.equal(r.approval.state, 'approved', 'not used up')
    }
    assert.deepEqual(uses, ['s2', 's2', 's3'], 'every run is an approval.used')
    assert.equal(svc.show(held.approval.id, alice).usedAt, '2025-01-01T10:01:00.000Z', 'usedAt is the first run')
    assert.deepEqual(svc.usesOf(alice, 'run-s2').map((u) => [u.approvalId, u.scope]), [[held.approval.id, 'repeat'], [held.approval.id, 'repeat']])

    // Still bound to the text, the requester, the connection and the rule's scope.
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: SQL + ' ', review: repeat}).status, 'pending')
    assert.equal(svc.resolve({identity: mallory, connection: 'prod', statement: SQL, review: repeat}).status, 'pending')
    assert.equal(svc.resolve({identity: alice, connection: 'staging', statement: SQL, review: repeat}).status, 'pending')
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: {...repeat, scope: 'statement'}}).status, 'pending', 'a rule changed to one-time does not reuse a repeat approval')
    assert.throws(() => svc.approve(held.approval.id, alice, 'me'), (e: HoopError) => code(e) === 'ACCESS_DENIED')

    clock = Date.parse('2025-01-01T10:15:00Z')
    assert.equal(svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat}).status, 'pending', 'over at the ttl')
    assert.equal(svc.show(held.approval.id, alice).state, 'expired')
  })

  it('lists what the viewer requested or may approve, and hides the rest', () => {
    const a = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).approval
    const m = svc.resolve({identity: mallory, connection: 'prod', statement: 'DELETE FROM t', review}).approval
    assert.deepEqual(new Set(svc.list(bob).map((r) => r.id)), new Set([a.id, m.id]))
    assert.deepEqual(svc.list(alice).map((r) => r.id), [a.id])
    assert.deepEqual(svc.list(bob, {mine: true}), [])
    assert.throws(() => svc.show(m.id, alice), (e: HoopError) => code(e) === 'ACCESS_DENIED')
    assert.throws(() => svc.show('apr_doesnotexist', bob), (e: HoopError) => code(e) === 'NOT_FOUND')
    svc.approve(a.id, bob, 'ok')
    assert.deepEqual(svc.list(bob, {state: 'approved'}).map((r) => r.id), [a.id])
    assert.equal(svc.list(bob, {state: 'all'}).length, 2)
    assert.throws(() => svc.list(bob, {state: 'bogus' as 'all'}), (e: HoopError) => code(e) === 'INVALID_INPUT')
  })

  it('wait resolves when a decision is made, and returns pending on timeout', async () => {
    const a = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).approval
    const still = await svc.wait(a.id, alice, 10)
    assert.equal(still.state, 'pending')
    const waiting = svc.wait(a.id, alice, 30_000)
    setImmediate(() => svc.approve(a.id, bob, 'ok'))
    assert.equal((await waiting).state, 'approved')
  })

  it('keeps requests and decisions across a reopen of the database file', () => {
    const a = svc.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).approval
    svc.approve(a.id, bob, 'durable')
    db.close()
    db = new Database(join(dir, 'hoop.db'))
    const again = new ApprovalService(db, {now: () => clock})
    const rec = again.show(a.id, bob)
    assert.equal(rec.state, 'approved')
    assert.equal(rec.decisions[0].reason, 'durable')
    assert.equal(again.resolve({identity: alice, connection: 'prod', statement: UPDATE, review}).status, 'approved')
  })

  it('finds the session-scope rule for a time-boxed request from the policy', () => {
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
