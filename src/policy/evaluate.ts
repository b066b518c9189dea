// Policy evaluation: pure functions from (policy, identity, connection, operation) to a decision.
// Every decision names the rule that made it; `default-deny` / `default-unparsable` when none did.
//
// Access: denied unless an `allow` rule matches; a matching `deny` rule wins over any allow.
// Statements and HTTP requests: a matching `block` rule wins, then the read-only limit (blocks
// writes, with the id of the allow rule that set it), then `review`, else allow (with the allow
// rule's id). SQL match keys judge statements, HTTP match keys judge requests; neither matches
// the other, and `writes` (for HTTP: any method but GET, HEAD, OPTIONS) and rules with no `match`
// judge both.
// Masks accumulate from every matching `mask` rule.
//
// Built-in rules (hoop.no-laundering, hoop.masked-ddl, hoop.masked-stats) block, for a subject
// whose mask plan has columns, statements that would let masked values be read back unmasked:
// stored somewhere else, renamed away from the mask, or sampled by statistics. They come right
// after the policy's own block rules; an `allow` rule that grants the subject may waive them.
// They judge the names a statement reads; the stored values they let pass go with the decision
// (`stored`), so that the engine can check them through views (judgeStoredViewColumns).
// A statement part of which cannot be seen (`unseen`) is judged like unparsable text.
import type {Identity} from '../identity/types.js'
import {selectJsonValues} from '../shared/json-path.js'
import {anyGlob, globMatch} from './glob.js'
import {
  type AccessDecision,
  type BodyCondition,
  type BodyTest,
  type BuiltinRuleId,
  type ColumnPattern,
  type ColumnRef,
  type ConnectionRef,
  DEFAULT_DENY,
  DEFAULT_UNPARSABLE,
  HTTP_MATCH_KEYS,
  HTTP_READ_METHODS,
  type HttpRequestInfo,
  MASKED_DDL,
  MASKED_STATS,
  type MaskPlan,
  NO_LAUNDERING,
  type Operation,
  type OperationDecision,
  type Policy,
  type ReviewDecision,
  type Rule,
  SQL_MATCH_KEYS,
  type Statement,
  type StatementMatcher,
  type StoredValue,
  type SubjectMatcher,
} from './types.js'

/** Does `identity` fall under `m`? Any listed entry matching is enough. */
function subjectMatches(m: SubjectMatcher, identity: Identity): boolean {
  if (m.users && identity.kind === 'user') {
    if (identity.email && anyGlob(m.users, identity.email)) return true
    if (anyGlob(m.users, identity.subject)) return true
  }
  if (m.groups && identity.groups.some((g) => anyGlob(m.groups!, g))) return true
  if (m.serviceAccounts && identity.kind === 'service-account') {
    if (anyGlob(m.serviceAccounts, identity.name) || anyGlob(m.serviceAccounts, identity.subject)) return true
  }
  if (m.clients && identity.kind === 'client') {
    if (anyGlob(m.clients, identity.subject) || anyGlob(m.clients, identity.name)) return true
  }
  if (m.ci && identity.kind === 'ci') {
    for (const ci of m.ci) {
      if (ci.issuer !== undefined && !(identity.issuer && globMatch(ci.issuer, identity.issuer))) continue
      const claims = identity.claims ?? {}
      const ok = Object.entries(ci.claims).every(([name, glob]) => Object.hasOwn(claims, name) && globMatch(glob, String(claims[name])))
      if (ok) return true
    }
  }
  return false
}

/** Is `identity` one of the approvers a review asks for? (Requesters never approve themselves: the caller checks.) */
export function isApprover(review: Pick<ReviewDecision, 'approvers'>, identity: Identity): boolean {
  return subjectMatches(review.approvers, identity)
}

/** Does the rule apply to this subject on this connection (ignoring what the operation is)? */
export function ruleApplies(rule: Rule, identity: Identity, conn: ConnectionRef): boolean {
  if (rule.connections && !anyGlob(rule.connections, conn.name)) return false
  if (rule.types && !rule.types.includes(conn.type)) return false
  if (rule.subjects && !subjectMatches(rule.subjects, identity)) return false
  return true
}

