// Approval state changes as audit events (src/audit/events.ts constructors), for the gateway to
// append from the service's onEvent hook (src/gateway/server.ts: appended without waiting; a failed
// append is logged).
// A partial approval (1 of N) is recorded as approval.decided with outcome "approval", so every
// approver's identity and justification is in the log, not only the last one's.
import {events, type AuditEvent} from '../audit/index.js'
import {approvalsOf} from './service.js'
import type {ApprovalDecisionRecord, ApprovalEventKind, ApprovalRecord} from './types.js'

export function approvalAuditEvents(kind: ApprovalEventKind, rec: ApprovalRecord, decision?: ApprovalDecisionRecord): AuditEvent[] {
  const common = {approvalId: rec.id, connection: rec.connection}
  switch (kind) {
    case 'requested':
      return [
        events.approvalRequested({
          ...common,
          at: rec.createdAt,
          identity: rec.requester,
          statement: rec.statement,
          ruleId: rec.ruleId,
          justification: rec.requestReason,
          expiresAt: rec.expiresAt,
        }),
      ]
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
        justification: decision?.reason,
        requestedAt: rec.createdAt,
      })
      e.data = {...e.data, rule_id: rec.ruleId, scope: rec.scope, approvals: `${approvalsOf(rec)}/${rec.approvalsRequired}`, valid_until: rec.validUntil}
      if (kind === 'approval') e.data.outcome = 'approval'
      return [e]
    }
    case 'used':
      // The statement event written before it runs carries the rule id; nothing new to record here.
      return []
    default: {
      const never: never = kind
      return never
    }
  }
}
