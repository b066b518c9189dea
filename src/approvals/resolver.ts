// The engine-facing view of the service, in the shape the gateway's statement hooks ask for
// (src/gateway/approval-resolver.ts): approved -> run; pending -> refuse with this message.
import type {Identity} from '../identity/types.js'
import type {ReviewDecision} from '../policy/types.js'
import {reviewDetail} from './message.js'
import type {ApprovalService} from './service.js'

interface ResolverRequest {
  identity: Identity
  connection: string
  sql: string
  review: ReviewDecision
  session?: string
}

type ResolverResult = {status: 'approved'; approvalId: string} | {status: 'pending'; approvalId: string; message: string}

export function approvalResolver(service: ApprovalService): {resolve(req: ResolverRequest): Promise<ResolverResult>} {
  return {
    async resolve(req) {
      const r = service.resolve(req)
      return r.status === 'approved' ? {status: 'approved', approvalId: r.approval.id} : {status: 'pending', approvalId: r.approval.id, message: reviewDetail(r.approval)}
    },
  }
}