export function checkAccess(policy: Policy, identity: Identity, conn: ConnectionRef): AccessDecision {
  const rules = policy.rules.filter((r) => (r.effect === 'allow' || r.effect === 'deny') && ruleApplies(r, identity, conn))
  const deny = rules.find((r) => r.effect === 'deny')
  if (deny) {
    return {allowed: false, ruleId: deny.id, reason: deny.message ?? `access to ${conn.name} is denied by rule ${deny.id}`, limits: {readOnly: true}}
  }
  // Several allow rules: the most generous wins (not read-only over read-only, then the longest
  // session), so a person in two groups gets the better grant; ties go to the first written.
  let best: Rule | undefined
  for (const r of rules) {
    if (r.effect !== 'allow') continue
    if (!best || generosity(r) > generosity(best)) best = r
  }
  if (!best) {
    return {allowed: false, ruleId: DEFAULT_DENY, reason: `no rule allows ${describe(identity)} to use ${conn.name}`, limits: {readOnly: true}}
  }
  const limits = {readOnly: best.limits?.readOnly ?? false, ...(best.limits?.maxSessionSeconds ? {maxSessionSeconds: best.limits.maxSessionSeconds} : {})}
  return {allowed: true, ruleId: best.id, reason: best.message ?? `allowed by rule ${best.id}`, limits}
}

function generosity(r: Rule): number {
  const rw = r.limits?.readOnly ? 0 : 1
  const secs = r.limits?.maxSessionSeconds ?? Number.MAX_SAFE_INTEGER / 2
  return rw * Number.MAX_SAFE_INTEGER + secs
}

/** The connections this identity may use, each with the access decision (for `hoop connections`). */
export function listAllowedConnections<C extends ConnectionRef>(policy: Policy, identity: Identity, conns: readonly C[]): Array<C & {access: AccessDecision}> {
  const out: Array<C & {access: AccessDecision}> = []
  for (const c of conns) {
    const access = checkAccess(policy, identity, c)
    if (access.allowed) out.push({...c, access})
  }
  return out
}

export function maskPlan(policy: Policy, identity: Identity, conn: ConnectionRef): MaskPlan {
  const plan: MaskPlan = {columns: [], entities: [], fields: [], ruleIds: []}
  for (const r of policy.rules) {
    if (r.effect !== 'mask' || !r.mask || !ruleApplies(r, identity, conn)) continue
    plan.ruleIds.push(r.id)
    for (const c of r.mask.columns) if (!plan.columns.some((x) => x.text === c.text)) plan.columns.push(c)
    for (const e of r.mask.entities) if (!plan.entities.includes(e)) plan.entities.push(e)
    for (const f of r.mask.fields) if (!plan.fields.includes(f)) plan.fields.push(f)
  }
  return plan
}

/** Built-in rules waived for this subject on this connection: by any `allow` rule that applies. */
function waivedRules(policy: Policy, identity: Identity, conn: ConnectionRef): Set<BuiltinRuleId> {
  const out = new Set<BuiltinRuleId>()
  for (const r of policy.rules) if (r.effect === 'allow' && r.waive && ruleApplies(r, identity, conn)) for (const w of r.waive) out.add(w)
  return out
}

/**
 * Could the column be one a pattern masks? Unknown parts (an unqualified table, a column of unknown
 * origin) and `*` (a whole row, every table of a schema) match, so that doubt counts as masked.
 */
function mayBeMasked(p: ColumnPattern, c: ColumnRef): boolean {
  const part = (glob: string, v: string | undefined) => v === undefined || v === '*' || globMatch(glob, v)
  return part(p.schema, c.schema) && part(p.table, c.table) && part(p.column, c.column)
}

