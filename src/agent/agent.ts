// `hoop agent`: dials out to every gateway replica it is given (no inbound port) and keeps one
// link to EACH (link.ts), so whichever replica a client reaches can open a stream to this agent.
// On a shared store it also discovers the other replicas (`GET /v1/replicas`, docs/ha.md) every
// few seconds and reconciles its links: a link to each replica listed, a link to a replica no
// longer listed dropped after a grace period (a replica restarting is briefly unlisted), and the
// URLs it was given kept whatever the list says, since they are the operator's word.
// It serves stream-open requests from any link by dialing the target and piping bytes. A token
// rejected by one replica ends the agent with an error: replicas share one store, so a revoked
// token must not live on through replicas that have not swept the revocation yet.
import {EventEmitter} from 'node:events'
import {normaliseUrl} from '../shared/urls.js'
import type {RelayStream} from '../relay/mux.js'
import {dialTarget} from '../shared/dial.js'
import {HoopError, asHoopError, errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {GatewayLink} from './link.js'

/** How often the agent asks for the replicas' list (HOOP_AGENT_DISCOVERY_MS overrides it). */
export const DISCOVERY_MS = 5000
/** How long a discovered replica may be missing from the list before its link goes (HOOP_AGENT_DISCOVERY_GRACE_MS). */
export const DISCOVERY_GRACE_MS = 30_000
/** A replica that does not answer the list within this is skipped for this round. */
const DISCOVERY_TIMEOUT_MS = 5000

/**
 * HOOP_AGENT_DISCOVERY_MS (0 turns discovery off, else 100 ms to 10 min) and
 * HOOP_AGENT_DISCOVERY_GRACE_MS (0 to 1 h): tests make them short.
 */
export function discoveryFromEnv(): {discoveryMs?: number; discoveryGraceMs?: number} {
  const read = (name: string, min: number, max: number): number | undefined => {
    const raw = process.env[name]
    if (raw === undefined || raw === '') return undefined
    const ms = Number(raw)
    if (!Number.isInteger(ms) || (ms !== 0 && ms < min) || ms > max) throw new HoopError('INVALID_INPUT', `${name} must be 0 or a whole number of milliseconds from ${min} to ${max}, not "${raw.slice(0, 20)}"`)
    return ms
  }
  return {discoveryMs: read('HOOP_AGENT_DISCOVERY_MS', 100, 600_000), discoveryGraceMs: read('HOOP_AGENT_DISCOVERY_GRACE_MS', 0, 3_600_000)}
}

interface AgentOptions {
  /** The replicas of one gateway; the agent links to each, and never drops them. */
  gateways: string[]
  token: string
  logger: Logger
  /** host:port patterns the agent may dial ("*" wildcards); empty = any. */
  allowTargets?: string[]
  heartbeatMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
  /** Replica discovery's interval (0: off), and the grace before an unlisted replica's link goes. */
  discoveryMs?: number
  discoveryGraceMs?: number
}

interface LinkEntry {
  link: GatewayLink
  /** Given on the command line: never dropped. */
  given: boolean
  /** When discovery last found it missing from the list (undefined while listed). */
  missingSince?: number
}

export class Agent extends EventEmitter {
  private readonly links = new Map<string, LinkEntry>()
  private stopping = false
  private discovering = false
  private discoveryTimer?: NodeJS.Timeout
  /** Settles run(): resolved on stop(), rejected by the first link that fails for good. */
  private finish?: {resolve: () => void; reject: (err: unknown) => void}
  private readonly running = new Set<Promise<void>>()

  constructor(private readonly opts: AgentOptions) {
    super()
    if (opts.gateways.length === 0) throw new HoopError('INVALID_INPUT', 'the agent needs at least one gateway URL')
  }

  /** Runs until stop(); rejects with the first link's TOKEN_REJECTED (or INVALID_INPUT), after stopping the others. */
  async run(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => (this.finish = {resolve, reject}))
    for (const g of this.opts.gateways) this.addLink(g, true)
    const every = this.opts.discoveryMs ?? DISCOVERY_MS
    if (every > 0) {
      void this.discover()
      this.discoveryTimer = setInterval(() => void this.discover(), every)
    }
    try {
      await done
    } catch (err) {
      this.stop()
      throw err
    } finally {
      clearInterval(this.discoveryTimer)
      await Promise.allSettled([...this.running])
    }
  }

  stop(): void {
    this.stopping = true
    clearInterval(this.discoveryTimer)
    for (const {link} of this.links.values()) link.stop()
    this.finish?.resolve()
  }

  /** The replicas this agent links to now (given and discovered). */
  replicas(): string[] {
    return [...this.links.keys()]
  }

  private addLink(gateway: string, given: boolean): void {
    const link = new GatewayLink({...this.opts, gateway, serve: (s) => this.serve(s)})
    link.on('connected', (g: string) => this.emit('connected', g))
    link.on('disconnected', (reason: HoopError) => this.emit('disconnected', reason))
    this.links.set(gateway, {link, given})
    const run = link.run().catch((err) => {
      // A rejected token is the store's answer, wherever it came from; a discovered URL the link
      // cannot use (INVALID_INPUT) only costs that link.
      if (given || asHoopError(err).code === 'TOKEN_REJECTED') this.finish?.reject(err)
      else {
        this.opts.logger.warn('dropping the link to a discovered replica', {gateway, error: errorMessage(err)})
        if (this.links.get(gateway)?.link === link) this.links.delete(gateway)
      }
    })
    this.running.add(run)
    void run.finally(() => this.running.delete(run))
  }

  /**
   * Asks the linked replicas, in turn, for the live replicas' list, and reconciles the links with
   * the first answer. No answer (every replica down, an older gateway without the route) changes
   * nothing: the links keep redialing on their own.
   */
  private async discover(): Promise<void> {
    if (this.discovering || this.stopping) return
    this.discovering = true
    try {
      const listed = await this.fetchReplicas()
      if (!listed || this.stopping) return
      const now = Date.now()
      for (const url of listed) {
        const entry = this.links.get(url)
        if (entry) entry.missingSince = undefined
        else {
          this.opts.logger.info('discovered a gateway replica', {gateway: url})
          this.addLink(url, false)
        }
      }
      const grace = this.opts.discoveryGraceMs ?? DISCOVERY_GRACE_MS
      for (const [url, entry] of this.links) {
        if (entry.given || listed.includes(url)) continue
        entry.missingSince ??= now
        if (now - entry.missingSince >= grace) {
          this.opts.logger.info('dropping the link to a replica no longer listed', {gateway: url, missingMs: now - entry.missingSince})
          this.links.delete(url)
          entry.link.stop()
        }
      }
    } finally {
      this.discovering = false
    }
  }

  private async fetchReplicas(): Promise<string[] | undefined> {
    for (const gateway of this.links.keys()) {
      try {
        const res = await fetch(`${gateway}/v1/replicas`, {headers: {authorization: `Bearer ${this.opts.token}`, 'user-agent': 'hoop-agent'}, signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS)})
        if (!res.ok) {
          await res.body?.cancel()
          continue
        }
        const body = (await res.json()) as {replicas?: Array<{url?: unknown}>}
        if (!Array.isArray(body.replicas)) continue
        return body.replicas.flatMap((r) => {
          try {
            return typeof r?.url === 'string' ? [normaliseUrl(r.url)] : []
          } catch {
            return [] // not an http(s) URL: nothing to dial
          }
        })
      } catch (err) {
        this.opts.logger.debug('replica list not available', {gateway, error: errorMessage(err)})
      }
    }
    return undefined
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
