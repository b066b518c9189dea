// Loading and validating policy files. Every problem is reported as `file:line:col: what is wrong`,
// all problems at once, so an admin fixes a file in one pass. A policy may be its own file or a
// `policy:` section of the gateway config (inline mapping, or a path relative to the config).
import {readFileSync} from 'node:fs'
import {dirname, isAbsolute, resolve} from 'node:path'
import {type GatewayConfig, isObject} from '../shared/config.js'
import {HoopError} from '../shared/errors.js'
import {configError, type PathSegment, type SourceProblem, YamlSource} from '../shared/yaml-source.js'
import {compileJsonPath} from '../shared/json-path.js'
import {globProblem, parseDuration} from './glob.js'
import {
  type BodyCondition,
  type BodyTest,
  BUILTIN_RULES,
  type BuiltinRuleId,
  type CiMatcher,
  type ColumnPattern,
  EFFECTS,
  type Effect,
  ENTITY_TYPES,
  type EntityType,
  HTTP_MATCH_KEYS,
  type Limits,
  type Policy,
  REVIEW_SCOPES,
  type ReviewScope,
  type ReviewSpec,
  type Rule,
  SQL_MATCH_KEYS,
  STATEMENT_KINDS,
  type StatementKind,
  type StatementMatcher,
  type SubjectMatcher,
} from './types.js'

const EMPTY_POLICY_FILE = '<empty>'

/** A policy with no rules: every connection is denied (`default-deny`). */
function emptyPolicy(file = EMPTY_POLICY_FILE): Policy {
  return {version: 1, file, defaults: {unparsable: 'block'}, rules: []}
}

/** Parses a policy file's text. Throws HoopError CONFIG_INVALID listing every problem. */
export function parsePolicy(text: string, file: string): Policy {
  const src = YamlSource.parse(text, file)
  const raw = src.toJS()
  if (raw === null || raw === undefined) throw configError([src.problem([], 'policy file is empty; expected "version: 1" and "rules:"')])
  return validatePolicy(raw, src, [])
}

