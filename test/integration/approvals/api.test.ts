// The approvals HTTP API on a real HTTP server, with real service-account keys verified against a
// real SQLite store, driven through the CLI's own client (ApprovalsClient).
import assert from 'node:assert/strict'
import {createServer, type Server} from 'node:http'
import {approvalAuditEvents, ApprovalService, approvalStoreFor, type ApprovalEventKind} from '../../../src/approvals/index.js'
import {ApprovalsClient, approvalDetail, approvalIdIn, approvalsTable, requestAccessAndWait} from '../../../src/client/approvals.js'
import {GatewayApi} from '../../../src/client/api.js'
import {createServiceAccount} from '../../../src/gateway/admin.js'
import {handleApprovalsApi} from '../../../src/gateway/approvals-api.js'
import {authenticateServiceKey} from '../../../src/identity/service-keys.js'
import {parsePolicy, type ReviewDecision} from '../../../src/policy/index.js'
import {asHoopError, HoopError} from '../../../src/shared/errors.js'
import {bearerFrom, sendError} from '../../../src/shared/http.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {tempDir} from '../../helpers/cli.js'

const POLICY = `version: 1
rules:
  - id: people
    effect: allow
    subjects: {groups: [engineering, dba]}
    connections: [prod]
  - id: prod-timeboxed
    effect: review
    connections: [prod]
    match: {kinds: [delete]}
    review: {approvers: {groups: [dba]}, ttl: 2h, scope: session}
`
const review: ReviewDecision = {ruleId: 'writes-need-approval', approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 3600, scope: 'statement'}

function code(err: unknown): string {
  return err instanceof HoopError ? err.code : String(err)
}

