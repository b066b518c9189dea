// The approval model: a request (who asked for what, under which rule) and the decisions
// approvers took on it. Shared by the service, the gateway API and the CLI (as JSON).
import type {Identity} from '../identity/types.js'
import type {ReviewScope, SubjectMatcher} from '../policy/types.js'

/**
 * pending  — waiting for approvers (expires `ttlSeconds` after creation);
 * approved — enough approvals; a statement approval is usable once until `validUntil`, a repeat
 *            approval as often as its statement runs until `validUntil`, a session grant covers
 *            the rule on the connection until `validUntil`;
 * rejected — one approver said no;
 * expired  — pending too long, or approved and not used (statement) / past its window (repeat, session);
 * used     — a one-time statement approval that was consumed by the statement it names.
 */
export const APPROVAL_STATES = ['pending', 'approved', 'rejected', 'expired', 'used'] as const
export type ApprovalState = (typeof APPROVAL_STATES)[number]

export type ApprovalId = string & {readonly __brand: 'ApprovalId'}

export const APPROVAL_ID_RE = /apr_[A-Za-z0-9_-]{12}/

export interface ApprovalDecisionRecord {
  decision: 'approve' | 'reject'
  approver: Identity
  /** The approver's justification (required, at most 1000 characters). */
  reason: string
  /** ISO 8601. */
  at: string
}

export interface ApprovalRecord {
  id: ApprovalId
  state: ApprovalState
  /** `statement`: one exact statement, once; `repeat`: one exact statement, any number of times until `validUntil`; `session`: every statement of the rule on the connection for a while. */
  scope: ReviewScope
  ruleId: string
  connection: string
  requester: Identity
  /** The statement text (statement scope), or the statement that triggered a session request, if any. */
  statement?: string
  /** SHA-256 (hex) of `statement`. */
  statementHash?: string
  /** The requester's own justification (time-boxed access requests). */
  requestReason?: string
  approvalsRequired: number
  /** Who may approve, as the rule said when the request was made. */
  approvers: SubjectMatcher
  ttlSeconds: number
  /** Session scope: how long access lasts once approved. */
  durationSeconds?: number
  createdAt: string
  /** When a pending request stops being decidable. */
  expiresAt: string
  /** When the request became approved / rejected / expired. */
  decidedAt?: string
  /** Approved: a statement approval must be used, and a session grant ends, by then. */
  validUntil?: string
  usedAt?: string
  /** The session whose statement made the request (requests made by an engine). */
  session?: string
  decisions: ApprovalDecisionRecord[]
}

/** One statement that ran under an approval: the one a one-time approval covered, each run of a repeat approval, or the first of a session under a grant. */
export interface ApprovalUse {
  session?: string
  statement: string
  /** ISO 8601. */
  at: string
}

/** What an engine asks for when policy says a statement needs review. */
export type ResolveResult = {status: 'approved'; approval: ApprovalRecord} | {status: 'pending'; approval: ApprovalRecord}

export type ApprovalEventKind =
  | 'requested' // a new request
  | 'approval' // one approver approved, more approvals are needed
  | 'approved' // enough approvals: the request is approved
  | 'rejected'
  | 'expired'
  | 'used' // a statement ran under an approval (one-time: consumed; repeat: each run; session: first in each session)

export type ApprovalEventHook = (kind: ApprovalEventKind, record: ApprovalRecord, decision?: ApprovalDecisionRecord, use?: ApprovalUse) => void

export interface ListFilter {
  state?: ApprovalState | 'all'
  /** Only requests made by this identity. */
  mine?: boolean
  limit?: number
}
