// The `notifications:` section of the gateway config: webhooks that hear about approval requests
// and decisions (docs/notifications.md). Validated all at once with line-numbered errors, like the
// rest of the config. Secrets are references, read here at start so that a missing one stops the
// gateway instead of every delivery: the HMAC signing key, and a Slack incoming-webhook URL, which
// is itself the credential (whoever holds it may post to the channel).
import {isLoopbackUrl, parseDuration} from '../identity/auth-config.js'
import {type GatewayConfig, isObject, parseSecretRef, readSecret} from '../shared/config.js'
import {errorMessage} from '../shared/errors.js'
import {configError, type PathSegment, type SourceProblem} from '../shared/yaml-source.js'
import {dirname, resolve} from 'node:path'

/** Notification types, one per approval state change (src/approvals/types.ts ApprovalEventKind). */
export const NOTIFY_EVENTS = [
  'approval.requested', // a new request waits for approvers
  'approval.partial', // one approver approved; more approvals are needed
  'approval.approved',
  'approval.rejected',
  'approval.expired',
  'approval.used', // a statement ran under an approval
] as const
/** `notification.test` is sent only by `hoop admin notify-test`, to every webhook it names. */
export type NotifyEventType = (typeof NOTIFY_EVENTS)[number] | 'notification.test'

/** What a webhook hears when its config names no events: the changes a person acts on. */
const DEFAULT_EVENTS: NotifyEventType[] = ['approval.requested', 'approval.approved', 'approval.rejected', 'approval.expired']

export type WebhookFormat = 'json' | 'slack'

export interface WebhookSettings {
  name: string
  format: WebhookFormat
  /** Read from the config or its reference; never logged (a Slack URL is a credential). */
  url: string
  /** HMAC-SHA256 key for the Hoop-Signature header; required for json. */
  secret?: string
  events: ReadonlySet<NotifyEventType>
  timeoutMs: number
  /** Notifications waiting for this webhook at most; when full, the oldest is dropped (and counted). */
  queueSize: number
  /** Retries after the first attempt, for network errors, timeouts, 408, 429 and 5xx. */
  retries: number
  /** Whether the statement text goes into the payload (default true; truncated for Slack). */
  statement: boolean
}

export interface NotifySettings {
  /** Base of console links (`<publicUrl>/console/approvals/<id>`); default: the gateway's URL. */
  publicUrl?: string
  webhooks: WebhookSettings[]
}

const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/
const WEBHOOK_KEYS = ['name', 'url', 'format', 'secret', 'events', 'timeout', 'queue', 'retries', 'statement']
/** A signing key shorter than this is guessable enough to forge signatures offline. */
const MIN_SECRET_CHARS = 16
const REF = '{env: VAR} or {file: PATH}'

/** https anywhere, plain http only to loopback (a receiver on the gateway host, or a test). */
function urlProblem(url: string): string | undefined {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'is not a URL'
  }
  if (u.username || u.password) return 'must not carry credentials (user:password@); give the URL as a reference instead'
  if (u.protocol === 'https:') return undefined
  if (u.protocol === 'http:' && isLoopbackUrl(url)) return undefined
  return 'must be https:// (plain http only on loopback)'
}

export function parseNotifySettings(cfg: GatewayConfig): NotifySettings {
  const out: NotifySettings = {webhooks: []}
  const raw = cfg.notifications
  if (raw === undefined || raw === null) return out
  const problems: SourceProblem[] = []
  const fail = (path: PathSegment[], msg: string) =>
    problems.push(cfg.source ? cfg.source.problem(['notifications', ...path], msg) : {file: cfg.file ?? '<config>', line: 1, column: 1, message: msg})
  if (!isObject(raw)) {
    fail([], 'notifications must be a mapping: {publicUrl?: URL, webhooks: [...]}')
    throw configError(problems)
  }
  const baseDir = cfg.file && !cfg.file.startsWith('<') ? dirname(resolve(cfg.file)) : process.cwd()
  for (const k of Object.keys(raw)) if (k !== 'publicUrl' && k !== 'webhooks') fail([k], `unknown key "${k}" in notifications (publicUrl, webhooks)`)
  if (raw.publicUrl !== undefined) {
    if (typeof raw.publicUrl !== 'string' || !/^https?:\/\/[^/]/.test(raw.publicUrl) || urlProblem(raw.publicUrl) === 'is not a URL') {
      fail(['publicUrl'], 'notifications.publicUrl must be the gateway URL people open, e.g. https://hoop.example.com')
    } else out.publicUrl = raw.publicUrl.replace(/\/+$/, '')
  }
  if (raw.webhooks !== undefined && !Array.isArray(raw.webhooks)) fail(['webhooks'], 'notifications.webhooks must be a list')
  const seen = new Set<string>()
  for (const [i, w] of (Array.isArray(raw.webhooks) ? raw.webhooks : []).entries()) {
    const hook = parseWebhook(w, (path, msg) => fail(['webhooks', i, ...path], msg), baseDir)
    if (!hook) continue
    if (seen.has(hook.name)) fail(['webhooks', i, 'name'], `duplicate webhook name "${hook.name}"`)
    seen.add(hook.name)
    out.webhooks.push(hook)
  }
  if (problems.length > 0) throw configError(problems)
  return out
}

