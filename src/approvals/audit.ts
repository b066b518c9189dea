// Approval state changes as audit events (src/audit/events.ts constructors), for the gateway to
// append from the service's onEvent hook (src/gateway/server.ts: appended without waiting; a failed
// append is logged).
// A partial approval (1 of N) is recorded as approval.decided with outcome "approval", so every
// approver's identity and justification is in the log, not only the last one's. Requests and
// decisions carry the session whose statement asked; an approved request says from when until
// when it is valid; each use is an approval.used event in the session that used it.
import {events, type AuditEvent} from '../audit/index.js'
import {approvalsOf} from './service.js'
import type {ApprovalDecisionRecord, ApprovalEventKind, ApprovalRecord, ApprovalUse} from './types.js'

export function approvalAuditEvents(kind: ApprovalEventKind, rec: ApprovalRecord, decision?: ApprovalDecisionRecord, use?: ApprovalUse): AuditEvent[] {
  const common = {approvalId: rec.id, connection: rec.connection}
  switch (kind) {
    case 'requested': {
      const e = events.approvalRequested({
        ...common,
        at: rec.createdAt,
        session: rec.session,
        identity: rec.requester,
        statement: rec.statement,
        ruleId: rec.ruleId,
        justification: rec.requestReason,
        expiresAt: rec.expiresAt,
      })
      e.data = {...e.data, scope: rec.scope, duration_seconds: rec.scope === 'session' ? (rec.durationSeconds ?? rec.ttlSeconds) : undefined}
      return [e]
    }
    case 'approved':
    case 'rejected':
    case 'expired':
    case 'approval': {
      const e = events.approvalDecided({
        ...common,
        at: kind === 'expired' ? undefined : (decision?.at ?? rec.decidedAt),
        outcome: kind === 'approval' ? 'approved' : kind,
        requester: rec.requester,
        approver: decision?.approver,
        session: rec.session,
        justification: decision?.reason,
        requestedAt: rec.createdAt,
      })
      // Approved: valid from the decision until valid_until (a grant's window; a one-time approval's deadline).
      const validFrom = kind === 'approved' || (kind === 'expired' && rec.validUntil) ? rec.decidedAt : undefined
      e.data = {...e.data, rule_id: rec.ruleId, scope: rec.scope, approvals: `${approvalsOf(rec)}/${rec.approvalsRequired}`, valid_from: validFrom, valid_until: rec.validUntil}
      if (kind === 'approval') e.data.outcome = 'approval'
      return [e]
    }
    case 'used': {
      if (!use) return []
      const e = events.approvalUsed({
        ...common,
        at: use.at,
        scope: rec.scope === 'session' ? 'session' : 'statement',
        ruleId: rec.ruleId,
        requester: rec.requester,
        session: use.session,
        statement: use.statement,
        validFrom: rec.decidedAt,
        validUntil: rec.validUntil,
      })
      // The event constructor knows two scopes; a repeat approval says its own.
      e.data = {...e.data, scope: rec.scope}
      return [e]
    }
    default: {
      const never: never = kind
      return never
    }
  }
}
