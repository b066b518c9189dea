// The auditor-facing reports of an evidence package, derived only from the signed events: the
// chronological session log, the approval audit and the masking report, each as JSONL and CSV.
// The verifier re-derives them from the verified events and compares bytes, so a report edited
// after export is caught even if its manifest entry was updated too. Version 2 packages add
// columns (the approval and policy version behind each decision, approval scope and validity,
// approval.used rows); a version 1 package is re-derived as version 1 wrote it.
import {csvLine, type Cell} from './csv.js'
import type {Actor, StoredEvent} from './events.js'

type Data = Record<string, unknown>

const SESSION_LOG_COLUMNS_V1 = [
  'seq', 'time', 'kind', 'session', 'caller', 'caller_kind', 'groups', 'target', 'agent', 'client_address',
  'command', 'decision', 'rule_id', 'rows', 'bytes', 'duration_ms', 'error', 'detail',
] as const
const SESSION_LOG_COLUMNS = [...SESSION_LOG_COLUMNS_V1, 'approval_id', 'policy_version'] as const
const APPROVAL_COLUMNS_V1 = [
  'seq', 'time', 'approval_id', 'event', 'requester', 'approver', 'target', 'session', 'statement', 'rule_id',
  'justification', 'requested_at', 'decided_at', 'expires_at',
] as const
const APPROVAL_COLUMNS = [...APPROVAL_COLUMNS_V1, 'scope', 'valid_from', 'valid_until'] as const
const MASKING_COLUMNS = ['seq', 'time', 'session', 'caller', 'target', 'statement_id', 'rule_id', 'column', 'entity', 'count'] as const

type Row<C extends readonly string[]> = Record<C[number], Cell>

function who(a: unknown): string | undefined {
  const actor = a as Actor | undefined
  if (!actor) return undefined
  return actor.email && actor.email !== actor.name ? `${actor.name} <${actor.email}>` : actor.name
}

function str(v: unknown): string | undefined {
  return v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v)
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined
}

class Report<C extends readonly string[]> {
  /** Text not yet taken (`ReportBuilder.drain`): a report of a million events is never held whole. */
  jsonl = ''
  csv: string
  rows = 0
  /** `columns`: those written (a version-1 package has fewer than `C`). */
  constructor(readonly columns: readonly C[number][]) {
    this.csv = csvLine([...columns])
  }

  add(row: Row<C>): void {
    const obj: Record<string, Cell> = {}
    for (const c of this.columns) obj[c] = row[c as C[number]] ?? null
    this.jsonl += JSON.stringify(obj) + '\n'
    this.csv += csvLine(this.columns.map((c) => row[c as C[number]]))
    this.rows++
  }
}

export class ReportBuilder {
  readonly sessionLog: Report<typeof SESSION_LOG_COLUMNS>
  readonly approvals: Report<typeof APPROVAL_COLUMNS>
  readonly masking = new Report<typeof MASKING_COLUMNS>(MASKING_COLUMNS)
  /** The package format the reports are written for (1: the columns before approval and policy versions). */
  constructor(readonly version: 1 | 2 | 3 = 3) {
    this.sessionLog = new Report<typeof SESSION_LOG_COLUMNS>(version === 1 ? SESSION_LOG_COLUMNS_V1 : SESSION_LOG_COLUMNS)
    this.approvals = new Report<typeof APPROVAL_COLUMNS>(version === 1 ? APPROVAL_COLUMNS_V1 : APPROVAL_COLUMNS)
  }

  readonly sessions = new Set<string>()
  readonly counts: Record<string, number> = {}
  readonly decisions: Record<string, number> = {}
  /** Legal holds placed and released in the package's events (audit.hold), for the summary. */
  readonly holds: {seq: number; time: string; action: string; scope: string; target: string; reason: string; by?: string}[] = []

  add(e: StoredEvent): void {
    const d = e.data as Data
    // An aggregated auth.failure event stands for `count` failures of one source (see events.ts).
    const n = e.kind === 'auth.failure' && Number.isSafeInteger(d.count) && (d.count as number) > 0 ? (d.count as number) : 1
    this.counts[e.kind] = (this.counts[e.kind] ?? 0) + n
    if (e.session) this.sessions.add(e.session)
    if (e.kind === 'audit.hold') this.holds.push({seq: e.seq, time: e.time, action: String(d.action), scope: String(d.scope), target: String(d.target), reason: String(d.reason), by: who(e.actor)})
    switch (e.kind) {
      case 'approval.requested':
      case 'approval.decided':
      case 'approval.used': {
        // A version-1 package's reports had no approval.used rows (no such events were written then).
        if (e.kind === 'approval.used' && this.version === 1) return
        const decided = e.kind === 'approval.decided'
        const used = e.kind === 'approval.used'
        this.approvals.add({
          seq: e.seq,
          time: e.time,
          approval_id: str(d.approval_id),
          event: decided ? str(d.outcome) : used ? 'used' : 'requested',
          requester: decided ? who(d.requester) : who(e.actor),
          approver: decided ? who(e.actor) : undefined,
          target: e.connection,
          session: e.session,
          statement: str(d.statement),
          rule_id: str(d.rule_id),
          justification: str(d.justification),
          requested_at: decided ? str(d.requested_at) : used ? undefined : e.time,
          decided_at: str(d.decided_at),
          expires_at: str(d.expires_at),
          scope: str(d.scope),
          valid_from: str(d.valid_from),
          valid_until: str(d.valid_until),
        })
        return
      }
      case 'masking': {
        for (const f of (d.fields as Data[] | undefined) ?? []) {
          this.masking.add({
            seq: e.seq,
            time: e.time,
            session: e.session,
            caller: who(e.actor),
            target: e.connection,
            statement_id: str(d.statement_id),
            rule_id: str(d.rule_id),
            column: str(f.column),
            entity: str(f.entity),
            count: num(f.count),
          })
        }
        return
      }
      default: {
        if (e.kind === 'statement') {
          const decision = str(d.decision) ?? 'unknown'
          this.decisions[decision] = (this.decisions[decision] ?? 0) + 1
        }
        this.sessionLog.add({
          seq: e.seq,
          time: e.time,
          kind: e.kind,
          session: e.session,
          caller: who(e.actor),
          caller_kind: e.actor?.kind,
          groups: e.actor?.groups?.join(' '),
          target: e.connection,
          agent: str(d.agent),
          client_address: str(d.client_address),
          command: command(e),
          decision: str(d.decision) ?? (e.kind === 'auth.failure' ? 'deny' : undefined),
          rule_id: str(d.rule_id),
          rows: num(d.rows),
          bytes: num(d.bytes) ?? (e.kind === 'session.end' && num(d.bytes_up) !== undefined && num(d.bytes_down) !== undefined ? num(d.bytes_up)! + num(d.bytes_down)! : undefined),
          duration_ms: num(d.duration_ms),
          error: str(d.error),
          detail: detail(e),
          approval_id: str(d.approval_id),
          policy_version: str(d.policy_version),
        })
      }
    }
  }

