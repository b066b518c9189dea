// Audit event kinds and one constructor per kind (Teleport `events.go` style). An event is what
// happened; the log adds `v`, `seq` and `prev_hash` when it appends it. Constructors take only
// fields that are safe to keep: statement text is scrubbed of inline credentials, results are
// counted (rows, bytes) never copied, masking is reported as columns/entity types and counts.
import type {Identity} from '../identity/types.js'
import {redact} from '../shared/log.js'
import type {Json} from './canonical.js'

type EventKind =
  | 'session.start'
  | 'session.end'
  | 'statement'
  | 'statement.result'
  | 'approval.requested'
  | 'approval.decided'
  | 'approval.used'
  | 'masking'
  | 'policy.reload'
  | 'admin.change'
  | 'auth.failure'
  | 'audit.store_accepted'
  | 'audit.access'
  | 'audit.retention'
  | 'audit.erasure'
  | 'audit.hold'

/** Who acted, as recorded: the verified identity without its credential. */
export type Actor = {
  kind: string
  subject: string
  name: string
  email?: string
  groups: string[]
  issuer?: string
  claims?: Record<string, string>
}

export interface AuditEvent {
  kind: EventKind
  /** When it happened (ISO 8601, UTC, ms). */
  time: string
  session?: string
  actor?: Actor
  connection?: string
  data: {[key: string]: Json | undefined}
}

/**
 * An event as stored: the envelope that is hashed, chained and made a Merkle leaf. Version 1 holds
 * its payload inline; version 2 holds `payload_hash` instead (see splitPayload), so the payload can
 * expire or be erased later without changing any hash.
 */
export interface StoredEvent extends AuditEvent {
  v: 1 | 2
  seq: number
  prev_hash: string
  /** v2, when the event had a payload: SHA-256 (hex) of the payload's canonical JSON. */
  payload_hash?: string
}

/**
 * The fields of each kind that are its payload: what a person typed or said (statement text,
 * justifications, error messages that may quote data). They leave the hashed form of a v2 event
 * and are kept apart, committed to by `payload_hash`.
 */
export const PAYLOAD_FIELDS: Readonly<Record<string, readonly string[]>> = {
  statement: ['text'],
  'statement.result': ['error'],
  'approval.requested': ['statement', 'justification'],
  'approval.decided': ['justification'],
  'approval.used': ['statement'],
}

/** The payload kept apart from a v2 event: a random nonce (so a short text cannot be guessed from its hash) and the fields. */
export interface Payload {
  nonce: string
  fields: {[key: string]: Json}
}

export interface AppendedEvent {
  seq: number
  /** SHA-256 of the canonical JSON, hex: the next event's prev_hash. */
  hash: string
  /** The canonical JSON bytes that were stored. */
  body: string
}

type Decision = 'allow' | 'deny' | 'block' | 'review' | 'mask' | 'error'
type ApprovalOutcome = 'approved' | 'rejected' | 'expired'

export interface RecordingSummary {
  sha256: string
  bytes: number
  chunks: number
  capBytes: number
  truncated: boolean
  droppedBytes: number
  /** Set when the store refused the recording (e.g. a full disk): why, and nothing was stored after it. */
  failed?: string
}

const MAX_STATEMENT_TEXT = 64 * 1024

function actorOf(identity: Identity): Actor {
  return {
    kind: identity.kind,
    subject: identity.subject,
    name: identity.name,
    email: identity.email,
    groups: [...identity.groups],
    issuer: identity.issuer,
    claims: identity.claims && Object.keys(identity.claims).length > 0 ? {...identity.claims} : undefined,
  }
}