/** Is the column certainly masked (every part known and matched)? Values stored into it stay masked. */
function surelyMasked(p: ColumnPattern, c: ColumnRef): boolean {
  const part = (glob: string, v: string | undefined) => glob === '*' || (v !== undefined && v !== '*' && globMatch(glob, v))
  return part(p.schema, c.schema) && part(p.table, c.table) && part(p.column, c.column)
}

function describeRef(c: ColumnRef): string {
  return [c.schema, c.table, c.column].filter((x) => x !== undefined).join('.')
}

/**
 * The built-in rules, for a subject with column masks: the first statement that stores a masked
 * value somewhere readable (no-laundering), renames or alters a masked table or column or defines a
 * view over one (masked-ddl), or reads statistics that sample column values (masked-stats).
 * The stored values these rules let pass by name go into `stored`, for the engine's look through views.
 */
function builtinBlock(op: Operation, mask: MaskPlan, waived: ReadonlySet<BuiltinRuleId>, stored: StoredValue[]): OperationDecision | undefined {
  if (mask.columns.length === 0 || op.engine === 'http') return undefined
  const pattern = (c: ColumnRef) => mask.columns.find((p) => mayBeMasked(p, c))
  const block = (ruleId: BuiltinRuleId, statement: number, message: string): OperationDecision => ({effect: 'block', ruleId, message: `${message} (rule ${ruleId})`, statement, mask})
  for (const [i, s] of op.statements.entries()) {
    for (const sf of s.stores ?? []) {
      const ruleId = sf.stores === 'view' ? MASKED_DDL : NO_LAUNDERING
      if (waived.has(ruleId)) continue
      for (const f of sf.flows) {
        if (f.into && mask.columns.some((q) => surelyMasked(q, f.into!))) continue
        const into = `${f.into ? `column ${describeRef(f.into)}` : `a ${sf.stores}`} (${sf.by})`
        const p = pattern(f.from)
        if (!p) stored.push({from: f.from, ruleId, command: s.command, into})
        else if (ruleId === MASKED_DDL) return block(MASKED_DDL, i, `${s.command} defines a view over ${describeRef(f.from)}, which is masked for you (${p.text})`)
        else return block(NO_LAUNDERING, i, `${s.command} copies ${describeRef(f.from)}, which is masked for you (${p.text}), into ${into}, where it could be read back unmasked`)
      }
    }
    if (!waived.has(MASKED_DDL)) {
      for (const a of s.alters ?? []) {
        const p = pattern(a)
        if (p) return block(MASKED_DDL, i, `${s.command} changes ${describeRef(a)}, which holds data masked for you (${p.text}); renaming or altering it could move the data out from under the mask`)
      }
    }
    if (s.readsStatistics && !waived.has(MASKED_STATS)) {
      return block(MASKED_STATS, i, `${s.command} reads column statistics (${s.tables.join(', ') || s.functions.join(', ')}), which sample column values, and some columns are masked for you`)
    }
  }
  return undefined
}

/**
 * The engine's second look at what an allowed statement stores (`OperationDecision.stored`):
 * `viewColumns` names, as "schema.view.column" (`*` for a part it cannot tell), the columns of the
 * views the statement reads that derive from a masked column, which the target's catalog knows and
 * policy does not. The first stored value read from one is blocked by its built-in rule, with
 * doubt counted as masked as above (`SELECT *` of such a view, an unqualified view name).
 */
export function judgeStoredViewColumns(stored: readonly StoredValue[], viewColumns: readonly string[]): {ruleId: BuiltinRuleId; message: string} | undefined {
  const patterns: ColumnPattern[] = viewColumns.map((text) => {
    const [schema = '*', table = '*', column = '*'] = text.split('.')
    return {schema, table, column, text}
  })
  for (const v of stored) {
    const p = patterns.find((q) => mayBeMasked(q, v.from))
    if (!p) continue
    const what = `${describeRef(v.from)}, a view column that derives from data masked for you (${p.text})`
    const message = v.ruleId === MASKED_DDL ? `${v.command} defines a view over ${what}` : `${v.command} copies ${what}, into ${v.into}, where it could be read back unmasked`
    return {ruleId: v.ruleId, message: `${message} (rule ${v.ruleId})`}
  }
  return undefined
}