describe('approvals API (real HTTP, real service-account keys)', () => {
  const dir = tempDir('hoop-approvals-api-')
  let store: SqliteStore
  let svc: ApprovalService
  let server: Server
  let url: string
  let dev: ApprovalsClient
  let dba: ApprovalsClient
  let other: ApprovalsClient
  let otherToken: string
  const audited: ApprovalEventKind[] = []

  before(async () => {
    store = new SqliteStore(dir.path)
    svc = new ApprovalService(approvalStoreFor(store), {onEvent: (k, r, d) => audited.push(...approvalAuditEvents(k, r, d).map(() => k))})
    const policy = parsePolicy(POLICY, 'policy.yaml')
    const ctx = {approvals: svc, policy: () => policy, config: {connections: [{name: 'prod', type: 'postgres'}]}}
    server = createServer((req, res) => {
      void (async () => {
        try {
          const identity = await authenticateServiceKey(store, bearerFrom(req) ?? '', 'sa')
          const path = new URL(req.url ?? '/', 'http://x').pathname
          if (!(await handleApprovalsApi(ctx, identity, req.method ?? 'GET', path, req, res))) throw new HoopError('NOT_FOUND', 'no route')
        } catch (err) {
          if (!res.headersSent) sendError(res, asHoopError(err))
        }
      })()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as {port: number}).port}`
    const client = (token: string) => ApprovalsClient.withApi(new GatewayApi(url, token))
    dev = client((await createServiceAccount(store, 'dev-bot', ['engineering'])).token)
    dba = client((await createServiceAccount(store, 'dba-bot', ['dba'])).token)
    otherToken = (await createServiceAccount(store, 'other-bot', ['engineering'])).token
    other = client(otherToken)
  })

  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    store.close()
    dir.cleanup()
  })

  it('lists, shows, refuses self-approval, approves, and the long-poll sees it', async () => {
    const devIdentity = {kind: 'service-account' as const, subject: 'dev-bot', name: 'dev-bot', groups: ['engineering']}
    const {approval} = await svc.resolve({identity: devIdentity, connection: 'prod', statement: 'UPDATE t SET a = 1', review})
    assert.equal(approvalIdIn(`ERROR: hoop: ... request ${approval.id} is pending`), approval.id)

    const pending = await dba.list()
    assert.deepEqual(pending.map((a) => a.id), [approval.id])
    assert.match(approvalsTable(pending), new RegExp(`${approval.id}\\s+pending\\s+dev-bot\\s+prod\\s+writes-need-approval\\s+0/1`))
    assert.deepEqual((await other.list()).map((a) => a.id), [], 'another engineer neither asked nor may approve')
    await assert.rejects(other.show(approval.id), (e) => code(e) === 'ACCESS_DENIED')

    const shown = await dev.show(approval.id)
    assert.equal(shown.statement, 'UPDATE t SET a = 1')
    assert.match(shown.message, /An approver runs: hoop approvals approve apr_/)
    assert.match(approvalDetail(shown), /statement\n {4}UPDATE t SET a = 1/)

    await assert.rejects(dev.decide(approval.id, 'approve', 'me'), (e) => code(e) === 'ACCESS_DENIED' && /cannot approve it/.test((e as Error).message))
    await assert.rejects(dba.decide(approval.id, 'approve', ''), (e) => code(e) === 'INVALID_INPUT')
    await assert.rejects(dba.show('apr_nope'), (e) => code(e) === 'INVALID_INPUT')

    const still = await dev.waitOnce(approval.id, 0)
    assert.equal(still.state, 'pending')
    const waiting = dev.waitForDecision(approval.id)
    await new Promise((r) => setTimeout(r, 50))
    const decided = await dba.decide(approval.id, 'approve', 'change ticket 7')
    assert.equal(decided.state, 'approved')
    const seen = await waiting
    assert.equal(seen.state, 'approved')
    assert.equal(seen.decisions[0].approver.name, 'dba-bot')
    assert.equal(seen.decisions[0].reason, 'change ticket 7')
    assert.deepEqual((await dev.list({mine: true, state: 'approved'})).map((a) => a.id), [approval.id])
  })

  it('a rejected request ends the wait with APPROVAL_REQUIRED naming the rejection', async () => {
    const devIdentity = {kind: 'service-account' as const, subject: 'dev-bot', name: 'dev-bot', groups: ['engineering']}
    const {approval} = await svc.resolve({identity: devIdentity, connection: 'prod', statement: 'DELETE FROM t', review})
    await dba.decide(approval.id, 'reject', 'not today')
    await assert.rejects(dev.waitForDecision(approval.id), (e) => code(e) === 'APPROVAL_REQUIRED' && /rejected by dba-bot: not today/.test((e as Error).message))
    await assert.rejects(dba.decide(approval.id, 'approve', 'changed my mind'), (e) => code(e) === 'CONFLICT')
  })

  it('time-boxed access: request, approve, then a second request returns the live grant', async () => {
    const r = await dev.requestAccess('prod', 'incident 12', '30m')
    assert.equal(r.status, 'pending')
    assert.equal(r.approval.scope, 'session')
    assert.equal(r.approval.ruleId, 'prod-timeboxed')
    assert.equal(r.approval.durationSeconds, 1800)
    assert.equal((await dev.requestAccess('prod', 'again', '30m')).approval.id, r.approval.id)
    await dba.decide(r.approval.id, 'approve', 'go')
    const again = await dev.requestAccess('prod', 'again', '30m')
    assert.equal(again.status, 'approved')
    assert.equal(again.approval.id, r.approval.id)
    await assert.rejects(dev.requestAccess('prod', 'long', '3h'), (e) => code(e) === 'INVALID_INPUT' && /exceeds the 2h/.test((e as Error).message))
    await assert.rejects(dev.requestAccess('nope', 'x'), (e) => code(e) === 'UNKNOWN_CONNECTION')
    await assert.rejects(dev.requestAccess('prod', ''), (e) => code(e) === 'INVALID_INPUT')
    await assert.rejects(dev.requestAccess('prod', 'x', 'soon'), (e) => code(e) === 'INVALID_INPUT')
  })

  it('connect --request-access: waits until approved, then returns the grant', async () => {
    const waiting = requestAccessAndWait({gateway: url, token: otherToken, connection: 'prod', reason: 'on call', duration: '10m'})
    let pending: string | undefined
    for (let i = 0; i < 100 && !pending; i++) {
      pending = (await dba.list()).find((a) => a.requester.name === 'other-bot')?.id
      if (!pending) await new Promise((r) => setTimeout(r, 20))
    }
    assert.ok(pending, 'the access request reached the approver')
    await dba.decide(pending, 'approve', 'ok')
    const grant = await waiting
    assert.equal(grant.state, 'approved')
    assert.equal(Date.parse(grant.validUntil!) - Date.parse(grant.decidedAt!), 600_000)
    await assert.rejects(requestAccessAndWait({gateway: url, token: otherToken, connection: 'prod', interactive: false}), (e) => code(e) === 'INVALID_INPUT' && /--reason/.test((e as Error).message))
  })

  it('turned every state change into an audit event', async () => {
    assert.deepEqual(audited, ['requested', 'approved', 'requested', 'rejected', 'requested', 'approved', 'requested', 'approved'])
  })
})
