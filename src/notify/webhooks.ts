// Delivers approval notifications to webhooks, off the data path: `notify()` only builds a small
// payload and queues it, and returns at once; nothing a statement or an API call waits on ever
// awaits a delivery. Each webhook has its own bounded in-memory queue (`queue` notifications and
// MAX_QUEUE_BYTES of payloads; full: the oldest waiting notification is dropped, logged and
// counted) and delivers one notification at a time, in order.
//
// One attempt: POST with a timeout, redirects not followed (a 3xx is a failure: the configured URL
// is the one trusted). Network errors, timeouts, 408, 429 and 5xx are retried with full-jitter
// exponential backoff up to the webhook's retry limit (429/503 Retry-After honoured up to a cap);
// any other answer is final. Delivery is at-least-once within that limit: the same event id and
// delivery id on every retry, so receivers dedupe. The queue lives in memory: notifications
// still waiting when the gateway stops (after a short drain) are lost, and logged as such.
//
// Logs and metrics name the webhook, never its URL (a Slack URL is a credential) or secret.
import {randomBytes} from 'node:crypto'
import type {ApprovalDecisionRecord, ApprovalEventKind, ApprovalRecord, ApprovalUse} from '../approvals/types.js'
import {backoffDelay} from '../shared/backoff.js'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {NotifySettings, WebhookSettings} from './config.js'
import {consoleUrlOf, jsonPayload, type NotifyEvent, notifyEvent, SIGNATURE_HEADER, signatureHeader, slackPayload} from './payload.js'

/** What happened to one notification at one webhook (the metric's `outcome` label). */
export type DeliveryOutcome =
  | 'delivered' // a 2xx answer
  | 'retried' // a retryable failure; another attempt is scheduled
  | 'failed' // a final answer (other 4xx, 3xx) or out of retries
  | 'dropped' // the queue was full, or the gateway stopped before it was delivered

export interface NotifierOptions {
  /** The gateway's URL as people open it; `notifications.publicUrl` wins. */
  publicUrl: string
  logger: Logger
  /** Every outcome of every attempt; `detail` is the answer's status or why it failed (no URL). */
  onOutcome?: (webhook: string, outcome: DeliveryOutcome, detail?: string) => void
  /** Backoff between retries (defaults: 1s doubling to 60s); Retry-After is honoured up to `retryAfterCapMs` (5 min). */
  backoff?: {baseMs: number; maxMs: number; retryAfterCapMs?: number}
  /** Sent as User-Agent: hoop/<version>. */
  version?: string
  now?: () => number
}

interface Delivery {
  event: NotifyEvent
  /** `dlv_...`: one per event and webhook, the same on every retry. */
  id: string
  body: string
  /** Attempts made so far. */
  attempts: number
}

type AttemptResult =
  | {kind: 'delivered'; status: number}
  | {kind: 'retry'; reason: string; retryAfterMs?: number}
  | {kind: 'final'; reason: string}

const DEFAULT_BACKOFF = {baseMs: 1000, maxMs: 60_000, retryAfterCapMs: 300_000}

/** Retry-After: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3); undefined when absent or malformed. */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (!value) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** Why a fetch failed, without the URL: undici puts the socket error's code in `cause`. */
function networkReason(err: unknown): string {
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) return err.name === 'TimeoutError' ? 'timeout' : 'aborted'
  const cause = (err as {cause?: {code?: unknown; name?: unknown}} | null)?.cause
  if (typeof cause?.code === 'string') return cause.code
  if (cause?.name === 'ConnectTimeoutError') return 'connect timeout'
  return 'network error'
}

/** One webhook's queue and its delivery loop. */
/** Payload bytes one webhook's queue holds at most, whatever its `queue` count allows. */
export const MAX_QUEUE_BYTES = 32 * 1024 * 1024

class WebhookQueue {
  private readonly waiting: Delivery[] = []
  /** Payload bytes (UTF-16 length: close enough for a bound) waiting. */
  private bytes = 0
  private current?: Delivery
  private timer?: NodeJS.Timeout
  private readonly abort = new AbortController()
  /** Shutting down: no more backoff, one last attempt each. */
  private draining = false
  private idle: (() => void)[] = []