export function loadPolicyFile(path: string): Policy {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new HoopError('CONFIG_INVALID', `cannot read policy file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  return parsePolicy(text, path)
}

/**
 * The policy named by a gateway config: `policy: FILE` (relative to the config file), an inline
 * mapping (errors point into the config file), or nothing (empty policy: everything denied).
 */
export function policyFromGatewayConfig(cfg: GatewayConfig): Policy {
  const p = cfg.policy
  if (p === undefined || p === null) return emptyPolicy()
  if (typeof p === 'string') return loadPolicyFile(policyPathFromConfig(cfg, p))
  const file = cfg.file ?? '<config>'
  const src = cfg.source ?? YamlSource.parse('{}', file)
  if (!isObject(p)) throw configError([src.problem(['policy'], 'policy must be a file path or a mapping with "version" and "rules"')])
  return validatePolicy(p, src, ['policy'])
}

/** Resolves `policy: FILE` against the config file's directory. */
export function policyPathFromConfig(cfg: GatewayConfig, path: string): string {
  if (isAbsolute(path)) return path
  const base = cfg.file && !cfg.file.startsWith('<') ? dirname(resolve(cfg.file)) : process.cwd()
  return resolve(base, path)
}

// ---------------------------------------------------------------------------------------------

const RULE_KEYS = ['id', 'description', 'subjects', 'connections', 'types', 'match', 'effect', 'message', 'limits', 'waive', 'review', 'mask']
const SUBJECT_KEYS = ['users', 'groups', 'serviceAccounts', 'clients', 'ci']
const MATCH_KEYS: readonly string[] = [...SQL_MATCH_KEYS, 'writes', ...HTTP_MATCH_KEYS]
const BOUND_KEYS = ['gt', 'gte', 'lt', 'lte'] as const
const METHOD_RE = /^[A-Za-z][A-Za-z_-]{0,31}$/
const ID_RE = /^[a-z0-9][a-z0-9_.-]{0,79}$/i
const CONNECTION_TYPES = ['postgres', 'mysql', 'http', 'tcp']

class Checker {
  readonly problems: SourceProblem[] = []
  constructor(
    readonly src: YamlSource,
    readonly prefix: PathSegment[],
  ) {}

  fail(path: PathSegment[], message: string): void {
    this.problems.push(this.src.problem([...this.prefix, ...path], message))
  }

  line(path: PathSegment[]): number {
    return this.src.position([...this.prefix, ...path]).line
  }

  unknownKeys(obj: Record<string, unknown>, known: readonly string[], at: PathSegment[], where: string): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) this.fail([...at, key], `unknown key "${key}" in ${where} (expected one of: ${known.join(', ')})`)
    }
  }

  /** A list of strings (a single string is accepted as a list of one). */
  strings(v: unknown, at: PathSegment[], what: string): string[] | undefined {
    const list = typeof v === 'string' ? [v] : v
    if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
      this.fail(at, `${what} must be a non-empty list of strings`)
      return undefined
    }
    return list as string[]
  }

  globs(v: unknown, at: PathSegment[], what: string, spaces = false): string[] | undefined {
    const list = this.strings(v, at, what)
    if (!list) return undefined
    let ok = true
    list.forEach((g, i) => {
      const why = globProblem(g, spaces)
      if (why) {
        this.fail(typeof v === 'string' ? at : [...at, i], `${what}: bad glob "${g}": ${why}`)
        ok = false
      }
    })
    return ok ? list : undefined
  }

  duration(v: unknown, at: PathSegment[], what: string): number | undefined {
    const secs = typeof v === 'string' ? parseDuration(v) : undefined
    if (secs === undefined) this.fail(at, `${what} must be a duration such as 90s, 15m, 8h, 1h30m or 2d (got ${JSON.stringify(v)})`)
    return secs
  }

  bool(v: unknown, at: PathSegment[], what: string): boolean | undefined {
    if (typeof v !== 'boolean') {
      this.fail(at, `${what} must be true or false`)
      return undefined
    }
    return v
  }
}

function validatePolicy(raw: unknown, src: YamlSource, prefix: PathSegment[]): Policy {
  const c = new Checker(src, prefix)
  if (!isObject(raw)) throw configError([src.problem(prefix, 'policy must be a mapping with "version" and "rules"')])
  c.unknownKeys(raw, ['version', 'defaults', 'rules'], [], 'policy')
  if (raw.version !== 1) c.fail(['version'], `version must be 1 (got ${JSON.stringify(raw.version ?? null)})`)

  const policy: Policy = {version: 1, file: src.file, defaults: {unparsable: 'block'}, rules: []}
  if (raw.defaults !== undefined) {
    if (!isObject(raw.defaults)) c.fail(['defaults'], 'defaults must be a mapping')
    else {
      c.unknownKeys(raw.defaults, ['unparsable'], ['defaults'], 'defaults')
      const u = raw.defaults.unparsable
      if (u !== undefined) {
        if (u === 'block' || u === 'allow') policy.defaults.unparsable = u
        else c.fail(['defaults', 'unparsable'], `defaults.unparsable must be "block" or "allow" (got ${JSON.stringify(u)})`)
      }
    }
  }

  const rules = raw.rules ?? []
  if (!Array.isArray(rules)) c.fail(['rules'], 'rules must be a list')
  else {
    const seen = new Map<string, number>()
    rules.forEach((r, i) => {
      // Duplicates are reported even when either rule has other problems.
      if (isObject(r) && typeof r.id === 'string') {
        const first = seen.get(r.id)
        if (first !== undefined) c.fail(['rules', i, 'id'], `duplicate rule id "${r.id}" (first used on line ${first})`)
        else seen.set(r.id, c.line(['rules', i]))
      }
      const rule = validateRule(r, ['rules', i], c)
      if (rule) policy.rules.push(rule)
    })
  }
  if (c.problems.length > 0) {
    const sorted = c.problems.map((p, i) => ({p, i})).sort((a, b) => a.p.line - b.p.line || a.p.column - b.p.column || a.i - b.i)
    throw configError(sorted.map((x) => x.p))
  }
  return policy
}

function validateRule(r: unknown, at: PathSegment[], c: Checker): Rule | undefined {
  if (!isObject(r)) {
    c.fail(at, 'each rule must be a mapping with at least "id" and "effect"')
    return undefined
  }
  const before = c.problems.length
  c.unknownKeys(r, RULE_KEYS, at, 'rule')
  const sub = (k: PathSegment) => [...at, k]

  let id = ''
  if (typeof r.id !== 'string' || !ID_RE.test(r.id)) {
    c.fail(r.id === undefined ? at : sub('id'), 'rule id is required: letters, digits, "-", "_" or "." (max 80), unique in the file')
  } else if (r.id.toLowerCase().startsWith('hoop.')) {
    c.fail(sub('id'), `rule id "${r.id}": ids starting with "hoop." are reserved for hoop's built-in rules (${BUILTIN_RULES.join(', ')})`)
  } else id = r.id
  const where = id ? `rule "${id}"` : 'rule'

  let effect: Effect = 'allow'
  if (typeof r.effect !== 'string' || !(EFFECTS as readonly string[]).includes(r.effect)) {
    c.fail(r.effect === undefined ? at : sub('effect'), `${where}: effect must be one of ${EFFECTS.join(', ')} (got ${JSON.stringify(r.effect ?? null)})`)
  } else effect = r.effect as Effect

  const rule: Rule = {id, effect, at: {file: c.src.file, line: c.line(at)}}
  if (r.description !== undefined && typeof r.description !== 'string') c.fail(sub('description'), `${where}: description must be a string`)
  if (r.message !== undefined) {
    if (typeof r.message !== 'string') c.fail(sub('message'), `${where}: message must be a string`)
    else rule.message = r.message
  }
  if (r.subjects !== undefined) rule.subjects = validateSubjects(r.subjects, sub('subjects'), c, `${where}: subjects`)
  if (r.connections !== undefined) rule.connections = c.globs(r.connections, sub('connections'), `${where}: connections`)
  if (r.types !== undefined) {
    const types = c.strings(r.types, sub('types'), `${where}: types`)
    const bad = types?.filter((t) => !CONNECTION_TYPES.includes(t)) ?? []
    if (bad.length > 0) c.fail(sub('types'), `${where}: unknown connection type "${bad[0]}" (expected ${CONNECTION_TYPES.join(', ')})`)
    else rule.types = types
  }

  const statementRule = effect === 'block' || effect === 'review'
  if (r.match !== undefined) {
    if (!statementRule) c.fail(sub('match'), `${where}: "match" applies to block and review rules only (effect is ${effect}); access rules judge connections, not statements`)
    else rule.match = validateMatch(r.match, sub('match'), c, `${where}: match`)
    if (rule.match && rule.types && isObject(r.match)) {
      const sqlKey = SQL_MATCH_KEYS.find((k) => (r.match as Record<string, unknown>)[k] !== undefined)
      const httpKey = HTTP_MATCH_KEYS.find((k) => (r.match as Record<string, unknown>)[k] !== undefined)
      if (httpKey && !rule.types.includes('http')) {
        c.fail(sub('types'), `${where}: match.${httpKey} judges HTTP requests, but types (${rule.types.join(', ')}) has no http: the rule could never fire`)
      } else if (sqlKey && !rule.types.some((t) => t === 'postgres' || t === 'mysql')) {
        c.fail(sub('types'), `${where}: match.${sqlKey} judges SQL statements, but types (${rule.types.join(', ')}) has neither postgres nor mysql: the rule could never fire`)
      }
    }
  }

  if (r.limits !== undefined) {
    if (effect !== 'allow') c.fail(sub('limits'), `${where}: "limits" applies to allow rules only (effect is ${effect})`)
    else rule.limits = validateLimits(r.limits, sub('limits'), c, `${where}: limits`)
  }

  if (r.waive !== undefined) {
    if (effect !== 'allow') c.fail(sub('waive'), `${where}: "waive" applies to allow rules only (effect is ${effect}): it lifts built-in rules for the subjects the rule grants`)
    else {
      const list = c.strings(r.waive, sub('waive'), `${where}: waive`)
      list?.forEach((w, i) => {
        if (!(BUILTIN_RULES as readonly string[]).includes(w)) c.fail(typeof r.waive === 'string' ? sub('waive') : [...sub('waive'), i], `${where}: waive: unknown built-in rule "${w}" (expected ${BUILTIN_RULES.join(', ')})`)
      })
      if (list && list.every((w) => (BUILTIN_RULES as readonly string[]).includes(w))) rule.waive = list as BuiltinRuleId[]
    }
  }

  if (effect === 'review') {
    if (r.review === undefined) c.fail(sub('effect'), `${where}: effect review needs "review: {approvers: {...}}"`)
    else rule.review = validateReview(r.review, sub('review'), c, `${where}: review`)
  } else if (r.review !== undefined) c.fail(sub('review'), `${where}: "review" applies to review rules only (effect is ${effect})`)

  if (effect === 'mask') {
    if (r.mask === undefined) c.fail(sub('effect'), `${where}: effect mask needs "mask: {columns: [...], entities: [...], fields: [...]}"`)
    else rule.mask = validateMask(r.mask, sub('mask'), c, `${where}: mask`)
  } else if (r.mask !== undefined) c.fail(sub('mask'), `${where}: "mask" applies to mask rules only (effect is ${effect})`)

  return c.problems.length === before ? rule : undefined
}

