// One client stream = one session: resolve the connection, check access, reach the target through
// its agent, then carry bytes both ways (or hand the streams to the connection type's engine).
import type {Duplex} from 'node:stream'
import type {ConnectionConfig} from '../shared/config.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import {newSessionId} from '../shared/ids.js'
import type {Logger} from '../shared/log.js'
import type {Identity} from '../identity/types.js'
import type {RelayStream} from '../relay/mux.js'
import type {Store} from '../store/types.js'
import type {AgentRegistry} from './agents.js'
import type {AccessGuard} from './access.js'

export interface SessionContext {
  connections: () => ConnectionConfig[]
  access: AccessGuard
  agents: AgentRegistry
  store: Store
  logger: Logger
}

export async function serveClientStream(ctx: SessionContext, identity: Identity, stream: RelayStream, clientAddress: string): Promise<void> {
  const name = typeof stream.meta.connection === 'string' ? stream.meta.connection : ''
  const conn = ctx.connections().find((c) => c.name === name)
  if (!conn) {
    stream.reject('UNKNOWN_CONNECTION', `unknown connection "${name}"`)
    return
  }
  const decision = ctx.access.check(identity, conn)
  if (!decision.allowed) {
    ctx.logger.info('access denied', {connection: conn.name, subject: identity.subject, rule: decision.ruleId})
    stream.reject('ACCESS_DENIED', `access to "${conn.name}" denied for ${identity.name} (rule ${decision.ruleId})`)
    return
  }
  const sessionId = newSessionId()
  const log = ctx.logger.child({session: sessionId, connection: conn.name, subject: identity.subject})
  let upstream: Duplex
  try {
    upstream = await ctx.agents.openTarget(conn, sessionId)
  } catch (err) {
    const e = asHoopError(err)
    log.warn('target unavailable', {code: e.code, error: e.message})
    stream.reject(e.code, e.message)
    return
  }
  if (stream.destroyed) {
    upstream.destroy()
    return
  }
  stream.accept()
  const startedAt = new Date()
  ctx.store.startSession({
    id: sessionId,
    subject: identity.subject,
    identityKind: identity.kind,
    connection: conn.name,
    agent: conn.agent,
    clientAddress,
    startedAt: startedAt.toISOString(),
  })
  log.info('session started', {agent: conn.agent})

  let timer: NodeJS.Timeout | undefined
  if (decision.limits.maxSessionSeconds) {
    timer = setTimeout(() => {
      stream.reset('ACCESS_DENIED', `session duration limit of ${decision.limits.maxSessionSeconds} s reached (rule ${decision.ruleId})`)
      upstream.destroy()
    }, decision.limits.maxSessionSeconds * 1000)
    timer.unref()
  }

  const endReason = await pipeBoth(stream, upstream, conn)
  if (timer) clearTimeout(timer)
  ctx.store.endSession(sessionId, {
    endedAt: new Date().toISOString(),
    bytesUp: stream.bytesIn,
    bytesDown: stream.bytesOut,
    endReason,
  })
  log.info('session ended', {reason: endReason, bytesUp: stream.bytesIn, bytesDown: stream.bytesOut, ms: Date.now() - startedAt.getTime()})
}

/**
 * Pipes client <-> upstream with backpressure and half-close in each direction. An upstream failure
 * resets the client stream with a reason the client can print; a client failure drops the upstream.
 * Resolves with the end reason once both sides are closed.
 */
function pipeBoth(client: RelayStream, upstream: Duplex, conn: ConnectionConfig): Promise<string> {
  return new Promise((resolve) => {
    let reason = 'closed'
    let closed = 0
    const onClose = () => {
      if (++closed === 2) resolve(reason)
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('error', (err) => {
      reason = `client stream ended: ${err.message}`
      upstream.destroy()
    })
    upstream.on('error', (err) => {
      const e = err instanceof HoopError ? err : undefined
      const lost = e?.code === 'GATEWAY_UNREACHABLE' || e?.code === 'GATEWAY_SHUTDOWN'
      reason = lost ? `agent "${conn.agent}" disconnected` : `target connection failed: ${e?.message ?? (err as NodeJS.ErrnoException).code ?? 'error'}`
      if (!client.destroyed) client.reset(lost ? 'AGENT_OFFLINE' : 'TARGET_REFUSED', reason)
    })
    client.once('close', () => {
      if (!upstream.destroyed) upstream.destroy()
      onClose()
    })
    upstream.once('close', () => {
      if (!client.destroyed && !client.writableEnded) client.end()
      onClose()
    })
  })
}