  constructor(
    readonly hook: WebhookSettings,
    private readonly opts: Required<Pick<NotifierOptions, 'logger' | 'now'>> & NotifierOptions & {backoff: typeof DEFAULT_BACKOFF},
  ) {}

  get pending(): number {
    return this.waiting.length + (this.current ? 1 : 0)
  }

  push(d: Delivery): void {
    while (this.waiting.length > 0 && (this.waiting.length >= this.hook.queueSize || this.bytes + d.body.length > MAX_QUEUE_BYTES)) {
      const dropped = this.take()!
      this.outcome('dropped', 'queue full')
      this.opts.logger.warn('notification dropped: webhook queue full', {webhook: this.hook.name, queue: this.hook.queueSize, event: dropped.event.id, type: dropped.event.type})
    }
    this.waiting.push(d)
    this.bytes += d.body.length
    this.next()
  }

  private take(): Delivery | undefined {
    const d = this.waiting.shift()
    if (d) this.bytes -= d.body.length
    return d
  }

  /** Starts the next delivery when none is in flight or waiting for its retry. */
  private next(): void {
    if (this.current || this.abort.signal.aborted) return
    this.current = this.take()
    if (!this.current) {
      for (const w of this.idle.splice(0)) w()
      return
    }
    void this.attempt(this.current)
  }

  private async attempt(d: Delivery): Promise<void> {
    d.attempts++
    // Nothing thrown here may escape: this runs detached, and the gateway must not crash on it.
    const r = await this.post(d).catch((err: unknown): AttemptResult => {
      this.opts.logger.error('notification attempt failed unexpectedly', {webhook: this.hook.name, event: d.event.id, error: err instanceof Error ? err.name : 'error'})
      return {kind: 'retry', reason: 'unexpected error'}
    })
    if (this.abort.signal.aborted) return
    if (r.kind === 'delivered') {
      this.outcome('delivered', `HTTP ${r.status}`)
      this.opts.logger.debug('notification delivered', {webhook: this.hook.name, event: d.event.id, type: d.event.type, status: r.status, attempts: d.attempts})
      return this.done()
    }
    const retriesLeft = this.hook.retries - (d.attempts - 1)
    if (r.kind === 'final' || retriesLeft <= 0 || this.draining) {
      this.outcome('failed', r.reason)
      this.opts.logger.error('notification not delivered', {webhook: this.hook.name, event: d.event.id, type: d.event.type, attempts: d.attempts, error: r.reason})
      return this.done()
    }
    const {baseMs, maxMs, retryAfterCapMs} = this.opts.backoff
    const backoff = backoffDelay(d.attempts - 1, baseMs, maxMs)
    const delay = Math.max(backoff, Math.min(r.retryAfterMs ?? 0, retryAfterCapMs))
    this.outcome('retried', r.reason)
    this.opts.logger.warn('notification delivery failed; will retry', {webhook: this.hook.name, event: d.event.id, attempt: d.attempts, retryInMs: delay, error: r.reason})
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.attempt(d)
    }, delay)
    this.timer.unref()
  }

  private done(): void {
    this.current = undefined
    this.next()
  }

  private async post(d: Delivery): Promise<AttemptResult> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': `hoop/${this.opts.version ?? '0'}`,
      'hoop-delivery': d.id,
      'hoop-event': d.event.type,
      'hoop-event-id': d.event.id,
      'hoop-attempt': String(d.attempts),
    }
    // Signed per attempt: a fresh timestamp, so a receiver's replay window does not refuse a late retry.
    if (this.hook.secret) headers[SIGNATURE_HEADER] = signatureHeader(this.hook.secret, d.body, Math.floor(this.opts.now() / 1000))
    let res: Response
    try {
      res = await fetch(this.hook.url, {
        method: 'POST',
        headers,
        body: d.body,
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.hook.timeoutMs), this.abort.signal]),
      })
    } catch (err) {
      return {kind: 'retry', reason: networkReason(err)}
    }
    // The answer's body is not read: a receiver cannot make the gateway buffer anything.
    await res.body?.cancel().catch(() => undefined)
    const status = res.status
    if (status >= 200 && status < 300) return {kind: 'delivered', status}
    if (status === 408 || status === 429 || status >= 500) return {kind: 'retry', reason: `HTTP ${status}`, retryAfterMs: retryAfterMs(res.headers.get('retry-after'), this.opts.now())}
    if (status >= 300 && status < 400) return {kind: 'final', reason: `HTTP ${status}: redirects are not followed; configure the final URL`}
    return {kind: 'final', reason: `HTTP ${status}`}
  }

  private outcome(o: DeliveryOutcome, detail?: string): void {
    try {
      this.opts.onOutcome?.(this.hook.name, o, detail)
    } catch {
      // metrics never stop a delivery
    }
  }

  /** Cuts short any backoff: each waiting notification gets one last attempt. Resolves when idle. */
  drain(): Promise<void> {
    this.draining = true
    if (this.timer && this.current) {
      clearTimeout(this.timer)
      this.timer = undefined
      void this.attempt(this.current)
    }
    if (!this.current) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  /** Aborts the attempt in flight; returns how many notifications were never delivered. */
  stop(): number {
    const lost = this.pending
    this.abort.abort()
    clearTimeout(this.timer)
    this.waiting.length = 0
    this.bytes = 0
    this.current = undefined
    for (let i = 0; i < lost; i++) this.outcome('dropped', 'the gateway stopped')
    for (const w of this.idle.splice(0)) w()
    return lost
  }
}

