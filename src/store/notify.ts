// Live signals between gateway replicas on one PostgreSQL store (LISTEN/NOTIFY, docs/ha.md): a
// revocation cuts live links on every replica at once, an approval decision wakes long-polls on
// every replica, a policy reload on one makes the others reload their file. Each replica holds ONE
// dedicated listening connection (outside the pool: a pooled connection would drop its LISTENs when
// handed back). NOTIFY is fire-and-forget, so a notification sent while the listener was away is
// lost: after every (re)connect the listener asks for a resync, a full re-read of what the
// notifications would have said, and the periodic revocation sweep stays as the backstop.
//
// The SQLite store has no other replica to tell: its signals are a no-op.
import {randomBytes} from 'node:crypto'
import {EventEmitter} from 'node:events'
import pg from 'pg'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'

/** What one replica tells the others. Names and ids are the store's own (bounded, validated on the way in). */
export type Signal =
  | {kind: 'revoked'; what: 'agent' | 'service-account'; name: string}
  | {kind: 'approval'; id: string}
  | {kind: 'policy'; version: string}

/** One channel per signal kind, so a replica's LISTENs say what it cares about. */
export const CHANNELS = {revoked: 'hoop_revocations', approval: 'hoop_approvals', policy: 'hoop_policy'} as const

/**
 * Bound on a payload, read or written. PostgreSQL's own limit is 8000 bytes; hoop's signals are a
 * few names, so anything larger is not hoop's and is dropped unread.
 */
export const MAX_PAYLOAD_BYTES = 1024
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/
const VERSION_RE = /^[0-9a-f]{64}$/

/** Events: 'signal' (signal, fromReplica | undefined), 'resync' () after every (re)connect. */
export interface Signals extends EventEmitter {
  /** This replica's id in payloads, so it can tell its own signals from the others'. */
  readonly replica: string
  /** Sends a signal to every replica (this one too); a failure is logged, never thrown: the sweep is the backstop. */
  publish(signal: Signal): Promise<void>
  close(): Promise<void>
}

/** The store side a publisher needs: one query on the pool. */
export interface SignalStore {
  query(sql: string, args?: unknown[]): Promise<unknown[]>
}

/** The payload on the wire: the signal with the sender's replica id, as JSON. */
export function encodeSignal(signal: Signal, replica?: string): {channel: string; payload: string} {
  const {kind, ...rest} = signal
  const payload = JSON.stringify(replica ? {...rest, r: replica} : rest)
  if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) throw new Error(`signal payload of ${Buffer.byteLength(payload)} bytes exceeds ${MAX_PAYLOAD_BYTES}`)
  return {channel: CHANNELS[kind], payload}
}

/** A payload read from a channel, checked field by field; undefined for anything hoop did not send. */
export function decodeSignal(channel: string, payload: string | undefined): {signal: Signal; replica?: string} | undefined {
  if (payload === undefined || Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) return undefined
  let body: Record<string, unknown>
  try {
    const parsed = JSON.parse(payload) as unknown
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined
    body = parsed as Record<string, unknown>
  } catch {
    return undefined
  }
  const replica = typeof body.r === 'string' && NAME_RE.test(body.r) ? body.r : undefined
  const name = (v: unknown): v is string => typeof v === 'string' && NAME_RE.test(v)
  if (channel === CHANNELS.revoked && (body.what === 'agent' || body.what === 'service-account') && name(body.name)) {
    return {signal: {kind: 'revoked', what: body.what, name: body.name}, replica}
  }
  if (channel === CHANNELS.approval && name(body.id)) return {signal: {kind: 'approval', id: body.id}, replica}
  if (channel === CHANNELS.policy && typeof body.version === 'string' && VERSION_RE.test(body.version)) {
    return {signal: {kind: 'policy', version: body.version}, replica}
  }
  return undefined
}

/** The SQLite store's signals: nothing to tell, nothing to hear. */
class NoSignals extends EventEmitter implements Signals {
  readonly replica = newReplicaId()
  async publish(): Promise<void> {}
  async close(): Promise<void> {}
}

export interface ListenOptions {
  url: string
  /** Publishes through the store's pool (a NOTIFY needs no dedicated connection). */
  store: SignalStore
  logger: Logger
  /** Redacts the URL's password from driver messages. */
  scrub: (text: string) => string
  /** First reconnect delay; doubles to maxBackoffMs, with jitter. */
  backoffMs?: number
  maxBackoffMs?: number
  /** How often the listening connection is probed, and how long a probe may take (default 15 s, 5 s). */
  probeMs?: number
  probeTimeoutMs?: number
}

