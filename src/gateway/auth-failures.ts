// Authentication failures as audit evidence, without one durable write per failure. Per source
// (client address, method, claimed subject, connection) and interval, the first failure is
// appended as its own `auth.failure` event at once; the rest are counted, and when the interval
// ends (and at shutdown) each source gets one aggregated `auth.failure` with `count`, `first`,
// `last` and the reasons seen. So a flood of bad tokens costs a few writes per interval, and every
// failure is counted: the failures an event stands for are `data.count`, or 1 when it has none.
// The sources tracked per interval are bounded; beyond, failures go to one `other_sources` event.
import type {AuditWriter} from '../audit/index.js'
import {events} from '../audit/index.js'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'

export interface AuthFailure {
  /** `bearer`, `agent-token` (WebSocket upgrades) or `access` (a stream policy refused). */
  method: string
  reason: string
  clientAddress?: string
  claimedSubject?: string
  connection?: string
}

interface Bucket {
  sample: AuthFailure
  /** Failures after the one appended on its own. */
  count: number
  first?: Date
  last?: Date
  reasons: Map<string, number>
}

const DEFAULT_INTERVAL_MS = 10_000
const DEFAULT_MAX_SOURCES = 32
/** Distinct reasons kept per aggregated event; the rest are counted under OTHER_REASONS. */
const MAX_REASONS = 8
const OTHER_REASONS = '(other reasons)'
/** Reasons may quote what the peer sent (an issuer, a key id): keep them short. */
const MAX_REASON_CHARS = 200

function clip(text: string): string {
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS)}…` : text
}

export class AuthFailureAudit {
  private buckets = new Map<string, Bucket>()
  /** Failures from sources beyond maxSources this interval. */
  private overflow = new Map<string, Bucket>()
  private readonly timer: NodeJS.Timeout
  private readonly maxSources: number
  private readonly now: () => Date
  private closed = false
  private readonly writes = new Set<Promise<unknown>>()

  constructor(
    private readonly audit: AuditWriter,
    private readonly logger: Logger,
    opts: {intervalMs?: number; maxSources?: number; now?: () => Date} = {},
  ) {
    this.maxSources = opts.maxSources ?? DEFAULT_MAX_SOURCES
    this.now = opts.now ?? (() => new Date())
    this.timer = setInterval(() => void this.flush(), opts.intervalMs ?? DEFAULT_INTERVAL_MS)
    this.timer.unref()
  }

  /**
   * Counts one failure, appending it on its own if it is the first from its source this
   * interval. Returns true in that case, so callers log the first and stay quiet for the rest.
   */
  note(f: AuthFailure): boolean {
    if (this.closed) {
      this.logger.warn('authentication failure after the audit log closed; not recorded', {method: f.method, clientAddress: f.clientAddress})
      return false
    }
    const key = JSON.stringify([f.method, f.clientAddress ?? null, f.claimedSubject ?? null, f.connection ?? null])
    const known = this.buckets.get(key)
    if (known) {
      this.count(known, f)
      return false
    }
    if (this.buckets.size >= this.maxSources) {
      const method = this.overflow.get(f.method) ?? {sample: {method: f.method, reason: f.reason}, count: 0, reasons: new Map()}
      this.overflow.set(f.method, method)
      this.count(method, f)
      return false
    }
    this.buckets.set(key, {sample: f, count: 0, reasons: new Map()})
    this.write(events.authFailure({...f, at: this.now()}))
    return true
  }

  /** Appends one aggregated event per source that failed more than once, and starts a new interval. */
  async flush(): Promise<void> {
    const buckets = [...this.buckets.values(), ...this.overflow.values()]
    const others = new Set(this.overflow.values())
    this.buckets = new Map()
    this.overflow = new Map()
    for (const b of buckets) {
      if (b.count === 0) continue
      const reasons = Object.fromEntries(b.reasons)
      this.write(
        events.authFailure({
          ...(others.has(b) ? {method: b.sample.method, otherSources: true} : b.sample),
          reason: [...b.reasons.keys()][0] ?? b.sample.reason,
          count: b.count,
          first: b.first,
          last: b.last,
          reasons,
          at: this.now(),
        }),
      )
    }
    await Promise.all([...this.writes])
  }

  /** Stops the interval and appends what is counted; call before the audit log closes. */
  async close(): Promise<void> {
    if (this.closed) return
    clearInterval(this.timer)
    await this.flush()
    this.closed = true
  }

  private count(b: Bucket, f: AuthFailure): void {
    const at = this.now()
    b.count++
    b.first ??= at
    b.last = at
    const reason = clip(f.reason)
    if (b.reasons.has(reason) || b.reasons.size < MAX_REASONS) b.reasons.set(reason, (b.reasons.get(reason) ?? 0) + 1)
    else b.reasons.set(OTHER_REASONS, (b.reasons.get(OTHER_REASONS) ?? 0) + 1)
  }

  private write(event: ReturnType<typeof events.authFailure>): void {
    const p = this.audit
      .append(event)
      .catch((err) => this.logger.error('audit append failed', {kind: event.kind, error: errorMessage(err)}))
      .finally(() => this.writes.delete(p))
    this.writes.add(p)
  }
}