function validateSubjects(v: unknown, at: PathSegment[], c: Checker, what: string): SubjectMatcher | undefined {
  if (!isObject(v)) {
    c.fail(at, `${what} must be a mapping of ${SUBJECT_KEYS.join(', ')} (omit it to match everyone)`)
    return undefined
  }
  c.unknownKeys(v, SUBJECT_KEYS, at, 'subjects')
  if (!SUBJECT_KEYS.some((k) => v[k] !== undefined)) {
    c.fail(at, `${what} lists nobody; give at least one of ${SUBJECT_KEYS.join(', ')} (omit subjects to match everyone)`)
    return undefined
  }
  const m: SubjectMatcher = {}
  for (const key of ['users', 'groups', 'serviceAccounts', 'clients'] as const) {
    if (v[key] !== undefined) m[key] = c.globs(v[key], [...at, key], `${what}.${key}`)
  }
  if (v.ci !== undefined) {
    const list = Array.isArray(v.ci) ? v.ci : [v.ci]
    const single = !Array.isArray(v.ci)
    const out: CiMatcher[] = []
    list.forEach((entry, i) => {
      const p = single ? [...at, 'ci'] : [...at, 'ci', i]
      if (!isObject(entry)) return c.fail(p, `${what}.ci must be {issuer: URL, claims: {name: glob}} or a list of them`)
      c.unknownKeys(entry, ['issuer', 'claims'], p, 'ci')
      const ci: CiMatcher = {claims: {}}
      if (entry.issuer !== undefined) {
        if (typeof entry.issuer !== 'string' || entry.issuer === '') c.fail([...p, 'issuer'], `${what}.ci.issuer must be the issuer URL`)
        else ci.issuer = entry.issuer
      }
      if (entry.claims !== undefined) {
        if (!isObject(entry.claims)) c.fail([...p, 'claims'], `${what}.ci.claims must be a mapping of claim name to glob`)
        else {
          for (const [name, val] of Object.entries(entry.claims)) {
            const glob = typeof val === 'number' || typeof val === 'boolean' ? String(val) : val
            const why = typeof glob === 'string' ? globProblem(glob) : 'must be a string'
            if (why) c.fail([...p, 'claims', name], `${what}.ci.claims.${name}: bad glob ${JSON.stringify(val)}: ${why}`)
            else ci.claims[name] = glob as string
          }
        }
      }
      if (ci.issuer === undefined && Object.keys(ci.claims).length === 0) {
        c.fail(p, `${what}.ci must name an issuer or at least one claim; an empty ci entry would match every CI identity`)
      }
      out.push(ci)
    })
    m.ci = out
  }
  return m
}