  /** Characters of report text accumulated since the last drain. */
  get pending(): number {
    let n = 0
    for (const r of [this.sessionLog, this.approvals, this.masking]) n += r.jsonl.length + r.csv.length
    return n
  }

  /**
   * Hands each report file's text accumulated so far to `sink` (in file order; a file may get
   * nothing) and forgets it: exporting and verifying stream reports of any size this way, and the
   * concatenation of what a file was handed is its content.
   */
  drain(sink: (path: string, text: string) => void): void {
    for (const f of this.files()) if (f.content) sink(f.path, f.content)
    for (const r of [this.sessionLog, this.approvals, this.masking]) {
      r.jsonl = ''
      r.csv = ''
    }
  }

  /** Each report file with the text accumulated since the last drain (all of it when never drained). */
  files(): {path: string; content: string}[] {
    return [
      {path: 'reports/session-log.jsonl', content: this.sessionLog.jsonl},
      {path: 'reports/session-log.csv', content: this.sessionLog.csv},
      {path: 'reports/approvals.jsonl', content: this.approvals.jsonl},
      {path: 'reports/approvals.csv', content: this.approvals.csv},
      {path: 'reports/masking.jsonl', content: this.masking.jsonl},
      {path: 'reports/masking.csv', content: this.masking.csv},
    ]
  }
}

function command(e: StoredEvent): string | undefined {
  const d = e.data as Data
  switch (e.kind) {
    case 'statement':
      return str(d.text)
    case 'statement.result':
      return `(result of ${str(d.statement_id) ?? '?'})`
    case 'session.start':
      return '(session start)'
    case 'session.end':
      return '(session end)'
    case 'auth.failure':
      return `(authentication: ${str(d.method) ?? '?'})`
    case 'policy.reload':
      return `(policy reload: ${str(d.source) ?? '?'})`
    case 'audit.store_accepted':
      return '(audit store accepted: --accept-store-rollback)'
    case 'audit.access':
      return `(evidence ${str(d.action) ?? '?'})`
    case 'admin.change':
      return `${str(d.action) ?? '?'} ${str(d.target_type) ?? ''} ${str(d.target) ?? ''}`.trim()
    default:
      return undefined
  }
}

function detail(e: StoredEvent): string | undefined {
  const d = e.data as Data
  switch (e.kind) {
    case 'session.end':
      if (d.unrecorded === true) return `reason=${str(d.reason) ?? '?'} last_event_at=${str(d.last_event_at) ?? '?'}` + (d.recording ? ` recording_sha256=${str((d.recording as Data).sha256)}` : '')
      return `reason=${str(d.reason) ?? '?'} up=${num(d.bytes_up) ?? 0} down=${num(d.bytes_down) ?? 0}` +
        (d.recording ? ` recording_sha256=${str((d.recording as Data).sha256)}` : '')
    case 'audit.store_accepted':
      return `problem=${str(d.problem) ?? '?'} published_tree_size=${num(d.published_tree_size) ?? '?'} store_tree_size=${num(d.store_tree_size) ?? '?'}`
    case 'audit.access':
      return Object.keys(d).sort().filter((k) => k !== 'action' && d[k] !== undefined && d[k] !== null).map((k) => `${k}=${str(d[k])}`).join(' ') || undefined
    case 'auth.failure':
      return str(d.reason)
    case 'policy.reload':
      return `ok=${String(d.ok)} rules=${num(d.rules) ?? '?'} sha256=${str(d.sha256) ?? '?'}${d.error ? ` error=${str(d.error)}` : ''}` +
        (d.new_version !== undefined ? ` old_version=${str(d.old_version) ?? '-'} new_version=${str(d.new_version)}` : '')
    case 'admin.change':
      return str(d.detail)
    case 'statement':
      return str(d.reason)
    default:
      return undefined
  }
}
