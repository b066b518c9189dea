// What a client sees when a statement waits for review: the request id, how far it got, and the
// exact command an approver runs. Clients (hoop exec) find the id in this text with APPROVAL_ID_RE.
import {formatDuration} from '../policy/glob.js'
import {approvalsOf} from './service.js'
import type {ApprovalRecord} from './types.js'

export function reviewMessage(approval: ApprovalRecord): string {
  return `hoop: approval required by rule ${approval.ruleId}; ${reviewDetail(approval)}`
}

/**
 * reviewMessage without its "hoop: approval required by rule R; " head, for engines that already
 * say which rule asked for review ("hoop: review required by policy rule R: <detail>").
 */
export function reviewDetail(approval: ApprovalRecord): string {
  const head = approval.scope === 'session' ? `time-boxed access request ${approval.id}` : `request ${approval.id}`
  const progress = `${approvalsOf(approval)} of ${approval.approvalsRequired} approvals`
  switch (approval.state) {
    case 'pending':
      return `${head} is pending (${progress}). An approver runs: hoop approvals approve ${approval.id} --reason "..."`
    case 'approved':
      switch (approval.scope) {
        case 'session':
          return `${head} is approved until ${approval.validUntil}`
        case 'repeat':
          return `${head} is approved; run the same statement again to use it (as often as needed, until ${approval.validUntil})`
        case 'statement':
          return `${head} is approved; run the same statement again to use it (once, before ${approval.validUntil})`
        default: {
          const never: never = approval.scope
          return `${head} has scope ${String(never)}`
        }
      }
    case 'rejected': {
      const r = approval.decisions.find((d) => d.decision === 'reject')
      return `${head} was rejected${r ? ` by ${r.approver.name}: ${r.reason}` : ''}`
    }
    case 'expired':
      return `${head} expired (${progress}); run the statement again to ask anew`
    case 'used':
      return `${head} was already used at ${approval.usedAt}; a one-time approval covers one run`
    default: {
      const never: never = approval.state
      return `${head} is ${String(never)}`
    }
  }
}

/** One line for lists and spinners: "pending, 1 of 2 approvals, expires in 59m". */
export function approvalStatusLine(approval: ApprovalRecord, nowMs = Date.now()): string {
  const left = (iso?: string) => (iso ? formatDuration(Math.max(0, Math.round((Date.parse(iso) - nowMs) / 1000))) : '?')
  switch (approval.state) {
    case 'pending':
      return `pending, ${approvalsOf(approval)} of ${approval.approvalsRequired} approvals, expires in ${left(approval.expiresAt)}`
    case 'approved':
      if (approval.scope === 'session') return `approved, access for ${left(approval.validUntil)}`
      return approval.scope === 'repeat' ? `approved, usable for ${left(approval.validUntil)}` : `approved, usable once within ${left(approval.validUntil)}`
    default:
      return approval.state
  }
}
