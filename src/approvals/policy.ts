// Which rule governs a time-boxed access request: the first review rule with scope `session` that
// applies to the requester on the connection. Pure.
import type {Identity} from '../identity/types.js'
import {checkAccess, ruleApplies} from '../policy/evaluate.js'
import type {ConnectionRef, Policy, ReviewDecision} from '../policy/types.js'
import {HoopError} from '../shared/errors.js'

export function sessionReviewFor(policy: Policy, identity: Identity, conn: ConnectionRef): ReviewDecision {
  const access = checkAccess(policy, identity, conn)
  if (!access.allowed) throw new HoopError('ACCESS_DENIED', `access to "${conn.name}" denied for ${identity.name} (rule ${access.ruleId}); time-boxed access widens what you may run, not where`)
  const rule = policy.rules.find((r) => r.effect === 'review' && r.review?.scope === 'session' && ruleApplies(r, identity, conn))
  if (!rule || !rule.review) {
    throw new HoopError('INVALID_INPUT', `no review rule with scope "session" applies to ${identity.name} on "${conn.name}"; statements that need review are approved one at a time`)
  }
  return {ruleId: rule.id, ...rule.review}
}