export class Notifier {
  private readonly queues: WebhookQueue[]
  private readonly publicUrl: string
  private closed = false

  constructor(
    settings: NotifySettings,
    private readonly opts: NotifierOptions,
  ) {
    const now = opts.now ?? Date.now
    const full = {...opts, now, backoff: {...DEFAULT_BACKOFF, ...opts.backoff}}
    this.queues = settings.webhooks.map((h) => new WebhookQueue(h, full))
    this.publicUrl = settings.publicUrl ?? opts.publicUrl
  }

  /** Whether any webhook is configured. */
  get enabled(): boolean {
    return this.queues.length > 0
  }

  /** Notifications queued or in flight, over all webhooks. */
  get pending(): number {
    return this.queues.reduce((n, q) => n + q.pending, 0)
  }

  /** An approval state change (the ApprovalService's onEvent). Queues and returns; never throws. */
  notify(kind: ApprovalEventKind, rec: ApprovalRecord, decision?: ApprovalDecisionRecord, use?: ApprovalUse): void {
    if (this.closed || this.queues.length === 0) return
    try {
      this.send(notifyEvent(kind, rec, decision, use, (this.opts.now ?? Date.now)()))
    } catch (err) {
      this.opts.logger.error('notification not queued', {approval: rec.id, kind, error: errorMessage(err)})
    }
  }

  /** Queues one event for every webhook subscribed to its type, or that `to` picks (`hoop admin notify-test`). */
  send(event: NotifyEvent, to: (hook: WebhookSettings) => boolean = (h) => h.events.has(event.type)): number {
    const bodies = new Map<string, string>()
    let queued = 0
    for (const q of this.queues) {
      if (!to(q.hook)) continue
      const key = `${q.hook.format}:${q.hook.statement}`
      let body = bodies.get(key)
      if (body === undefined) {
        const po = {consoleUrl: consoleUrlOf(this.publicUrl, event.approval.id), statement: q.hook.statement}
        body = q.hook.format === 'slack' ? slackPayload(event, po) : jsonPayload(event, po)
        bodies.set(key, body)
      }
      q.push({event, id: 'dlv_' + randomBytes(12).toString('base64url'), body, attempts: 0})
      queued++
    }
    return queued
  }

  /**
   * Stops taking notifications and gives the queued ones until `timeoutMs` (one last attempt each,
   * no backoff); what is left is dropped and logged. Resolves true when everything was sent.
   */
  async close(timeoutMs = 3000): Promise<boolean> {
    this.closed = true
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))
    await Promise.race([Promise.all(this.queues.map((q) => q.drain())), deadline])
    clearTimeout(timer)
    let lost = 0
    for (const q of this.queues) {
      const n = q.stop()
      if (n > 0) this.opts.logger.warn('notifications not delivered: the gateway stopped', {webhook: q.hook.name, count: n})
      lost += n
    }
    return lost === 0
  }
}