function validateMatch(v: unknown, at: PathSegment[], c: Checker, what: string): StatementMatcher | undefined {
  if (!isObject(v)) {
    c.fail(at, `${what} must be a mapping of ${MATCH_KEYS.join(', ')}`)
    return undefined
  }
  c.unknownKeys(v, MATCH_KEYS, at, 'match')
  const m: StatementMatcher = {}
  if (v.kinds !== undefined) {
    const kinds = c.strings(v.kinds, [...at, 'kinds'], `${what}.kinds`)
    kinds?.forEach((k, i) => {
      if (!(STATEMENT_KINDS as readonly string[]).includes(k)) {
        c.fail(typeof v.kinds === 'string' ? [...at, 'kinds'] : [...at, 'kinds', i], `${what}.kinds: unknown statement kind "${k}" (expected ${STATEMENT_KINDS.join(', ')})`)
      }
    })
    m.kinds = kinds as StatementKind[] | undefined
  }
  if (v.commands !== undefined) m.commands = c.globs(v.commands, [...at, 'commands'], `${what}.commands`, true)
  if (v.tables !== undefined) m.tables = c.globs(v.tables, [...at, 'tables'], `${what}.tables`)
  if (v.functions !== undefined) m.functions = c.globs(v.functions, [...at, 'functions'], `${what}.functions`)
  if (v.settings !== undefined) m.settings = c.globs(v.settings, [...at, 'settings'], `${what}.settings`)
  for (const key of ['writes', 'copyProgram', 'copyFile', 'opaque', 'unparsable'] as const) {
    if (v[key] !== undefined) m[key] = c.bool(v[key], [...at, key], `${what}.${key}`)
  }
  if (v.where !== undefined) {
    if (v.where === 'absent' || v.where === 'present') m.where = v.where
    else c.fail([...at, 'where'], `${what}.where must be "absent" or "present" (got ${JSON.stringify(v.where)})`)
  }
  if (v.methods !== undefined) {
    const list = c.strings(v.methods, [...at, 'methods'], `${what}.methods`)
    list?.forEach((meth, i) => {
      if (!METHOD_RE.test(meth)) c.fail(typeof v.methods === 'string' ? [...at, 'methods'] : [...at, 'methods', i], `${what}.methods: "${meth}" is not an HTTP method (GET, POST, DELETE, ...)`)
    })
    if (list) m.methods = list.map((x) => x.toUpperCase())
  }
  if (v.paths !== undefined) {
    const list = c.globs(v.paths, [...at, 'paths'], `${what}.paths`)
    list?.forEach((g, i) => {
      if (!g.startsWith('/') && !g.startsWith('*')) c.fail(typeof v.paths === 'string' ? [...at, 'paths'] : [...at, 'paths', i], `${what}.paths: "${g}" must start with "/" (paths are matched from the root, e.g. "/v1/users/*")`)
    })
    m.paths = list
  }
  if (v.query !== undefined) m.query = validateQuery(v.query, [...at, 'query'], c, `${what}.query`)
  if (v.body !== undefined) m.body = validateBody(v.body, [...at, 'body'], c, `${what}.body`)
  if (v.bodyUnreadable !== undefined) m.bodyUnreadable = c.bool(v.bodyUnreadable, [...at, 'bodyUnreadable'], `${what}.bodyUnreadable`)
  const sqlKey = SQL_MATCH_KEYS.find((k) => v[k] !== undefined)
  const httpKey = HTTP_MATCH_KEYS.find((k) => v[k] !== undefined)
  if (sqlKey && httpKey) {
    c.fail(at, `${what} mixes the SQL key "${sqlKey}" with the HTTP key "${httpKey}": SQL keys judge statements and HTTP keys judge requests, so the rule could never fire; write two rules`)
  }
  if (Object.keys(v).length === 0) c.fail(at, `${what} is empty; omit "match" to match every statement`)
  return m
}

