// The engine-facing view of the service, in the shape the statement gate asks for
// (src/engines/gate.ts): approved -> run (a one-time approval consumed, or a time-boxed grant);
// pending -> refuse with this message.
import type {Identity} from '../identity/types.js'
import type {ReviewDecision} from '../policy/types.js'
import {reviewDetail} from './message.js'
import type {ApprovalService} from './service.js'

interface ResolverRequest {
  identity: Identity
  connection: string
  /** What the approval binds to: the SQL text, or an HTTP request's method, target and body hash. */
  statement: string
  review: ReviewDecision
  session?: string
  /** The client's id for its run, when it sent one (`hoop exec`). */
  clientRequest?: string
}

type ResolverResult = {status: 'approved'; approvalId: string} | {status: 'pending'; approvalId: string; message: string}

export interface ApprovalResolver {
  resolve(req: ResolverRequest): Promise<ResolverResult>
}

export function approvalResolver(service: ApprovalService): ApprovalResolver {
  return {
    async resolve(req) {
      const r = await service.resolve(req)
      return r.status === 'approved' ? {status: 'approved', approvalId: r.approval.id} : {status: 'pending', approvalId: r.approval.id, message: reviewDetail(r.approval)}
    },
  }
}
