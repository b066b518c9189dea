// Where approvals and grants are kept: an asynchronous interface with one implementation per store
// (store-sqlite.ts on the data dir's file, store-postgres.ts on the PostgreSQL store that several
// replicas share). Every state change that two replicas could race for (a decision, the spend of a
// one-time approval, expiry) is one atomic step here, so the service above never reads, decides in
// memory and writes back.
import type {Identity} from '../identity/types.js'
import type {ReviewScope, SubjectMatcher} from '../policy/types.js'
import type {ApprovalDecisionRecord, ApprovalId, ApprovalRecord, ApprovalState} from './types.js'

/** Requests are looked up by who asked, where, under which rule. */
export interface Owner {
  kind: string
  subject: string
  connection: string
  ruleId: string
}

/** A new pending request: the record's fields, with times in milliseconds from the service's clock. */
export type NewRequest = Pick<
  ApprovalRecord,
  'id' | 'scope' | 'requester' | 'statement' | 'statementHash' | 'requestReason' | 'approvalsRequired' | 'approvers' | 'ttlSeconds' | 'durationSeconds' | 'session'
> & {owner: Owner; createdAt: number; expiresAt: number}

export interface NewUse {
  session?: string
  clientRequest?: string
  statementHash: string
  at: number
}

/** One use of an approval by a statement, as `usesOf` returns it. */
export interface ApprovalUseView {
  approvalId: string
  scope: ReviewScope
  ruleId: string
  session?: string
  usedAt: string
}

export interface ApprovalStore {
  /** Marks every request whose time ran out `expired`, atomically; returns exactly the ones this call changed. */
  expireDue(now: number): Promise<ApprovalRecord[]>
  get(id: string): Promise<ApprovalRecord | undefined>
  /** Newest first; at most `limit`. */
  list(q: {state?: ApprovalState; requester?: Pick<Identity, 'kind' | 'subject'>; limit: number}): Promise<ApprovalRecord[]>
  /** The approved session grant of the owner that lasts longest past `now`. */
  findGrant(owner: Owner, now: number): Promise<ApprovalRecord | undefined>
  /**
   * The owner's oldest pending request in the scope of `req` (for the same statement hash, unless
   * session scope), else `req` inserted. Atomic, so two replicas asking at once share one request.
   */
  openRequest(req: NewRequest): Promise<{approval: ApprovalRecord; created: boolean}>
  /**
   * Spends the oldest approved, unexpired approval of the owner for exactly `statement`: a one-time
   * approval becomes `used` (once, whichever replica asks first; the others get undefined), a repeat
   * approval keeps its first run's time. The use is kept in the same transaction, so a spent
   * approval always has its use.
   */
  spend(owner: Owner, scope: 'statement' | 'repeat', statement: string, use: NewUse): Promise<ApprovalRecord | undefined>
  /** Keeps one use of a grant; true when it is the grant's first use in that session. */
  recordUse(id: string, use: NewUse): Promise<boolean>
  /** Adds the requester's reason and duration to a pending request that has no reason yet. */
  explain(id: string, reason: string, durationSeconds: number): Promise<void>
  /**
   * Under a lock on the request: `check` sees its current record and throws to refuse; otherwise the
   * decision is stored and the request moves on (nextState). Returns the record after the decision.
   */
  decide(id: string, d: ApprovalDecisionRecord, now: number, check: (rec: ApprovalRecord) => void): Promise<ApprovalRecord>
  /** The approvals a requester's statements used in one client run. */
  usesOf(viewer: Pick<Identity, 'kind' | 'subject'>, clientRequest: string): Promise<ApprovalUseView[]>
}

/** Approvals counted so far. */
export function approvalsOf(rec: Pick<ApprovalRecord, 'decisions'>): number {
  return rec.decisions.filter((d) => d.decision === 'approve').length
}

/**
 * What a decision does to a pending request: a rejection ends it; the approval that reaches the
 * required number approves it for its window (a grant's duration, else the rule's ttl); an earlier
 * approval leaves it pending (undefined).
 */