function validateQuery(v: unknown, at: PathSegment[], c: Checker, what: string): Record<string, string> | undefined {
  if (!isObject(v) || Object.keys(v).length === 0) {
    c.fail(at, `${what} must be a mapping of parameter name to glob ("*": the parameter is present), e.g. {force: "*", dryRun: "false"}`)
    return undefined
  }
  const out: Record<string, string> = {}
  for (const [name, val] of Object.entries(v)) {
    const glob = typeof val === 'number' || typeof val === 'boolean' ? String(val) : val
    const why = typeof glob === 'string' ? globProblem(glob, true) : 'must be a string'
    if (name.trim() === '') c.fail(at, `${what}: a parameter name must not be empty`)
    else if (why) c.fail([...at, name], `${what}.${name}: bad glob ${JSON.stringify(val)}: ${why}`)
    else out[name] = glob as string
  }
  return out
}

function validateBody(v: unknown, at: PathSegment[], c: Checker, what: string): BodyCondition[] | undefined {
  if (!isObject(v) || Object.keys(v).length === 0) {
    c.fail(at, `${what} must be a mapping of JSON path to a value, a glob or {gt, gte, lt, lte}, e.g. {"$.amount": {gt: 1000}, "$.role": admin}`)
    return undefined
  }
  const out: BodyCondition[] = []
  for (const [path, val] of Object.entries(v)) {
    const p = [...at, path]
    const compiled = compileJsonPath(path)
    if (typeof compiled === 'string') {
      c.fail(p, `${what}: bad JSON path "${path}": ${compiled}`)
      continue
    }
    let test: BodyTest | undefined
    if (typeof val === 'string') {
      if (val === '') c.fail(p, `${what}.${path}: an empty glob matches only empty strings; write "*" for "present"`)
      else if (val.length > 1024) c.fail(p, `${what}.${path}: glob is longer than 1024 characters`)
      else test = {kind: 'glob', glob: val}
    } else if (typeof val === 'number' || typeof val === 'boolean' || val === null) {
      if (typeof val === 'number' && !Number.isFinite(val)) c.fail(p, `${what}.${path}: ${val} is not a finite number`)
      else test = {kind: 'equals', value: val}
    } else if (isObject(val)) {
      c.unknownKeys(val, BOUND_KEYS, p, 'body condition')
      const range: Extract<BodyTest, {kind: 'range'}> = {kind: 'range'}
      let ok = true
      for (const k of BOUND_KEYS) {
        if (val[k] === undefined) continue
        if (typeof val[k] !== 'number' || !Number.isFinite(val[k])) {
          c.fail([...p, k], `${what}.${path}.${k} must be a number`)
          ok = false
        } else range[k] = val[k]
      }
      if (!BOUND_KEYS.some((k) => val[k] !== undefined) && Object.keys(val).every((k) => (BOUND_KEYS as readonly string[]).includes(k))) {
        c.fail(p, `${what}.${path} needs at least one of gt, gte, lt, lte`)
      }
      if (!BOUND_KEYS.some((k) => val[k] !== undefined)) ok = false
      const low = range.gt ?? range.gte
      const high = range.lt ?? range.lte
      if (ok && low !== undefined && high !== undefined && (low > high || (low === high && (range.gt !== undefined || range.lt !== undefined)))) {
        c.fail(p, `${what}.${path}: no number is above ${low} and below ${high}; the condition could never hold`)
        ok = false
      }
      if (ok) test = range
    } else {
      c.fail(p, `${what}.${path} must be a value (number, true/false, null), a glob string, or {gt, gte, lt, lte} (a list is not supported: use a glob or one rule per value)`)
    }
    if (test) out.push({path, segments: compiled.segments, test})
  }
  return out
}

