// The `audit:` section of the gateway config: signing key, checkpoint cadence, recording cap,
// retention, mode (hold or strict), durability (fsync or os), sinks that stream events to a JSONL file or a SIEM
// webhook, and the outside anchors (witness file, RFC 3161 timestamp authority). Errors carry the
// config file's line numbers.
import type {X509Certificate} from 'node:crypto'
import {isAbsolute, resolve, dirname} from 'node:path'
import {JsonlFileSink, WebhookSink, type AuditSink} from '../audit/index.js'
import {parseRetentionPeriod, RETENTION_KINDS, type RetentionPolicy} from '../audit/retention.js'
import {certificatesFromPem} from '../audit/tsa.js'
import type {AuditMode} from '../engines/gate.js'
import {errorMessage} from '../shared/errors.js'
import {type GatewayConfig, isObject, readSecret, type SecretRef} from '../shared/config.js'
import {configError, type PathSegment, type SourceProblem} from '../shared/yaml-source.js'

interface AuditSettings {
  signingKeyFile?: string
  checkpointEvery: {events: number; ms: number}
  recordingCap: number
  retentionDays?: number
  /** Per-kind payload retention and legal holds (`retention:`); `retentionDays` alone is recordings' retention. */
  retention?: RetentionPolicy & {intervalMs?: number}
  /** When a statement's record must be durable: before its response leaves (hold) or before it runs (strict). */
  mode: AuditMode
  durability: 'fsync' | 'os'
  sinks: AuditSink[]
  /** Witness file for signed heads (absolute); the gateway defaults it to <dataDir>/audit-witness.jsonl. */
  witness?: string
  timestamp?: {url: string; timeoutMs: number; trusted?: X509Certificate[]}
}

const SIZE_RE = /^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i
const UNITS: Record<string, number> = {b: 1, kb: 1000, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3}
const DURATION_RE = /^(\d+)\s*(ms|s|m|h)$/

