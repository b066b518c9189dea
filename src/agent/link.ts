// One agent's link to ONE gateway replica: dial out, hand the replica's stream-open requests to
// the agent, and when the link drops (the replica died, restarted or shut down) redial with
// jittered exponential backoff. Each replica gets its own GatewayLink, so one replica's failure
// never touches the links to the others. A rejected token ends the link with that error.
import {EventEmitter} from 'node:events'
import {dialRelay} from '../client/dial.js'
import {Mux, type RelayStream} from '../relay/mux.js'
import {backoffDelay} from '../shared/backoff.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {RELAY_PATHS} from '../shared/routes.js'

export interface LinkOptions {
  gateway: string
  token: string
  logger: Logger
  serve: (stream: RelayStream) => void
  heartbeatMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class GatewayLink extends EventEmitter {
  private stopping = false
  private mux?: Mux
  private wake?: () => void

  constructor(private readonly opts: LinkOptions) {
    super()
  }

  /** Runs until stop(); rejects with TOKEN_REJECTED when this replica refuses the token. */
  async run(): Promise<void> {
    const {logger, gateway} = this.opts
    let attempt = 0
    while (!this.stopping) {
      try {
        const ws = await dialRelay(gateway, RELAY_PATHS.agent, this.opts.token, {userAgent: 'hoop-agent'})
        attempt = 0
        const mux = new Mux(ws, {side: 'dialer', logger, heartbeatMs: this.opts.heartbeatMs, onOpen: this.opts.serve, lostMessage: `link to gateway ${gateway} lost`})
        this.mux = mux
        logger.info('connected to gateway', {gateway})
        this.emit('connected', gateway)
        const reason = await new Promise<HoopError>((resolve) => mux.once('close', resolve))
        this.mux = undefined
        if (this.stopping) break
        if (reason?.code === 'TOKEN_REJECTED') throw reason
        logger.warn('gateway link lost', {gateway, reason: reason?.message})
        this.emit('disconnected', reason)
      } catch (err) {
        const e = asHoopError(err)
        if (e.code === 'TOKEN_REJECTED' || e.code === 'INVALID_INPUT') throw e
        if (this.stopping) break
        logger.warn('cannot reach gateway', {gateway, error: e.message})
      }
      if (this.stopping) break
      const delay = backoffDelay(attempt++, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000)
      logger.info('reconnecting', {gateway, inMs: delay, attempt})
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
}
