// Offline policy tools behind `hoop policy check` and `hoop policy test`: validate a file, and ask
// "may this subject run this statement (or send this HTTP request) on this connection?" without a
// gateway.
import {loadGatewayConfig} from '../shared/config.js'
import {HoopError} from '../shared/errors.js'
import type {Identity} from '../identity/types.js'
import {judgePolicy, type PolicyTestResult} from '../gateway/policy-test.js'
import {isHttpWrite} from '../policy/evaluate.js'
import {formatDuration} from '../policy/glob.js'
import {loadPolicyFile, policyFromGatewayConfig} from '../policy/load.js'
import type {Effect, Policy, SubjectMatcher} from '../policy/types.js'

export {httpRequest, type PolicyTestResult} from '../gateway/policy-test.js'

export interface PolicyCheckResult {
  file: string
  ok: true
  rules: number
  effects: Partial<Record<Effect, number>>
}

/** Validates a policy file (or a gateway config's policy). Throws HoopError CONFIG_INVALID with every problem. */
export function checkPolicyFile(file: string, opts: {config?: boolean} = {}): PolicyCheckResult {
  const policy = opts.config ? policyFromGatewayConfig(loadGatewayConfig(file)) : loadPolicyFile(file)
  const effects: Partial<Record<Effect, number>> = {}
  for (const r of policy.rules) effects[r.effect] = (effects[r.effect] ?? 0) + 1
  return {file, ok: true, rules: policy.rules.length, effects}
}

export function formatPolicyCheck(r: PolicyCheckResult): string {
  const parts = Object.entries(r.effects).map(([e, n]) => `${n} ${e}`)
  return `ok: ${r.rules} rule${r.rules === 1 ? '' : 's'}${parts.length > 0 ? ` (${parts.join(', ')})` : ''} in ${r.file}`
}

interface PolicyTestInput {
  /** A policy file, or a gateway config file (its `policy:` section) when `config` is set. */
  policy?: string
  config?: string
  connection: string
  /** Connection type; from the gateway config's connections when omitted, else postgres. */
  type?: string
  user?: string
  groups?: string[]
  serviceAccount?: string
  ciIssuer?: string
  /** CI claims as name=value. */
  claims?: string[]
  /** Statement(s), for postgres (libpg-query) and mysql (the MySQL analyzer) connections. */
  sql?: string
  /** HTTP request method (default GET when a path or body is given). */
  method?: string
  /** HTTP request path, with an optional "?query" (default "/"). */
  path?: string
  /** HTTP request body as JSON text (sent as application/json). */
  body?: string
}

export async function testPolicy(input: PolicyTestInput): Promise<PolicyTestResult> {
  if (!input.policy === !input.config) throw new HoopError('INVALID_INPUT', 'give exactly one of --policy FILE or --config GATEWAY_CONFIG')
  let policy: Policy
  let type = input.type
  if (input.config) {
    const cfg = loadGatewayConfig(input.config)
    policy = policyFromGatewayConfig(cfg)
    type ??= cfg.connections.find((c) => c.name === input.connection)?.type
  } else policy = loadPolicyFile(input.policy!)
  const connection = {name: input.connection, type: type ?? 'postgres'}
  return judgePolicy(policy, connection, identityFrom(input), input)
}

function identityFrom(input: PolicyTestInput): Identity {
  const groups = input.groups ?? []
  const given = [input.user, input.serviceAccount, input.ciIssuer ?? (input.claims?.length ? 'claims' : undefined)].filter(Boolean)
  if (given.length !== 1) throw new HoopError('INVALID_INPUT', 'name exactly one subject: --user EMAIL, --service-account NAME, or --ci-issuer URL/--claim NAME=VALUE')
  if (input.serviceAccount) return {kind: 'service-account', subject: input.serviceAccount, name: input.serviceAccount, groups}
  if (input.user) {
    const isEmail = input.user.includes('@')
    return {kind: 'user', subject: input.user, name: input.user, ...(isEmail ? {email: input.user} : {}), groups}
  }
  const claims: Record<string, string> = {}
  for (const c of input.claims ?? []) {
    const eq = c.indexOf('=')
    if (eq <= 0) throw new HoopError('INVALID_INPUT', `--claim must be NAME=VALUE (got "${c}")`)
    claims[c.slice(0, eq)] = c.slice(eq + 1)
  }
  return {kind: 'ci', subject: claims.sub ?? 'ci', name: 'ci', groups, claims, ...(input.ciIssuer ? {issuer: input.ciIssuer} : {})}
}

