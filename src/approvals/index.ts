// Just-in-time approvals: the service (service.ts) over a store (store.ts), the model (types.ts),
// client-visible messages (message.ts) and the policy look-up for time-boxed access (policy.ts).
export * from './types.js'
export {ApprovalService, MAX_WAIT_SECONDS, approvalsOf} from './service.js'
export type {ApprovalStore} from './store.js'
export {approvalStoreFor} from './store-for.js'
export {approvalStatusLine, reviewDetail, reviewMessage} from './message.js'
export {approvalResolver} from './resolver.js'
export {sessionReviewFor} from './policy.js'
export {approvalAuditEvents} from './audit.js'