function validateLimits(v: unknown, at: PathSegment[], c: Checker, what: string): Limits | undefined {
  if (!isObject(v)) {
    c.fail(at, `${what} must be a mapping: {readOnly: true, maxSessionDuration: 8h}`)
    return undefined
  }
  c.unknownKeys(v, ['readOnly', 'maxSessionDuration'], at, 'limits')
  const limits: Limits = {readOnly: false}
  if (v.readOnly !== undefined) limits.readOnly = c.bool(v.readOnly, [...at, 'readOnly'], `${what}.readOnly`) ?? false
  if (v.maxSessionDuration !== undefined) {
    limits.maxSessionSeconds = c.duration(v.maxSessionDuration, [...at, 'maxSessionDuration'], `${what}.maxSessionDuration`)
  }
  return limits
}

function validateReview(v: unknown, at: PathSegment[], c: Checker, what: string): ReviewSpec | undefined {
  if (!isObject(v)) {
    c.fail(at, `${what} must be a mapping: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}`)
    return undefined
  }
  c.unknownKeys(v, ['approvers', 'approvals', 'ttl', 'scope'], at, 'review')
  let approvers: SubjectMatcher | undefined
  if (v.approvers === undefined) c.fail(at, `${what} needs approvers (e.g. approvers: {groups: [dba]})`)
  else approvers = validateSubjects(v.approvers, [...at, 'approvers'], c, `${what}.approvers`)
  let approvals = 1
  if (v.approvals !== undefined) {
    if (typeof v.approvals !== 'number' || !Number.isInteger(v.approvals) || v.approvals < 1 || v.approvals > 10) {
      c.fail([...at, 'approvals'], `${what}.approvals must be a whole number from 1 to 10`)
    } else approvals = v.approvals
  }
  let ttlSeconds = 3600
  if (v.ttl !== undefined) ttlSeconds = c.duration(v.ttl, [...at, 'ttl'], `${what}.ttl`) ?? ttlSeconds
  let scope: ReviewSpec['scope'] = 'statement'
  if (v.scope !== undefined) {
    if ((REVIEW_SCOPES as readonly unknown[]).includes(v.scope)) scope = v.scope as ReviewScope
    else c.fail([...at, 'scope'], `${what}.scope must be one of ${REVIEW_SCOPES.join(', ')} (got ${JSON.stringify(v.scope)})`)
  }
  return approvers ? {approvers, approvals, ttlSeconds, scope} : undefined
}

