// The approvals HTTP API, for `hoop approvals`, `hoop exec --wait` and `hoop connect --request-access`.
// The caller's identity is already verified; the service decides who may see and decide what.
//
//   GET  /v1/approvals[?state=pending|approved|rejected|expired|used|all&mine=1&limit=N]
//   POST /v1/approvals {connection, reason, duration}          time-boxed access request
//   GET  /v1/approvals/:id
//   POST /v1/approvals/:id/approve {reason}
//   POST /v1/approvals/:id/reject {reason}
//   GET  /v1/approvals/:id/wait?timeout=30                     long-poll until decided (max 60 s)
//   GET  /v1/approvals/used?request=ID                         the approvals the caller's run ID used (hoop exec)
import type {IncomingMessage, ServerResponse} from 'node:http'
import {MAX_WAIT_SECONDS, reviewMessage, sessionReviewFor, type ApprovalRecord, type ApprovalService, type ApprovalState} from '../approvals/index.js'
import type {Identity} from '../identity/types.js'
import {parseDuration} from '../policy/glob.js'
import type {ConnectionRef, Policy} from '../policy/types.js'
import {HoopError} from '../shared/errors.js'
import {readJsonBody, sendJson} from '../shared/http.js'

interface ApprovalsApiContext {
  approvals: ApprovalService
  /** The policy in force (time-boxed access requests look up their session-scope rule). */
  policy?: () => Policy
  config: {connections: readonly ConnectionRef[]}
}

/** Responses of the approvals API (the CLI reads these). */
export interface ApprovalView extends ApprovalRecord {
  /** What a client shows for this request (reviewMessage). */
  message: string
}

export interface AccessRequestResponse {
  status: 'approved' | 'pending'
  approval: ApprovalView
}

const PREFIX = '/v1/approvals'

/** Serves the route and returns true, or returns false when the path is not an approvals route. */
export async function handleApprovalsApi(
  ctx: ApprovalsApiContext,
  identity: Identity,
  method: string,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  if (path !== PREFIX && !path.startsWith(PREFIX + '/')) return false
  const query = new URL(req.url ?? '/', 'http://gateway').searchParams
  const svc = ctx.approvals

  if (path === PREFIX && method === 'GET') {
    const state = (query.get('state') ?? 'pending') as ApprovalState | 'all'
    const mine = query.get('mine') === '1' || query.get('mine') === 'true'
    const limit = query.has('limit') ? Number(query.get('limit')) : undefined
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new HoopError('INVALID_INPUT', 'limit must be a positive whole number')
    sendJson(res, 200, {approvals: (await svc.list(identity, {state, mine, limit})).map(view)})
    return true
  }
  if (path === PREFIX && method === 'POST') {
    const body = (await readJsonBody(req)) as {connection?: unknown; reason?: unknown; duration?: unknown}
    if (typeof body.connection !== 'string' || !body.connection) throw new HoopError('INVALID_INPUT', 'connection is required')
    const conn = ctx.config.connections.find((c) => c.name === body.connection)
    if (!conn) throw new HoopError('UNKNOWN_CONNECTION', `unknown connection "${body.connection}"`)
    if (!ctx.policy) throw new HoopError('INVALID_INPUT', 'this gateway has no policy, so there is no time-boxed access to request')
    const review = sessionReviewFor(ctx.policy(), identity, {name: conn.name, type: conn.type})
    const r = await svc.requestAccess({identity, connection: conn.name, review, reason: body.reason as string, durationSeconds: durationOf(body.duration)})
    const out: AccessRequestResponse = {status: r.status, approval: view(r.approval)}
    sendJson(res, r.status === 'pending' ? 201 : 200, out)
    return true
  }

  if (path === `${PREFIX}/used` && method === 'GET') {
    const request = query.get('request') ?? ''
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(request)) throw new HoopError('INVALID_INPUT', 'request must be the id the client sent when it opened the session')
    sendJson(res, 200, {uses: await svc.usesOf(identity, request)})
    return true
  }

  const m = /^\/v1\/approvals\/([^/]+)(?:\/(approve|reject|wait))?$/.exec(path)
  if (!m) throw new HoopError('NOT_FOUND', `no route for ${method} ${path}`)
  const id = decodeURIComponent(m[1])
  const action = m[2]
  if (!action && method === 'GET') {
    sendJson(res, 200, view(await svc.show(id, identity)))
    return true
  }
  if ((action === 'approve' || action === 'reject') && method === 'POST') {
    const body = (await readJsonBody(req)) as {reason?: unknown}
    if (typeof body.reason !== 'string') throw new HoopError('INVALID_INPUT', `a justification is required to ${action} (--reason "why")`)
    const rec = action === 'approve' ? await svc.approve(id, identity, body.reason) : await svc.reject(id, identity, body.reason)
    sendJson(res, 200, view(rec))
    return true
  }
  if (action === 'wait' && method === 'GET') {
    const t = query.has('timeout') ? Number(query.get('timeout')) : 30
    if (!Number.isFinite(t) || t < 0) throw new HoopError('INVALID_INPUT', 'timeout must be a number of seconds')
    const abort = new AbortController()
    const onClose = () => abort.abort()
    res.once('close', onClose)
    try {
      const rec = await svc.wait(id, identity, Math.min(t, MAX_WAIT_SECONDS) * 1000, abort.signal)
      if (!res.destroyed) sendJson(res, 200, view(rec))
    } finally {
      res.off('close', onClose)
    }
    return true
  }
  throw new HoopError('NOT_FOUND', `no route for ${method} ${path}`)
}

function view(rec: ApprovalRecord): ApprovalView {
  return {...rec, message: reviewMessage(rec)}
}

function durationOf(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v
  if (typeof v === 'string') {
    const s = parseDuration(v)
    if (s !== undefined) return s
  }
  throw new HoopError('INVALID_INPUT', `duration must be like 30m, 1h or 1h30m, got ${JSON.stringify(v)}`)
}