const CREDENTIAL_LITERALS: RegExp[] = [
  // PostgreSQL: CREATE/ALTER ROLE ... [ENCRYPTED] PASSWORD 'secret'
  /(\bPASSWORD\s+)(?:'(?:[^']|'')*'|\$([A-Za-z_]*)\$[\s\S]*?\$\2\$)/gi,
  // MySQL: IDENTIFIED [WITH plugin] BY 'secret'
  /(\bIDENTIFIED\b(?:\s+WITH\s+\S+)?\s+BY\s+)(?:'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")/gi,
  // dblink / connection strings: password=secret
  /(\bpassword\s*=\s*)(?:'[^']*'|[^\s;']+)/gi,
]

/** Statement text as the target saw it, minus inline credentials and token-like strings. */
export function scrubStatement(text: string): {text: string; truncated: boolean} {
  let out = text
  for (const re of CREDENTIAL_LITERALS) out = out.replace(re, (_m, head: string) => `${head}'[redacted]'`)
  out = redact(out)
  const truncated = out.length > MAX_STATEMENT_TEXT
  return {text: truncated ? out.slice(0, MAX_STATEMENT_TEXT) : out, truncated}
}

/** Counts keyed by reason, with the reasons redacted (two that redact alike are added up). */
function redactedCounts(counts: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [reason, n] of Object.entries(counts)) {
    const key = redact(reason)
    out[key] = (out[key] ?? 0) + n
  }
  return out
}

/** A recording summary as a session.end event stores it. */
function recordingData(r: RecordingSummary | undefined): Json | undefined {
  return r ? {sha256: r.sha256, bytes: r.bytes, chunks: r.chunks, cap_bytes: r.capBytes, truncated: r.truncated, dropped_bytes: r.droppedBytes, failed: r.failed} : undefined
}

function now(at?: Date | string): string {
  if (typeof at === 'string') return new Date(at).toISOString()
  return (at ?? new Date()).toISOString()
}

interface Common {
  at?: Date | string
}