function parseWebhook(w: unknown, fail: (path: PathSegment[], msg: string) => void, baseDir: string): WebhookSettings | undefined {
  if (!isObject(w)) {
    fail([], `each webhook is {name, url, format: json | slack, secret: ${REF}, events?: [...]}`)
    return undefined
  }
  let ok = true
  const bad = (key: PathSegment, msg: string) => {
    fail([key], msg)
    ok = false
  }
  for (const k of Object.keys(w)) if (!WEBHOOK_KEYS.includes(k)) bad(k, `unknown key "${k}" in webhook (${WEBHOOK_KEYS.join(', ')})`)
  const name = typeof w.name === 'string' && NAME_RE.test(w.name) ? w.name : undefined
  if (!name) bad('name', 'name must be lower-case letters, digits, "-", "_" or "." (max 63); logs and metrics use it, never the URL')
  const format = w.format ?? 'json'
  if (format !== 'json' && format !== 'slack') bad('format', 'format must be json (signed generic payload) or slack (incoming-webhook payload)')
  // A secret read from a reference: the problem names the reference, never the value.
  const secretOf = (key: string, what: string): string | undefined => {
    const ref = parseSecretRef(w[key], baseDir)
    if (!ref) {
      bad(key, `${key} must be a reference, ${REF}: ${what}`)
      return undefined
    }
    try {
      return readSecret(ref)
    } catch (err) {
      bad(key, errorMessage(err))
      return undefined
    }
  }
  let url: string | undefined
  if (typeof w.url === 'string' && format !== 'slack') {
    const problem = urlProblem(w.url)
    if (problem) bad('url', `url ${problem}`)
    else url = w.url
  } else if (w.url === undefined) {
    bad('url', format === 'slack' ? `url is required: the Slack incoming-webhook URL as ${REF}` : 'url is required: https://...')
  } else {
    url = secretOf('url', format === 'slack' ? 'a Slack incoming-webhook URL is itself the credential and is never written inline' : 'or an https:// string')?.trim()
    const problem = url === undefined ? undefined : urlProblem(url)
    if (problem) {
      bad('url', `the URL this reference holds ${problem}`)
      url = undefined
    }
  }
  let secret: string | undefined
  if (w.secret === undefined) {
    if (format === 'json') bad('secret', `secret is required for format json: the HMAC-SHA256 signing key, as ${REF}`)
  } else {
    secret = secretOf('secret', 'the signing key is never written inline')
    if (secret !== undefined && secret.length < MIN_SECRET_CHARS) bad('secret', `the signing key must have at least ${MIN_SECRET_CHARS} characters (try: openssl rand -hex 32)`)
  }
  let events = new Set<NotifyEventType>(DEFAULT_EVENTS)
  if (w.events !== undefined) {
    if (!Array.isArray(w.events) || w.events.length === 0) bad('events', `events must be a non-empty list of ${NOTIFY_EVENTS.join(', ')}`)
    else {
      events = new Set()
      w.events.forEach((e, j) => {
        if (typeof e === 'string' && (NOTIFY_EVENTS as readonly string[]).includes(e)) events.add(e as NotifyEventType)
        else fail(['events', j], `unknown event "${String(e)}"; one of ${NOTIFY_EVENTS.join(', ')}`)
      })
      if (events.size === 0) ok = false
    }
  }
  const timeoutS = w.timeout === undefined ? 5 : parseDuration(w.timeout)
  if (timeoutS === undefined || timeoutS < 0.1 || timeoutS > 60) bad('timeout', 'timeout must be a duration from 100ms to 60s, like 5s')
  const int = (key: string, dflt: number, min: number, max: number, what: string): number => {
    const v = w[key] ?? dflt
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) bad(key, `${key} must be a whole number from ${min} to ${max}: ${what}`)
    return v as number
  }
  const queueSize = int('queue', 1000, 1, 10_000, 'how many notifications may wait for this webhook')
  const retries = int('retries', 6, 0, 20, 'retries after the first attempt')
  if (w.statement !== undefined && typeof w.statement !== 'boolean') bad('statement', 'statement must be true or false: whether the statement text is in the payload')
  if (!ok || !name || !url) return undefined
  return {
    name,
    format: format as WebhookFormat,
    url,
    secret,
    events,
    timeoutMs: Math.round((timeoutS ?? 5) * 1000),
    queueSize,
    retries,
    statement: w.statement !== false,
  }
}
