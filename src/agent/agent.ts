// `hoop agent`: dials out to every gateway replica it is given (no inbound port) and keeps one
// link to EACH (link.ts), so whichever replica a client reaches can open a stream to this agent.
// It serves stream-open requests from any link by dialing the target and piping bytes. A token
// rejected by one replica ends the agent with an error: replicas share one store, so a revoked
// token must not live on through replicas that have not swept the revocation yet.
import {EventEmitter} from 'node:events'
import type {RelayStream} from '../relay/mux.js'
import {dialTarget} from '../shared/dial.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {GatewayLink} from './link.js'

interface AgentOptions {
  /** The replicas of one gateway; the agent links to each. */
  gateways: string[]
  token: string
  logger: Logger
  /** host:port patterns the agent may dial ("*" wildcards); empty = any. */
  allowTargets?: string[]
  heartbeatMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class Agent extends EventEmitter {
  private readonly links: GatewayLink[]

  constructor(private readonly opts: AgentOptions) {
    super()
    if (opts.gateways.length === 0) throw new HoopError('INVALID_INPUT', 'the agent needs at least one gateway URL')
    this.links = opts.gateways.map((gateway) => {
      const link = new GatewayLink({...opts, gateway, serve: (s) => this.serve(s)})
      link.on('connected', (g: string) => this.emit('connected', g))
      link.on('disconnected', (reason: HoopError) => this.emit('disconnected', reason))
      return link
    })
  }

  /** Runs until stop(); rejects with the first link's TOKEN_REJECTED (or INVALID_INPUT), after stopping the others. */
  async run(): Promise<void> {
    try {
      await Promise.all(this.links.map((l) => l.run()))
    } catch (err) {
      this.stop()
      throw err
    }
  }

  stop(): void {
    for (const l of this.links) l.stop()
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