/** One part of an operation that rules judge: a statement, or the HTTP request. */
interface Part {
  writes: boolean
  /** Part of it cannot be seen (a statement's `unseen`): judged like unparsable text. */
  unseen?: string
  /** Names the part in messages: the command tag, or "METHOD /path". */
  what: string
  /** Index into operation.statements (SQL only). */
  statement?: number
  matches(m: StatementMatcher | undefined): boolean
}

/** The parts of `op` to judge; for HTTP the request itself, whatever `statements` holds. */
function partsOf(op: Operation): Part[] {
  if (op.engine === 'http') {
    const h = op.http!
    return [{writes: isHttpWrite(h.method), what: `${h.method.toUpperCase()} ${h.path}`, matches: (m) => httpMatches(m, h)}]
  }
  return op.statements.map((s, i) => ({writes: s.writes || s.unseen !== undefined, what: s.command, statement: i, ...(s.unseen ? {unseen: s.unseen} : {}), matches: (m) => statementMatches(m, s)}))
}

/** HTTP: anything but GET, HEAD and OPTIONS counts as a write (read-only grants block it; `writes: true` matches it). */
export function isHttpWrite(method: string): boolean {
  return !HTTP_READ_METHODS.includes(method.toUpperCase())
}

export function judgeOperation(policy: Policy, identity: Identity, conn: ConnectionRef, operation: Operation): OperationDecision {
  // An HTTP operation without its request cannot be judged on what it asks for: treat it as unreadable.
  const op: Operation = operation.engine === 'http' && !operation.http && !operation.unparsable ? {...operation, unparsable: {reason: 'the HTTP request was not described to policy'}} : operation
  const mask = maskPlan(policy, identity, conn)
  // Filled by the built-in rules; allow and review decisions carry it to the engine.
  const stored: StoredValue[] = []
  const withStored = () => (stored.length > 0 ? {stored} : {})
  const access = checkAccess(policy, identity, conn)
  if (!access.allowed) return {effect: 'block', ruleId: access.ruleId, message: access.reason, mask}

  const guards = policy.rules.filter((r) => (r.effect === 'block' || r.effect === 'review') && ruleApplies(r, identity, conn))
  const decide = (r: Rule, part?: Part): OperationDecision => {
    const what = part === undefined ? 'the statement could not be parsed' : part.what
    const statement = part?.statement
    if (r.effect === 'review') {
      const spec = r.review!
      return {
        effect: 'review',
        ruleId: r.id,
        message: r.message ?? `${what} needs approval (rule ${r.id})`,
        ...(statement === undefined ? {} : {statement}),
        review: {ruleId: r.id, approvers: spec.approvers, approvals: spec.approvals, ttlSeconds: spec.ttlSeconds, scope: spec.scope},
        mask,
        ...withStored(),
      }
    }
    return {effect: 'block', ruleId: r.id, message: r.message ?? `${what} is blocked by rule ${r.id}`, ...(statement === undefined ? {} : {statement}), mask}
  }

  if (op.unparsable) {
    // Only rules that ask for unparsable input, or no `match` at all, can see what is inside: nothing.
    const explicit = guards.filter((r) => !r.match || r.match.unparsable === true)
    const block = explicit.find((r) => r.effect === 'block')
    if (block) return decide(block)
    if (access.limits.readOnly) {
      return {effect: 'block', ruleId: access.ruleId, message: `statement could not be parsed, so it cannot be shown to be read-only (${op.unparsable.reason})`, mask}
    }
    const review = explicit.find((r) => r.effect === 'review')
    if (review) return decide(review)
    if (guards.length > 0 && policy.defaults.unparsable === 'block') {
      return {effect: 'block', ruleId: DEFAULT_UNPARSABLE, message: `statement could not be parsed: ${op.unparsable.reason}`, mask}
    }
    return {effect: 'allow', ruleId: access.ruleId, message: access.reason, mask}
  }

  const parts = partsOf(op)
  for (const r of guards) {
    if (r.effect !== 'block') continue
    const part = parts.find((p) => p.matches(r.match))
    if (part) return decide(r, part)
  }
  const builtin = builtinBlock(op, mask, waivedRules(policy, identity, conn), stored)
  if (builtin) return builtin
  if (access.limits.readOnly) {
    const part = parts.find((p) => p.writes)
    if (part) {
      const why = op.engine === 'http' ? `${part.what} is not a read (only GET, HEAD and OPTIONS are)` : part.unseen ? `${part.what} cannot be shown to be read-only (${part.unseen})` : `${part.what} writes`
      return {effect: 'block', ruleId: access.ruleId, ...(part.statement === undefined ? {} : {statement: part.statement}), message: `${why}, and ${conn.name} is read-only for you (rule ${access.ruleId})`, mask}
    }
  }
  // A statement part of which cannot be seen: judged like text that could not be parsed.
  const unseen = parts.find((p) => p.unseen !== undefined)
  if (unseen) {
    const review = guards.find((r) => r.effect === 'review' && (!r.match || r.match.unparsable === true))
    if (review) return decide(review, unseen)
    if (guards.length > 0 && policy.defaults.unparsable === 'block') {
      return {effect: 'block', ruleId: DEFAULT_UNPARSABLE, ...(unseen.statement === undefined ? {} : {statement: unseen.statement}), message: `${unseen.what} cannot be judged: ${unseen.unseen}`, mask}
    }
  }
  for (const r of guards) {
    if (r.effect !== 'review') continue
    const part = parts.find((p) => p.matches(r.match))
    if (part) return decide(r, part)
  }
  return {effect: 'allow', ruleId: access.ruleId, message: access.reason, mask, ...withStored()}
}