export function nextState(rec: ApprovalRecord, decision: 'approve' | 'reject', now: number): {state: 'approved' | 'rejected'; decidedAt: number; validUntil: number | null} | undefined {
  if (decision === 'reject') return {state: 'rejected', decidedAt: now, validUntil: null}
  if (approvalsOf(rec) + 1 < rec.approvalsRequired) return undefined
  const validFor = rec.scope === 'session' ? (rec.durationSeconds ?? rec.ttlSeconds) : rec.ttlSeconds
  return {state: 'approved', decidedAt: now, validUntil: now + validFor * 1000}
}

type Row = Record<string, unknown>

/** A request row (the same columns in both stores) and its decision rows, as a record. */
export function recordFromRows(r: Row, decisionRows: Row[]): ApprovalRecord {
  // PostgreSQL returns bigint as a string; milliseconds stay far below 2^53.
  const ms = (v: unknown) => (v === null || v === undefined ? undefined : Number(v))
  const iso = (v: unknown) => (v === null || v === undefined ? undefined : new Date(Number(v)).toISOString())
  const rec: ApprovalRecord = {
    id: r.id as ApprovalId,
    state: r.state as ApprovalState,
    scope: r.scope as ReviewScope,
    ruleId: r.rule_id as string,
    connection: r.connection as string,
    requester: JSON.parse(r.requester_json as string) as Identity,
    approvalsRequired: ms(r.approvals_required)!,
    approvers: JSON.parse(r.approvers_json as string) as SubjectMatcher,
    ttlSeconds: ms(r.ttl_seconds)!,
    createdAt: iso(r.created_at)!,
    expiresAt: iso(r.expires_at)!,
    decisions: decisionRows.map(
      (d): ApprovalDecisionRecord => ({
        decision: d.decision as 'approve' | 'reject',
        approver: JSON.parse(d.approver_json as string) as Identity,
        reason: d.reason as string,
        at: iso(d.decided_at)!,
      }),
    ),
  }
  if (r.statement !== null) rec.statement = r.statement as string
  if (r.statement_hash !== null) rec.statementHash = r.statement_hash as string
  if (r.request_reason !== null) rec.requestReason = r.request_reason as string
  if (r.duration_seconds !== null) rec.durationSeconds = ms(r.duration_seconds)
  if (r.decided_at !== null) rec.decidedAt = iso(r.decided_at)
  if (r.valid_until !== null) rec.validUntil = iso(r.valid_until)
  if (r.used_at !== null) rec.usedAt = iso(r.used_at)
  if (r.session_id !== null && r.session_id !== undefined) rec.session = r.session_id as string
  return rec
}

/** The request columns in insert order, shared by both stores. */
export const REQUEST_COLUMNS =
  'id, state, scope, rule_id, connection, requester_kind, requester_subject, requester_json, statement, statement_hash, request_reason, approvals_required, approvers_json, ttl_seconds, duration_seconds, created_at, expires_at, session_id'

export function requestValues(q: NewRequest): unknown[] {
  return [
    q.id,
    'pending',
    q.scope,
    q.owner.ruleId,
    q.owner.connection,
    q.owner.kind,
    q.owner.subject,
    JSON.stringify(q.requester),
    q.statement ?? null,
    q.statementHash ?? null,
    q.requestReason ?? null,
    q.approvalsRequired,
    JSON.stringify(q.approvers),
    q.ttlSeconds,
    q.durationSeconds ?? null,
    q.createdAt,
    q.expiresAt,
    q.session ?? null,
  ]
}

/** A use row joined with its request, as `usesOf` returns it (both stores). */
export function useView(r: Row): ApprovalUseView {
  return {
    approvalId: r.approval_id as string,
    scope: r.scope as ReviewScope,
    ruleId: r.rule_id as string,
    session: (r.session_id as string | null) ?? undefined,
    usedAt: new Date(Number(r.used_at)).toISOString(),
  }
}
