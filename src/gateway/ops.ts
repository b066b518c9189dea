// Operations endpoints for load balancers and monitoring (docs/ha.md):
//   /healthz  the process is alive: no auth, no detail
//   /readyz   the store answers and the audit log accepts appends: 200, or 503 with a short reason
//   /metrics  Prometheus text; a bearer of `metrics.token` when configured, else loopback callers only
// None of them says anything a caller could use against the gateway: no versions, names or URLs.
import {createHash, timingSafeEqual} from 'node:crypto'
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {AuditWriter} from '../audit/index.js'
import {HoopError} from '../shared/errors.js'
import {bearerFrom, sendJson} from '../shared/http.js'
import type {Logger} from '../shared/log.js'
import type {Store} from '../store/types.js'
import type {GatewayMetrics} from './metrics.js'

interface OpsContext {
  store: Store
  audit: AuditWriter
  metrics: GatewayMetrics
  /** The bearer /metrics asks for; without one, loopback callers only. */
  metricsToken?: string
  logger: Logger
  /** Set while this replica enforces a policy other than the one last reloaded on another replica. */
  policyDiffers?: () => boolean
}

/** A readiness probe that hangs is as bad as a failed one: answer within this. */
const READY_TIMEOUT_MS = 2000

/** Answers the operations routes; resolves false for any other request. */
export async function handleOps(ctx: OpsContext, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0]
  if (req.method !== 'GET' || (path !== '/healthz' && path !== '/readyz' && path !== '/metrics')) return false
  if (path === '/healthz') {
    sendJson(res, 200, {status: 'ok'})
  } else if (path === '/readyz') {
    const problem = await notReady(ctx)
    // A differing policy file is reported, not made unready: during a rolling config push every
    // replica but the first would otherwise leave the balancer at once (docs/ha.md).
    const policy = ctx.policyDiffers?.() ? {policy: 'differs from the last reload on another replica'} : {}
    sendJson(res, problem ? 503 : 200, problem ? {status: 'unavailable', reason: problem, ...policy} : {status: 'ok', ...policy})
  } else {
    authorizeMetrics(ctx, req)
    const body = ctx.metrics.render()
    res.writeHead(200, {'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body)})
    res.end(body)
  }
  return true
}

/** Why this replica should get no traffic now, in a few words; undefined when it is ready. */
async function notReady(ctx: OpsContext): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('store did not answer in time'), READY_TIMEOUT_MS)))
  try {
    // A failed group commit makes the replica unready until the store takes a write again.
    if (ctx.audit.unavailable && ctx.audit.probe) {
      const probed = await Promise.race([ctx.audit.probe().then(() => undefined), timeout])
      if (probed) return probed
    }
    if (ctx.audit.unavailable) return 'audit log refuses appends'
    // The store's own error may name its host: the probe says only that it failed (the log has more).
    const ping = ctx.store.ping().then(
      () => undefined,
      (err: Error) => {
        ctx.logger.warn('not ready: the store does not answer', {error: err.message})
        return 'store unreachable'
      },
    )
    return await Promise.race([ping, timeout])
  } finally {
    clearTimeout(timer)
  }
}

function authorizeMetrics(ctx: OpsContext, req: IncomingMessage): void {
  if (ctx.metricsToken) {
    const bearer = bearerFrom(req)
    if (!bearer || !sameSecret(bearer, ctx.metricsToken)) throw new HoopError('TOKEN_REJECTED', '/metrics needs the configured metrics token as a bearer')
    return
  }
  if (!isLoopback(req.socket.remoteAddress)) {
    throw new HoopError('ACCESS_DENIED', '/metrics answers loopback callers only; set metrics.token in the gateway config to scrape it from elsewhere')
  }
}

/** Constant-time comparison of two secrets of any length (compared as digests). */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || /^(::ffff:)?127\./.test(address))
}
