// The gateway's access guard: the policy decides; this adapter keeps the policy hot-reloadable.
import type {ConnectionConfig} from '../shared/config.js'
import type {Identity} from '../identity/types.js'

interface AccessDecision {
  allowed: boolean
  ruleId: string
  reason: string
  limits: {readOnly: boolean; maxSessionSeconds?: number}
}

export interface AccessGuard {
  check(identity: Identity, conn: ConnectionConfig): AccessDecision
}
