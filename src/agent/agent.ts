// `hoop agent`: dials out to the gateway (no inbound port), serves stream-open requests by dialing
// the target and piping bytes, and keeps the link alive: heartbeat in the relay, redial with
// jittered exponential backoff. A rejected or revoked token ends the agent with an error.
import {EventEmitter} from 'node:events'
import {dialRelay} from '../client/dial.js'
import {Mux, type RelayStream} from '../relay/mux.js'
import {dialTarget} from '../shared/dial.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {RELAY_PATHS} from '../shared/routes.js'

interface AgentOptions {
  gateway: string
  token: string
  logger: Logger
  /** host:port patterns the agent may dial ("*" wildcards); empty = any. */
  allowTargets?: string[]
  heartbeatMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

/** Full-jitter exponential backoff (AWS architecture blog): random in [0, min(max, base * 2^n)]. */
function backoffDelay(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20))
  return Math.max(minMs / 2, Math.floor(random() * cap))
}

export class Agent extends EventEmitter {
  private stopping = false
  private mux?: Mux
  private wake?: () => void

  constructor(private readonly opts: AgentOptions) {
    super()
  }

  /** Runs until stop(); rejects with TOKEN_REJECTED when the gateway refuses the token. */
  async run(): Promise<void> {
    const {logger} = this.opts
    let attempt = 0
    while (!this.stopping) {
      try {
        const ws = await dialRelay(this.opts.gateway, RELAY_PATHS.agent, this.opts.token, {userAgent: 'hoop-agent'})
        attempt = 0
        const mux = new Mux(ws, {side: 'dialer', logger, heartbeatMs: this.opts.heartbeatMs, onOpen: (s) => this.serve(s)})
        this.mux = mux
        logger.info('connected to gateway', {gateway: this.opts.gateway})
        this.emit('connected')
        const reason = await new Promise<HoopError>((resolve) => mux.once('close', resolve))
        this.mux = undefined
        if (this.stopping) break
        if (reason?.code === 'TOKEN_REJECTED') throw reason
        logger.warn('gateway link lost', {reason: reason?.message})
        this.emit('disconnected', reason)
      } catch (err) {
        const e = asHoopError(err)
        if (e.code === 'TOKEN_REJECTED' || e.code === 'INVALID_INPUT') throw e
        if (this.stopping) break
        logger.warn('cannot reach gateway', {error: e.message})
      }
      if (this.stopping) break
      const delay = backoffDelay(attempt++, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000)
      logger.info('reconnecting', {inMs: delay, attempt})
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay)
        this.wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
  }

  stop(): void {
    this.stopping = true
    this.wake?.()
    this.mux?.goAway('GATEWAY_SHUTDOWN', 'agent is shutting down')
  }

  private serve(stream: RelayStream): void {
    const host = typeof stream.meta.host === 'string' ? stream.meta.host : ''
    const port = typeof stream.meta.port === 'number' ? stream.meta.port : 0
    const log = this.opts.logger.child({session: stream.meta.sessionId, connection: stream.meta.connection})
    if (!host || !port) {
      stream.reject('PROTOCOL_ERROR', 'open request without host and port')
      return
    }
    if (!targetAllowed(this.opts.allowTargets ?? [], host, port)) {
      log.warn('target not allowed', {host, port})
      stream.reject('ACCESS_DENIED', `agent does not allow target ${host}:${port}`)
      return
    }
    dialTarget(host, port).then(
      (socket) => {
        if (stream.destroyed) {
          socket.destroy()
          return
        }
        stream.accept()
        log.debug('stream open', {host, port})
        socket.pipe(stream)
        stream.pipe(socket)
        socket.on('error', (err: NodeJS.ErrnoException) => {
          if (!stream.destroyed) stream.reset('TARGET_REFUSED', `target ${host}:${port} failed: ${err.code ?? err.message}`)
        })
        socket.once('close', () => {
          if (!stream.destroyed && !stream.writableEnded) stream.end()
        })
        stream.on('error', () => socket.destroy())
        stream.once('close', () => socket.destroy())
      },
      (err) => {
        const e = asHoopError(err)
        log.warn('target unavailable', {error: e.message})
        if (!stream.destroyed) stream.reject(e.code, e.message)
      },
    )
  }
}

function targetAllowed(patterns: string[], host: string, port: number): boolean {
  if (patterns.length === 0) return true
  const target = `${host}:${port}`
  return patterns.some((p) => new RegExp('^' + p.split('*').map(escapeRe).join('.*') + '$').test(target))
}

function escapeRe(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')
}
