// What the statement hooks need from the approvals service: turn a review decision into either
// "approved, go" (a one-time approval consumed, or a time-boxed grant) or "pending" with the
// message the client sees.
import type {Identity} from '../identity/types.js'
import type {ReviewDecision} from '../policy/index.js'

export interface ApprovalResolver {
  resolve(req: {identity: Identity; connection: string; sql: string; review: ReviewDecision; session?: string}): Promise<
    {status: 'approved'; approvalId: string} | {status: 'pending'; approvalId: string; message: string}
  >
}