function validateMask(v: unknown, at: PathSegment[], c: Checker, what: string): Rule['mask'] {
  if (!isObject(v)) {
    c.fail(at, `${what} must be a mapping: {columns: [...], entities: [...], fields: [...]}`)
    return undefined
  }
  c.unknownKeys(v, ['columns', 'entities', 'fields'], at, 'mask')
  if (v.columns === undefined && v.entities === undefined && v.fields === undefined) {
    c.fail(at, `${what} needs columns, entities or fields (or several)`)
    return undefined
  }
  const columns: ColumnPattern[] = []
  if (v.columns !== undefined) {
    const list = c.strings(v.columns, [...at, 'columns'], `${what}.columns`) ?? []
    list.forEach((text, i) => {
      const p = typeof v.columns === 'string' ? [...at, 'columns'] : [...at, 'columns', i]
      const col = parseColumnPattern(text)
      if (typeof col === 'string') c.fail(p, `${what}.columns: bad column pattern "${text}": ${col}`)
      else columns.push(col)
    })
  }
  const entities: EntityType[] = []
  if (v.entities !== undefined) {
    const list = c.strings(v.entities, [...at, 'entities'], `${what}.entities`) ?? []
    list.forEach((e, i) => {
      if ((ENTITY_TYPES as readonly string[]).includes(e)) entities.push(e as EntityType)
      else c.fail(typeof v.entities === 'string' ? [...at, 'entities'] : [...at, 'entities', i], `${what}.entities: unknown entity type "${e}" (expected ${ENTITY_TYPES.join(', ')})`)
    })
  }
  const fields: string[] = []
  if (v.fields !== undefined) {
    const list = c.strings(v.fields, [...at, 'fields'], `${what}.fields`) ?? []
    list.forEach((text, i) => {
      const compiled = compileJsonPath(text)
      if (typeof compiled === 'string') c.fail(typeof v.fields === 'string' ? [...at, 'fields'] : [...at, 'fields', i], `${what}.fields: bad JSON path "${text}": ${compiled}`)
      else fields.push(text)
    })
  }
  return {columns, entities, fields}
}

/** "schema.table.column", "table.column" or "column"; each part a glob. Returns a reason when bad. */
function parseColumnPattern(text: string): ColumnPattern | string {
  const parts = text.split('.')
  if (parts.length > 3) return 'expected column, table.column or schema.table.column'
  for (const part of parts) {
    const why = globProblem(part)
    if (why) return `each part ${why}`
  }
  const [column, table = '*', schema = '*'] = [...parts].reverse()
  return {schema, table, column, text}
}