export const events = {
  /**
   * Payloads expired by the retention policy (one batch): the cutoff per kind, how many and
   * which seqs; `ref` ties the removal records in the store to this event.
   */
  retention(o: Common & {ref: string; cutoffs: Record<string, string>; removed: number; firstSeq?: number; lastSeq?: number; recordings?: number; held?: number}): AuditEvent {
    return {
      kind: 'audit.retention',
      time: now(o.at),
      data: {ref: o.ref, cutoffs: o.cutoffs, removed: o.removed, first_seq: o.firstSeq, last_seq: o.lastSeq, recordings: o.recordings, held: o.held},
    }
  },

  /** Payloads erased on request (`hoop audit erase`): whose, why, by whom, how many. */
  erasure(o: Common & {ref: string; operator?: string; identity?: Identity; scope: 'session' | 'user'; target: string; reason: string; removed: number; firstSeq?: number; lastSeq?: number; recordings?: number; held?: number}): AuditEvent {
    return {
      kind: 'audit.erasure',
      time: now(o.at),
      actor: o.identity ? actorOf(o.identity) : o.operator ? {kind: 'operator', subject: o.operator, name: o.operator, groups: []} : undefined,
      data: {ref: o.ref, scope: o.scope, target: o.target, reason: o.reason, removed: o.removed, first_seq: o.firstSeq, last_seq: o.lastSeq, recordings: o.recordings, held: o.held},
    }
  },

  /** A legal hold placed or released (`hoop audit hold`): payloads it covers do not expire. */
  hold(o: Common & {operator?: string; identity?: Identity; action: 'place' | 'release'; scope: 'connection' | 'user'; target: string; reason: string}): AuditEvent {
    return {
      kind: 'audit.hold',
      time: now(o.at),
      actor: o.identity ? actorOf(o.identity) : o.operator ? {kind: 'operator', subject: o.operator, name: o.operator, groups: []} : undefined,
      connection: o.scope === 'connection' ? o.target : undefined,
      data: {action: o.action, scope: o.scope, target: o.target, reason: o.reason},
    }
  },

  /** `ruleId` and `policyVersion`: the access decision that let the session in. */
  sessionStart(o: Common & {session: string; identity: Identity; connection: string; connectionType?: string; agent: string; clientAddress?: string; ruleId?: string; policyVersion?: string}): AuditEvent {
    return {
      kind: 'session.start',
      time: now(o.at),
      session: o.session,
      actor: actorOf(o.identity),
      connection: o.connection,
      data: {agent: o.agent, client_address: o.clientAddress, connection_type: o.connectionType, rule_id: o.ruleId, policy_version: o.policyVersion},
    }
  },

  sessionEnd(o: Common & {
    session: string
    identity: Identity
    connection: string
    agent: string
    clientAddress?: string
    startedAt: Date | string
    bytesUp: number
    bytesDown: number
    reason: string
    statements?: number
    recording?: RecordingSummary
  }): AuditEvent {
    const end = now(o.at)
    return {
      kind: 'session.end',
      time: end,
      session: o.session,
      actor: actorOf(o.identity),
      connection: o.connection,
      data: {
        agent: o.agent,
        client_address: o.clientAddress,
        started_at: now(o.startedAt),
        duration_ms: Math.max(0, Date.parse(end) - Date.parse(now(o.startedAt))),
        bytes_up: o.bytesUp,
        bytes_down: o.bytesDown,
        reason: o.reason,
        statements: o.statements,
        recording: recordingData(o.recording),
      },
    }
  },

  /**
   * The end of a session the gateway did not see end (it stopped while the session ran), written
   * when it starts again: the same kind as a session.end, with `unrecorded: true`, no byte counts
   * (they were never written), and `last_event_at`, the time of the session's last recorded event.
   */
  sessionEndUnrecorded(o: Common & {
    session: string
    actor?: Actor
    connection?: string
    agent?: string
    clientAddress?: string
    startedAt: string
    lastEventAt: string
    reason: string
    recording?: RecordingSummary
  }): AuditEvent {
    return {
      kind: 'session.end',
      time: now(o.at),
      session: o.session,
      actor: o.actor,
      connection: o.connection,
      data: {
        agent: o.agent,
        client_address: o.clientAddress,
        started_at: now(o.startedAt),
        last_event_at: now(o.lastEventAt),
        reason: o.reason,
        unrecorded: true,
        recording: recordingData(o.recording),
      },
    }
  },

  /** Written (and durable) before the statement is forwarded to the target. */
  statement(o: Common & {
    session: string
    identity: Identity
    connection: string
    statementId: string
    text: string
    decision: Decision
    ruleId?: string
    protocol?: string
    reason?: string
    /** The approval that authorised it (a one-time approval used up, or a time-boxed grant). */
    approvalId?: string
    /** policyVersion() of the policy that decided. */
    policyVersion?: string
  }): AuditEvent {
    const {text, truncated} = scrubStatement(o.text)
    return {
      kind: 'statement',
      time: now(o.at),
      session: o.session,
      actor: actorOf(o.identity),
      connection: o.connection,
      data: {
        statement_id: o.statementId,
        text,
        text_truncated: truncated || undefined,
        decision: o.decision,
        rule_id: o.ruleId,
        protocol: o.protocol,
        reason: o.reason,
        approval_id: o.approvalId,
        policy_version: o.policyVersion,
      },
    }
  },

  /** What came back for a statement: counts and the error, never the rows. */
  statementResult(o: Common & {
    session: string
    identity: Identity
    connection: string
    statementId: string
    rows?: number
    bytes?: number
    durationMs?: number
    error?: string
  }): AuditEvent {
    return {
      kind: 'statement.result',
      time: now(o.at),
      session: o.session,
      actor: actorOf(o.identity),
      connection: o.connection,
      data: {
        statement_id: o.statementId,
        rows: o.rows,
        bytes: o.bytes,
        duration_ms: o.durationMs,
        error: o.error === undefined ? undefined : redact(o.error),
      },
    }
  },

  approvalRequested(o: Common & {
    approvalId: string
    session?: string
    identity: Identity
    connection: string
    statement?: string
    ruleId?: string
    justification?: string
    expiresAt?: Date | string
  }): AuditEvent {
    return {
      kind: 'approval.requested',
      time: now(o.at),
      session: o.session,
      actor: actorOf(o.identity),
      connection: o.connection,
      data: {
        approval_id: o.approvalId,
        statement: o.statement === undefined ? undefined : scrubStatement(o.statement).text,
        rule_id: o.ruleId,
        justification: o.justification,
        expires_at: o.expiresAt === undefined ? undefined : now(o.expiresAt),
      },
    }
  },

  /** approved / rejected by an approver, or expired (no approver). */
  approvalDecided(o: Common & {
    approvalId: string
    outcome: ApprovalOutcome
    requester: Identity
    approver?: Identity
    connection: string
    session?: string
    justification?: string
    requestedAt: Date | string
  }): AuditEvent {
    const at = now(o.at)
    return {
      kind: 'approval.decided',
      time: at,
      session: o.session,
      actor: o.approver ? actorOf(o.approver) : undefined,
      connection: o.connection,
      data: {
        approval_id: o.approvalId,
        outcome: o.outcome,
        requester: actorOf(o.requester),
        justification: o.justification,
        requested_at: now(o.requestedAt),
        decided_at: at,
      },
    }
  },

  /**
   * A statement ran under an approval: the one statement a one-time approval covered (it is used
   * up), or the first statement of a session under a time-boxed grant. The statement event that
   * follows carries the same approval_id. `actor` is the requester who used it.
   */
  approvalUsed(o: Common & {
    approvalId: string
    scope: 'statement' | 'session'
    ruleId: string
    requester: Identity
    connection: string
    session?: string
    statement: string
    validFrom?: Date | string
    validUntil?: Date | string
  }): AuditEvent {
    return {
      kind: 'approval.used',
      time: now(o.at),
      session: o.session,
      actor: actorOf(o.requester),
      connection: o.connection,
      data: {
        approval_id: o.approvalId,
        scope: o.scope,
        rule_id: o.ruleId,
        statement: scrubStatement(o.statement).text,
        valid_from: o.validFrom === undefined ? undefined : now(o.validFrom),
        valid_until: o.validUntil === undefined ? undefined : now(o.validUntil),
      },
    }
  },

  /** Per statement: which columns / detected entity types were redacted and how many values. */
  masking(o: Common & {
    session: string
    identity: Identity
    connection: string
    statementId?: string
    ruleId?: string
    fields: {column?: string; entity?: string; count: number}[]
  }): AuditEvent {
    return {
      kind: 'masking',
      time: now(o.at),
      session: o.session,
      actor: actorOf(o.identity),
      connection: o.connection,
      data: {
        statement_id: o.statementId,
        rule_id: o.ruleId,
        fields: o.fields.map((f) => ({column: f.column, entity: f.entity, count: f.count})),
        total: o.fields.reduce((n, f) => n + f.count, 0),
      },
    }
  },

  /**
   * The policy in force changed (a reload), or was loaded at start (`trigger: start`, with the
   * version last recorded before as `old_version`). A failed reload keeps the old version in force.
   */
  policyReload(o: Common & {source: string; sha256: string; rules: number; ok: boolean; error?: string; identity?: Identity; oldVersion?: string; newVersion?: string; trigger?: 'reload' | 'start'}): AuditEvent {
    return {
      kind: 'policy.reload',
      time: now(o.at),
      actor: o.identity ? actorOf(o.identity) : undefined,
      data: {source: o.source, sha256: o.sha256, rules: o.rules, ok: o.ok, error: o.error, old_version: o.oldVersion, new_version: o.newVersion, trigger: o.trigger},
    }
  },

  /** Agents, service accounts, config: `detail` holds names and ids, never issued secrets. */
  adminChange(o: Common & {identity?: Identity; action: string; targetType: string; target: string; detail?: Record<string, string | number | boolean>}): AuditEvent {
    return {
      kind: 'admin.change',
      time: now(o.at),
      actor: o.identity ? actorOf(o.identity) : undefined,
      data: {action: o.action, target_type: o.targetType, target: o.target, detail: o.detail},
    }
  },

  /**
   * Someone read the evidence: an export (its range, filters, tree size and package hash), a
   * verification of the live store, a session listing or replay. `actor` is who (the auditor's
   * identity through the gateway; the local user for --data-dir commands), `time` is when.
   */
  auditAccess(o: Common & {
    identity?: Identity
    operator?: string
    action: 'export' | 'verify' | 'sessions.list' | 'sessions.show'
    via: 'gateway' | 'data-dir'
    from?: string
    to?: string
    connection?: string
    user?: string
    session?: string
    firstSeq?: number
    lastSeq?: number
    treeSize?: number
    events?: number
    results?: number
    sha256?: string
  }): AuditEvent {
    return {
      kind: 'audit.access',
      time: now(o.at),
      actor: o.identity ? actorOf(o.identity) : o.operator ? {kind: 'operator', subject: o.operator, name: o.operator, groups: []} : undefined,
      connection: o.connection,
      data: {
        action: o.action,
        via: o.via,
        // As the export read them (a date is its midnight UTC); kept as given when not a time.
        from: o.from === undefined || Number.isNaN(Date.parse(o.from)) ? o.from : now(o.from),
        to: o.to === undefined || Number.isNaN(Date.parse(o.to)) ? o.to : now(o.to),
        user_filter: o.user,
        viewed_session: o.session,
        first_seq: o.firstSeq,
        last_seq: o.lastSeq,
        tree_size: o.treeSize,
        events: o.events,
        results: o.results,
        sha256: o.sha256,
      },
    }
  },

  /**
   * The gateway started on a store it could not vouch for because the operator said so
   * (`hoop gateway --accept-store-rollback`): what was wrong, the published head it was compared
   * with, and what the store held. The next signed head is published after it.
   */
  storeAccepted(o: Common & {
    operator: string
    problem: string
    reason: string
    witness?: string
    head?: {tree_size: number; root_hash: string; timestamp: string}
    storeSize: number
    storeRoot: string
  }): AuditEvent {
    return {
      kind: 'audit.store_accepted',
      time: now(o.at),
      actor: {kind: 'operator', subject: o.operator, name: o.operator, groups: []},
      data: {
        problem: o.problem,
        reason: o.reason,
        witness: o.witness,
        published_tree_size: o.head?.tree_size,
        published_root_hash: o.head?.root_hash,
        published_at: o.head?.timestamp,
        store_tree_size: o.storeSize,
        store_root_hash: o.storeRoot,
      },
    }
  },

  /**
   * The presented credential is never recorded, only what kind it was and why it failed. An
   * aggregated event (src/gateway/auth-failures.ts) stands for `count` failures of one source
   * between `first` and `last`, with `reasons` counted; one without `count` stands for one.
   */
  authFailure(o: Common & {
    method: string
    reason: string
    clientAddress?: string
    claimedSubject?: string
    connection?: string
    count?: number
    first?: Date | string
    last?: Date | string
    reasons?: Record<string, number>
    /** Failures from sources beyond the per-interval bound, counted together. */
    otherSources?: boolean
  }): AuditEvent {
    return {
      kind: 'auth.failure',
      time: now(o.at),
      connection: o.connection,
      data: {
        method: o.method,
        reason: redact(o.reason),
        client_address: o.clientAddress,
        claimed_subject: o.claimedSubject,
        count: o.count,
        first: o.first === undefined ? undefined : now(o.first),
        last: o.last === undefined ? undefined : now(o.last),
        reasons: o.reasons ? redactedCounts(o.reasons) : undefined,
        other_sources: o.otherSources,
      },
    }
  },
}