function hasSqlKeys(m: StatementMatcher): boolean {
  return SQL_MATCH_KEYS.some((k) => m[k] !== undefined)
}

function hasHttpKeys(m: StatementMatcher): boolean {
  return HTTP_MATCH_KEYS.some((k) => m[k] !== undefined)
}

/**
 * Does the HTTP request match? Every condition given must hold; a matcher with any SQL key never
 * matches a request (absent matcher = every request). Guardrails err towards matching: paths are
 * also tried without repeated or trailing slashes, query names ignore case, and a body too
 * complex to search counts as matching.
 */
export function httpMatches(m: StatementMatcher | undefined, h: HttpRequestInfo): boolean {
  if (!m) return true
  if (hasSqlKeys(m)) return false
  if (m.writes !== undefined && isHttpWrite(h.method) !== m.writes) return false
  if (m.methods && !m.methods.includes(h.method.toUpperCase())) return false
  if (m.paths && !pathGlobsMatch(m.paths, h.path)) return false
  if (m.query) {
    for (const [name, glob] of Object.entries(m.query)) if (!queryMatches(h.query, name, glob)) return false
  }
  if (m.bodyUnreadable !== undefined && (h.bodyStatus === 'too-large' || h.bodyStatus === 'invalid-json') !== m.bodyUnreadable) return false
  if (m.body) {
    const readable = h.bodyStatus === undefined ? h.body !== undefined : h.bodyStatus === 'json'
    if (!readable) return false
    for (const c of m.body) if (!bodyConditionHolds(c, h.body)) return false
  }
  return true
}

function pathGlobsMatch(globs: readonly string[], path: string): boolean {
  if (anyGlob(globs, path)) return true
  // "/admin/", "//admin" and "/admin" reach the same handler on many servers.
  let lax = path.replace(/\/{2,}/g, '/')
  if (lax.length > 1) lax = lax.replace(/\/+$/, '') || '/'
  return lax !== path && anyGlob(globs, lax)
}