const CONNECT_TIMEOUT_MS = 5000
/**
 * A listening connection that hangs without an error (a network cut, a dead host) hears nothing and
 * says nothing: a query on it this often, failing within QUERY_TIMEOUT_MS, counts as losing it.
 */
const PROBE_MS = 15_000
const QUERY_TIMEOUT_MS = 5000

/** The PostgreSQL store's signals: one listening connection that comes back after it is lost. */
class PgSignals extends EventEmitter implements Signals {
  readonly replica = newReplicaId()
  private client?: pg.Client
  private closed = false
  private retry?: NodeJS.Timeout
  private failures = 0
  /** Resolves once the first LISTEN is in place (or the first attempt failed: the retries carry on). */
  readonly ready: Promise<void>

  constructor(private readonly o: ListenOptions) {
    super()
    this.ready = this.connect()
  }

  async publish(signal: Signal): Promise<void> {
    try {
      const {channel, payload} = encodeSignal(signal, this.replica)
      await this.o.store.query('SELECT pg_notify($1, $2)', [channel, payload])
    } catch (err) {
      this.o.logger.warn('store signal not sent; other replicas learn it from their sweep', {kind: signal.kind, error: errorMessage(err)})
    }
  }

  private async connect(): Promise<void> {
    if (this.closed) return
    const client = new pg.Client({
      connectionString: this.o.url,
      application_name: 'hoop-listen',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: this.o.probeTimeoutMs ?? QUERY_TIMEOUT_MS,
      keepAlive: true,
    })
    this.client = client
    let lost = false
    const timers: {probe?: NodeJS.Timeout} = {}
    const onLost = (err?: Error) => {
      if (lost) return
      lost = true
      clearInterval(timers.probe)
      if (this.client === client) this.client = undefined
      client.removeAllListeners('notification')
      client.end().catch(() => undefined)
      if (!this.closed) {
        this.o.logger.warn('store listener lost; reconnecting', {error: err ? this.o.scrub(errorMessage(err)) : 'connection ended'})
        this.schedule()
      }
    }
    client.on('error', onLost)
    client.on('end', () => onLost())
    client.on('notification', (n) => this.onNotification(n.channel, n.payload))
    try {
      await client.connect()
      for (const channel of Object.values(CHANNELS)) await client.query(`LISTEN ${channel}`)
    } catch (err) {
      onLost(err as Error)
      return
    }
    if (this.closed) {
      await client.end().catch(() => undefined)
      return
    }
    this.failures = 0
    timers.probe = setInterval(() => void client.query('SELECT 1').catch((err: Error) => onLost(err)), this.o.probeMs ?? PROBE_MS)
    timers.probe.unref()
    this.o.logger.info('store listener connected', {channels: Object.values(CHANNELS).join(',')})
    // Whatever was notified while no LISTEN was in place is lost: re-read it all.
    this.emit('resync')
  }

  private schedule(): void {
    if (this.closed || this.retry) return
    const base = Math.min((this.o.backoffMs ?? 250) * 2 ** this.failures, this.o.maxBackoffMs ?? 10_000)
    this.failures = Math.min(this.failures + 1, 16)
    const delay = base / 2 + Math.random() * (base / 2)
    this.retry = setTimeout(() => {
      this.retry = undefined
      void this.connect()
    }, delay)
    this.retry.unref()
  }

  private onNotification(channel: string, payload: string | undefined): void {
    const got = decodeSignal(channel, payload)
    if (!got) {
      this.o.logger.warn('store signal ignored: not a hoop signal', {channel, bytes: payload === undefined ? 0 : Buffer.byteLength(payload)})
      return
    }
    try {
      this.emit('signal', got.signal, got.replica)
    } catch (err) {
      // A listener's failure must not take the connection (or the gateway) down.
      this.o.logger.error('store signal handler failed', {kind: got.signal.kind, error: errorMessage(err)})
    }
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => undefined)
  }
}

/** A random id per gateway process, carried in its payloads. */
function newReplicaId(): string {
  return randomBytes(6).toString('hex')
}

/** The signals for a store: a listener on PostgreSQL (connected, or retrying), a no-op on SQLite. */
export async function openSignals(o: ListenOptions | undefined): Promise<Signals> {
  if (!o) return new NoSignals()
  const s = new PgSignals(o)
  await s.ready
  return s
}