export function formatPolicyTest(r: PolicyTestResult): string {
  const lines: string[] = []
  const who = r.identity.kind === 'user' ? r.identity.name : `${r.identity.kind} ${r.identity.name}`
  lines.push(`subject:    ${who}${r.identity.groups.length ? ` (groups: ${r.identity.groups.join(', ')})` : ''}`)
  lines.push(`connection: ${r.connection.name} (${r.connection.type})`)
  const limits: string[] = []
  if (r.access.allowed && r.access.limits.readOnly) limits.push('read-only')
  if (r.access.limits.maxSessionSeconds) limits.push(`sessions up to ${formatDuration(r.access.limits.maxSessionSeconds)}`)
  lines.push(`access:     ${r.access.allowed ? 'allow' : 'deny'}  [rule ${r.access.ruleId}]${limits.length ? ` ${limits.join(', ')}` : ''}`)
  if (!r.access.allowed) lines.push(`            ${r.access.reason}`)
  if (r.operation && r.decision) {
    const d = r.decision
    const h = r.operation.http
    lines.push(`${h ? 'request:  ' : 'statement:'}  ${d.effect}  [rule ${d.ruleId}]`)
    if (d.effect !== 'allow') lines.push(`            ${d.message}`)
    if (d.review) lines.push(`            approvals: ${d.review.approvals} from ${describeSubjects(d.review.approvers)}, valid ${formatDuration(d.review.ttlSeconds)} (${d.review.scope})`)
    if (r.operation.unparsable) lines.push(`            unparsable: ${r.operation.unparsable.reason}`)
    if (h) {
      const marks = [isHttpWrite(h.method) ? 'writes' : 'reads', `body ${h.bodyStatus ?? 'none'}`]
      lines.push(`  ${d.effect === 'allow' ? ' ' : '>'} ${h.method} ${h.target ?? h.path} (${marks.join(', ')})`)
    }
    r.operation.statements.forEach((s, i) => {
      const marks = [s.kind, s.writes ? 'writes' : 'reads']
      if (s.hasWhere !== undefined) marks.push(s.hasWhere ? 'WHERE' : 'no WHERE')
      if (s.via) marks.push(`via ${s.via}`)
      if (s.copyProgram) marks.push('PROGRAM')
      if (s.opaque) marks.push('opaque body')
      const tables = s.tables.length ? ` ${s.tables.join(', ')}` : ''
      const fns = s.functions.length ? ` calls ${s.functions.join(', ')}` : ''
      lines.push(`  ${d.statement === i ? '>' : ' '} [${i}] ${s.command}${tables}${fns} (${marks.join(', ')})`)
    })
    if (d.mask.ruleIds.length > 0) {
      const parts: string[] = []
      if (d.mask.columns.length) parts.push(`columns ${d.mask.columns.map((c) => c.text).join(', ')}`)
      if (d.mask.fields.length) parts.push(`fields ${d.mask.fields.join(', ')}`)
      if (d.mask.entities.length) parts.push(`entities ${d.mask.entities.join(', ')}`)
      lines.push(`mask:       ${parts.join('; ')}  [rules ${d.mask.ruleIds.join(', ')}]`)
    }
  }
  return lines.join('\n')
}

function describeSubjects(s: SubjectMatcher): string {
  const parts: string[] = []
  if (s.users) parts.push(`users ${s.users.join(', ')}`)
  if (s.groups) parts.push(`groups ${s.groups.join(', ')}`)
  if (s.serviceAccounts) parts.push(`service accounts ${s.serviceAccounts.join(', ')}`)
  if (s.clients) parts.push(`clients ${s.clients.join(', ')}`)
  if (s.ci) parts.push('CI identities')
  return parts.join('; ') || 'nobody'
}