function queryMatches(query: Record<string, string[]> | undefined, name: string, glob: string): boolean {
  if (!query) return false
  const lower = name.toLowerCase()
  for (const k of Object.keys(query)) {
    if (k.toLowerCase() !== lower) continue
    if (glob === '*') return true
    if (query[k].some((v) => globMatch(glob, v))) return true
  }
  return false
}

function bodyConditionHolds(c: BodyCondition, body: unknown): boolean {
  const values = selectJsonValues(body, {text: c.path, segments: c.segments})
  if (values === undefined) return true // too much to search: cannot be shown not to match
  const t = c.test
  if (t.kind === 'glob' && t.glob === '*') return values.length > 0
  // A scalar test also looks into an array the path names: {"$.roles": admin} matches ["user", "admin"].
  return values.some((v) => bodyTest(t, v) || (Array.isArray(v) && v.some((x) => bodyTest(t, x))))
}

function bodyTest(t: BodyTest, v: unknown): boolean {
  switch (t.kind) {
    case 'glob':
      return (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null) && globMatch(t.glob, String(v))
    case 'equals':
      if (t.value === null) return v === null
      if (typeof t.value === 'number') return toNumber(v) === t.value
      return v === t.value || (typeof v === 'string' && v.toLowerCase() === String(t.value))
    case 'range': {
      const n = toNumber(v)
      if (n === undefined) return false
      return (t.gt === undefined || n > t.gt) && (t.gte === undefined || n >= t.gte) && (t.lt === undefined || n < t.lt) && (t.lte === undefined || n <= t.lte)
    }
    default: {
      const never: never = t
      return never
    }
  }
}

/** A number, or a string holding one ("100", " 1e3 "); anything else is not a number. */
function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v)
    return Number.isFinite(n) ? n : undefined
  }
  return undefined
}

/** Every condition given in the matcher must hold (absent matcher = every statement). */
export function statementMatches(m: StatementMatcher | undefined, s: Statement): boolean {
  if (!m) return true
  if (hasHttpKeys(m)) return false // HTTP keys never match a statement
  if (m.unparsable === true && s.unseen === undefined) return false // a statement seen whole is not unparsable
  if (m.kinds && !m.kinds.includes(s.kind)) return false
  if (m.commands && !anyGlob(m.commands, s.command)) return false
  if (m.writes !== undefined && s.writes !== m.writes) return false
  if (m.where !== undefined) {
    if (s.hasWhere === undefined) return false
    if ((m.where === 'present') !== s.hasWhere) return false
  }
  if (m.tables && !s.tables.some((t) => tableMatches(m.tables!, t))) return false
  if (m.functions && !s.functions.some((f) => anyGlob(m.functions!, f) || anyGlob(m.functions!, f.split('.').pop()!))) return false
  if (m.settings && !(s.settings ?? []).some((n) => anyGlob(m.settings!, n))) return false
  if (m.copyProgram !== undefined && Boolean(s.copyProgram) !== m.copyProgram) return false
  if (m.copyFile !== undefined && Boolean(s.copyFile) !== m.copyFile) return false
  if (m.opaque !== undefined && Boolean(s.opaque) !== m.opaque) return false
  return true
}

/**
 * A qualified "s.t" matches "s.t", "s.*", "*.t" and the bare "t". An unqualified "t" may resolve to
 * any schema on the search_path, so for a guardrail it matches "t" and any "<schema>.t".
 */
function tableMatches(globs: readonly string[], table: string): boolean {
  const dot = table.lastIndexOf('.')
  const bare = dot < 0 ? table : table.slice(dot + 1)
  return globs.some((g) => {
    if (globMatch(g, table)) return true
    const gd = g.lastIndexOf('.')
    if (gd < 0) return globMatch(g, bare)
    return dot < 0 && globMatch(g.slice(gd + 1), bare)
  })
}

function describe(identity: Identity): string {
  return identity.kind === 'user' ? (identity.email ?? identity.name) : `${identity.kind} ${identity.name}`
}