export function parseAuditSettings(cfg: GatewayConfig): AuditSettings {
  const out: AuditSettings = {checkpointEvery: {events: 10_000, ms: 60_000}, recordingCap: 10 * 1024 * 1024, mode: 'hold', durability: 'fsync', sinks: []}
  const raw = cfg.audit
  if (raw === undefined || raw === null) return out
  const problems: SourceProblem[] = []
  const fail = (path: PathSegment[], msg: string) =>
    problems.push(cfg.source ? cfg.source.problem(['audit', ...path], msg) : {file: cfg.file ?? '<config>', line: 1, column: 1, message: msg})
  if (!isObject(raw)) {
    fail([], 'audit must be a mapping')
    throw configError(problems)
  }
  const baseDir = cfg.file && !cfg.file.startsWith('<') ? dirname(resolve(cfg.file)) : process.cwd()
  const known = new Set(['signingKeyFile', 'checkpoint', 'recordingCap', 'retentionDays', 'retention', 'mode', 'durability', 'sinks', 'witness', 'timestamp'])
  for (const k of Object.keys(raw)) if (!known.has(k)) fail([k], `unknown key "${k}" in audit`)
  if (raw.signingKeyFile !== undefined) {
    if (typeof raw.signingKeyFile !== 'string') fail(['signingKeyFile'], 'signingKeyFile must be a path')
    else out.signingKeyFile = isAbsolute(raw.signingKeyFile) ? raw.signingKeyFile : resolve(baseDir, raw.signingKeyFile)
  }
  if (raw.checkpoint !== undefined) {
    const c = raw.checkpoint
    if (!isObject(c)) fail(['checkpoint'], 'checkpoint must be {events: N, interval: 60s}')
    else {
      if (c.events !== undefined) {
        if (!Number.isInteger(c.events) || (c.events as number) < 1) fail(['checkpoint', 'events'], 'checkpoint.events must be a positive integer')
        else out.checkpointEvery.events = c.events as number
      }
      if (c.interval !== undefined) {
        const m = typeof c.interval === 'string' ? DURATION_RE.exec(c.interval) : null
        if (!m) fail(['checkpoint', 'interval'], 'checkpoint.interval must be a duration like 30s, 5m or 1h')
        else out.checkpointEvery.ms = Number(m[1]) * {ms: 1, s: 1000, m: 60_000, h: 3_600_000}[m[2] as 'ms' | 's' | 'm' | 'h']
      }
    }
  }
  if (raw.mode !== undefined) {
    if (raw.mode !== 'hold' && raw.mode !== 'strict') fail(['mode'], 'mode must be hold (no response without a durable record) or strict (no execution without a durable record)')
    else out.mode = raw.mode
  }
  if (raw.durability !== undefined) {
    if (raw.durability !== 'fsync' && raw.durability !== 'os') fail(['durability'], 'durability must be fsync (survives power loss) or os (survives a gateway crash)')
    else out.durability = raw.durability
  }
  if (raw.recordingCap !== undefined) {
    const m = SIZE_RE.exec(String(raw.recordingCap))
    if (!m) fail(['recordingCap'], 'recordingCap must be a size like 10MiB or a number of bytes')
    else out.recordingCap = Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]
  }
  if (raw.retentionDays !== undefined) {
    if (!Number.isInteger(raw.retentionDays) || (raw.retentionDays as number) < 1) fail(['retentionDays'], 'retentionDays must be a positive integer')
    else out.retentionDays = raw.retentionDays as number
  }
  if (raw.retention !== undefined) {
    const r = raw.retention
    if (!isObject(r)) fail(['retention'], 'retention must be a mapping: {payloads: {statement: 90d, default: 365d}, holds: [{connection: NAME}, {user: SUBJECT}]}')
    else {
      const policy: RetentionPolicy & {intervalMs?: number} = {payloads: {}, holds: []}
      for (const k of Object.keys(r)) if (!['payloads', 'holds', 'interval'].includes(k)) fail(['retention', k], `unknown key "${k}" in audit.retention (payloads, holds, interval)`)
      if (r.payloads !== undefined) {
        if (!isObject(r.payloads)) fail(['retention', 'payloads'], 'retention.payloads must map an event kind (or default, session.recording) to a period like 90d')
        else
          for (const [kind, v] of Object.entries(r.payloads)) {
            const days = parseRetentionPeriod(v)
            if (!RETENTION_KINDS.includes(kind)) fail(['retention', 'payloads', kind], `retention.payloads.${kind}: no such payload kind (${RETENTION_KINDS.join(', ')})`)
            else if (days === undefined) fail(['retention', 'payloads', kind], `retention.payloads.${kind} must be a period like 90d, 12w, 1y or 36h`)
            else policy.payloads[kind] = days
          }
      }
      if (r.holds !== undefined) {
        if (!Array.isArray(r.holds)) fail(['retention', 'holds'], 'retention.holds must be a list of {connection: NAME} or {user: SUBJECT}')
        else
          r.holds.forEach((h, i) => {
            if (!isObject(h) || Object.keys(h).length !== 1 || !(typeof h.connection === 'string' || typeof h.user === 'string')) fail(['retention', 'holds', i], 'each hold is {connection: NAME} or {user: SUBJECT}')
            else policy.holds!.push(typeof h.connection === 'string' ? {connection: h.connection} : {user: h.user as string})
          })
      }
      if (r.interval !== undefined) {
        const m = typeof r.interval === 'string' ? DURATION_RE.exec(r.interval) : null
        if (!m) fail(['retention', 'interval'], 'retention.interval must be a duration like 10m or 1h')
        else policy.intervalMs = Number(m[1]) * {ms: 1, s: 1000, m: 60_000, h: 3_600_000}[m[2] as 'ms' | 's' | 'm' | 'h']
      }
      out.retention = policy
    }
  }
  // retentionDays (before per-kind retention) is the recordings' retention.
  if (out.retentionDays !== undefined) {
    out.retention ??= {payloads: {}, holds: []}
    out.retention.payloads['session.recording'] ??= out.retentionDays
  }
  if (raw.sinks !== undefined) {
    if (!Array.isArray(raw.sinks)) fail(['sinks'], 'sinks must be a list')
    else
      raw.sinks.forEach((s, i) => {
        if (!isObject(s)) return fail(['sinks', i], 'each sink must be a mapping')
        if (s.type === 'file' && typeof s.path === 'string') {
          out.sinks.push(new JsonlFileSink(isAbsolute(s.path) ? s.path : resolve(baseDir, s.path), typeof s.name === 'string' ? s.name : undefined))
        } else if (s.type === 'webhook' && typeof s.url === 'string' && /^https?:\/\//.test(s.url)) {
          const headers: Record<string, string> = {}
          if (s.headers !== undefined) {
            if (!isObject(s.headers)) return fail(['sinks', i, 'headers'], 'headers must be a mapping of name to {env: VAR} or {file: PATH}')
            for (const [name, ref] of Object.entries(s.headers)) {
              if (!isObject(ref) || !(typeof ref.env === 'string' || typeof ref.file === 'string')) {
                return fail(['sinks', i, 'headers', name], `header ${name} must be a reference, {env: VAR} or {file: PATH}; secrets are never inline`)
              }
              headers[name] = readSecret(ref as SecretRef)
            }
          }
          out.sinks.push(new WebhookSink({url: s.url, headers}))
        } else {
          fail(['sinks', i], 'a sink is {type: file, path: PATH} or {type: webhook, url: https://..., headers?: {...}}')
        }
      })
  }
  if (raw.witness !== undefined) {
    if (typeof raw.witness !== 'string' || raw.witness === '') fail(['witness'], 'witness must be the path of the witness file (JSONL of signed tree heads), ideally on another volume')
    else out.witness = isAbsolute(raw.witness) ? raw.witness : resolve(baseDir, raw.witness)
  }
  if (raw.timestamp !== undefined) {
    const t = raw.timestamp
    if (!isObject(t) || typeof t.url !== 'string' || !/^https?:\/\//.test(t.url)) {
      fail(['timestamp'], 'timestamp must be {url: http(s)://TSA, ca?: {file: PATH}, timeout?: 10s}')
    } else {
      const ts: NonNullable<AuditSettings['timestamp']> = {url: t.url, timeoutMs: 10_000}
      for (const k of Object.keys(t)) if (!['url', 'ca', 'timeout'].includes(k)) fail(['timestamp', k], `unknown key "${k}" in timestamp`)
      if (t.timeout !== undefined) {
        const m = typeof t.timeout === 'string' ? DURATION_RE.exec(t.timeout) : null
        if (!m) fail(['timestamp', 'timeout'], 'timestamp.timeout must be a duration like 10s')
        else ts.timeoutMs = Number(m[1]) * {ms: 1, s: 1000, m: 60_000, h: 3_600_000}[m[2] as 'ms' | 's' | 'm' | 'h']
      }
      if (t.ca !== undefined) {
        if (!isObject(t.ca) || !(typeof t.ca.env === 'string' || typeof t.ca.file === 'string')) fail(['timestamp', 'ca'], 'timestamp.ca must be {file: PATH} or {env: VAR} with the TSA CA certificate(s) in PEM')
        else {
          const ref = typeof t.ca.file === 'string' ? {file: isAbsolute(t.ca.file) ? t.ca.file : resolve(baseDir, t.ca.file)} : {env: t.ca.env as string}
          try {
            ts.trusted = certificatesFromPem(readSecret(ref))
          } catch (err) {
            fail(['timestamp', 'ca'], `timestamp.ca: ${errorMessage(err)}`)
          }
        }
      }
      out.timestamp = ts
    }
  }
  if (problems.length > 0) throw configError(problems)
  return out
}
