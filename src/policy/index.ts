// Policy as code: load and validate (load.ts), hold and hot-reload (holder.ts), evaluate (evaluate.ts).
// Pure: no sockets, no protocol imports. Engines hand in an Operation (types.ts).
export * from './types.js'
export {checkAccess, httpMatches, isApprover, isHttpWrite, judgeOperation, judgeStoredViewColumns, listAllowedConnections, maskPlan, ruleApplies, statementMatches} from './evaluate.js'
export {loadPolicyFile, parsePolicy, policyFromGatewayConfig, policyPathFromConfig} from './load.js'
export {PolicyHolder, type ReloadResult} from './holder.js'
export {formatDuration, globMatch, parseDuration} from './glob.js'
