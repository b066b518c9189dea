// What the audit log says about approvals (issue 14, item 4): the session that asked on each
// request and decision, valid-from and valid-until on what was approved, an approval.used event for
// the statement a one-time approval covered and for the first statement of each session under a
// time-boxed grant, and the uses a client can look up by the id of its run (`hoop exec`).
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {approvalAuditEvents, ApprovalService} from '../../../src/approvals/index.js'
import {SqliteApprovalStore} from '../../../src/approvals/store-sqlite.js'
import type {AuditEvent} from '../../../src/audit/events.js'
import type {Identity} from '../../../src/identity/types.js'
import type {ReviewDecision} from '../../../src/policy/index.js'

const alice: Identity = {kind: 'user', subject: 'alice-sub', name: 'alice@example.com', groups: ['engineering']}
const bob: Identity = {kind: 'user', subject: 'bob-sub', name: 'bob@example.com', groups: ['dba']}
const once: ReviewDecision = {ruleId: 'writes', approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 3600, scope: 'statement'}
const grant: ReviewDecision = {...once, ruleId: 'window', scope: 'session', ttlSeconds: 1800}
const SQL = 'UPDATE plans SET tier = 2 WHERE id = 7'

describe('approval records in the audit log', () => {
  let dir: string
  let db: Database.Database
  let clock: number
  let audited: AuditEvent[]
  let svc: ApprovalService

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-approval-records-'))
    db = new Database(join(dir, 'hoop.db'))
    clock = Date.parse('2025-01-01T10:00:00Z')
    audited = []
    svc = new ApprovalService(new SqliteApprovalStore(db), {now: () => clock, onEvent: (k, r, d, u) => audited.push(...approvalAuditEvents(k, r, d, u))})
  })
  afterEach(() => {
    db.close()
    rmSync(dir, {recursive: true, force: true})
  })

  const of = (kind: string) => audited.filter((e) => e.kind === kind)

  it('one-time: the asking session on the request and decision, valid-from/until, approval.used in the session that ran it', async () => {
    const asked = await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: once, session: 'ses_ASKED000000'})
    assert.equal(asked.approval.session, 'ses_ASKED000000')
    clock += 60_000
    await svc.approve(asked.approval.id, bob, 'ticket OPS-7')
    clock += 60_000
    const ran = await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: once, session: 'ses_RAN0000000', clientRequest: 'run-abcdefgh'})
    assert.equal(ran.status, 'approved')

    const [requested] = of('approval.requested')
    assert.equal(requested.session, 'ses_ASKED000000')
    assert.equal(requested.data.scope, 'statement')
    const [decided] = of('approval.decided')
    assert.equal(decided.session, 'ses_ASKED000000')
    assert.equal(decided.data.valid_from, '2025-01-01T10:01:00.000Z')
    assert.equal(decided.data.valid_until, '2025-01-01T11:01:00.000Z')
    const [used] = of('approval.used')
    assert.equal(used.session, 'ses_RAN0000000')
    assert.equal(used.data.approval_id, asked.approval.id)
    assert.equal(used.data.statement, SQL)
    assert.equal(used.actor?.subject, 'alice-sub')
    assert.equal(used.time, '2025-01-01T10:02:00.000Z')

    // The client asks which approval its run used; nobody else sees the requester's uses.
    assert.deepEqual((await svc.usesOf(alice, 'run-abcdefgh')).map((u) => [u.approvalId, u.session, u.scope]), [[asked.approval.id, 'ses_RAN0000000', 'statement']])
    assert.deepEqual((await svc.usesOf(bob, 'run-abcdefgh')), [])
  })

  it('time-boxed: the grant says its window and duration; approval.used once per session that runs under it', async () => {
    const asked = await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: grant, session: 'ses_ASKED000000'})
    await svc.approve(asked.approval.id, bob, 'incident window')
    const [requested] = of('approval.requested')
    assert.equal(requested.data.scope, 'session')
    assert.equal(requested.data.duration_seconds, 1800)
    const [decided] = of('approval.decided')
    assert.equal(decided.data.valid_from, '2025-01-01T10:00:00.000Z')
    assert.equal(decided.data.valid_until, '2025-01-01T10:30:00.000Z')

    for (const session of ['ses_ONE00000000', 'ses_ONE00000000', 'ses_TWO00000000']) {
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: `${SQL} -- ${session}`, review: grant, session, clientRequest: `req-${session}`})).status, 'approved')
    }
    const used = of('approval.used')
    assert.deepEqual(used.map((e) => e.session), ['ses_ONE00000000', 'ses_TWO00000000'])
    assert.ok(used.every((e) => e.data.valid_until === '2025-01-01T10:30:00.000Z' && e.data.scope === 'session'))
    // Every statement's use is kept for the client's look-up, not only the first.
    assert.equal((await svc.usesOf(alice, 'req-ses_ONE00000000')).length, 2)
  })

  it('repeat: approval.used for every run of the approved statement, with scope repeat and the approval\'s window', async () => {
    const repeat: ReviewDecision = {...once, ruleId: 'dump', scope: 'repeat', ttlSeconds: 600}
    const asked = await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat, session: 'ses_ASKED000000'})
    await svc.approve(asked.approval.id, bob, 'dump window')
    assert.equal(of('approval.requested')[0].data.scope, 'repeat')
    for (const session of ['ses_ONE00000000', 'ses_ONE00000000', 'ses_TWO00000000']) {
      clock += 1000
      assert.equal((await svc.resolve({identity: alice, connection: 'prod', statement: SQL, review: repeat, session})).status, 'approved')
    }
    const used = of('approval.used')
    assert.deepEqual(used.map((e) => e.session), ['ses_ONE00000000', 'ses_ONE00000000', 'ses_TWO00000000'])
    assert.ok(used.every((e) => e.data.scope === 'repeat' && e.data.approval_id === asked.approval.id && e.data.valid_until === '2025-01-01T10:10:00.000Z'))
  })
})
