// Validates the gateway config's `auth:` section (OIDC login issuer, client-credentials issuer,
// trusted CI workload issuers) and `dev:` section (demo users for the embedded dev IdP).
// Errors carry file:line:col through the config's YamlSource, like the rest of the config.
import {configError, type PathSegment, type SourceProblem, YamlSource} from '../shared/yaml-source.js'
import {isObject, type GatewayConfig} from '../shared/config.js'

/** JWS algorithms a token may be signed with. Symmetric (HS*) and `none` are never accepted. */
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const
const DEFAULT_ALGORITHMS = ['RS256', 'ES256', 'EdDSA']
const DEFAULT_CLOCK_SKEW = 60
export const DEFAULT_SCOPES = ['openid', 'email', 'profile', 'offline_access']

/** Settings shared by every issuer the gateway trusts. */
export interface IssuerSettings {
  issuer: string
  audience: string
  algorithms: string[]
  /** Seconds of tolerance for exp / nbf / iat. */
  clockSkew: number
  /** Claim holding the groups list; a dotted path reaches into objects (`realm_access.roles`). */
  groupsClaim: string
}

export interface OidcSettings extends IssuerSettings {
  clientId: string
  scopes: string[]
  /** The web console's client (authorization code + PKCE, redirect URI <consoleUrl>/console/callback); default clientId. */
  consoleClientId?: string
  /** The address browsers use for the gateway (https behind a TLS proxy); default the gateway's own URL. */
  consoleUrl?: string
}

export interface ClientCredentialsSettings extends IssuerSettings {
  scopes: string[]
  /** When present, only these client ids are accepted, with the groups given here. */
  clients?: Record<string, {groups: string[]}>
}

/** A claim matches a string exactly, `*` as a wildcard inside it, or any of a list. */
export type ClaimMatcher = string | string[]

interface WorkloadRule {
  id: string
  claims: Record<string, ClaimMatcher>
  subject: string
  groups: string[]
}

export interface WorkloadSettings extends IssuerSettings {
  rules: WorkloadRule[]
}

export interface AuthConfig {
  oidc?: OidcSettings
  clientCredentials?: ClientCredentialsSettings
  workloads: WorkloadSettings[]
}

export interface DevUser {
  email: string
  name: string
  groups: string[]
}

interface DevConfig {
  users: DevUser[]
  /** Access-token lifetime in seconds for the dev IdP. */
  accessTokenTtl: number
}

export const DEFAULT_DEV_USERS: DevUser[] = [
  {email: 'engineer@example.com', name: 'Erin Engineer', groups: ['engineering']},
  {email: 'approver@example.com', name: 'Alex Approver', groups: ['dba', 'approvers']},
  {email: 'admin@example.com', name: 'Ada Admin', groups: ['admins', 'auditors']},
]

type Fail = (path: PathSegment[], msg: string) => void

function problemCollector(cfg: Pick<GatewayConfig, 'source' | 'file'>): {problems: SourceProblem[]; fail: Fail} {
  const problems: SourceProblem[] = []
  const src = cfg.source ?? YamlSource.parse('{}', cfg.file ?? '<config>')
  return {problems, fail: (path, msg) => problems.push(src.problem(path, msg))}
}

/** Parses "60s", "5m", "1h", "500ms" or a number of seconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v
  if (typeof v !== 'string') return undefined
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(v.trim())
  if (!m) return undefined
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return unit === 'ms' ? n / 1000 : unit === 's' ? n : unit === 'm' ? n * 60 : n * 3600
}

/** True for http URLs on a loopback host, the only place plain HTTP issuers are accepted. */
export function isLoopbackUrl(url: string): boolean {
  try {
    const u = new URL(url)
    return ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(u.hostname)
  } catch {
    return false
  }
}

function checkIssuerUrl(v: unknown, at: PathSegment[], fail: Fail): string | undefined {
  if (typeof v !== 'string' || v.length === 0) {
    fail(at, 'issuer must be the issuer URL, e.g. https://id.example.com')
    return undefined
  }
  let u: URL
  try {
    u = new URL(v)
  } catch {
    fail(at, `issuer "${v}" is not a URL`)
    return undefined
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackUrl(v))) {
    fail(at, `issuer "${v}" must use https (plain http is accepted only on 127.0.0.1/localhost)`)
    return undefined
  }
  return v.replace(/\/+$/, '')
}

function stringList(v: unknown, at: PathSegment[], fail: Fail, what: string): string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0)) {
    fail(at, `${what} must be a list of strings`)
    return undefined
  }
  return v as string[]
}

function unknownKeys(obj: Record<string, unknown>, known: string[], at: PathSegment[], fail: Fail, where: string): void {
  for (const key of Object.keys(obj)) if (!known.includes(key)) fail([...at, key], `unknown key "${key}" in ${where}`)
}

function issuerSettings(raw: Record<string, unknown>, at: PathSegment[], fail: Fail, audienceRequired: boolean): IssuerSettings | undefined {
  const issuer = checkIssuerUrl(raw.issuer, [...at, 'issuer'], fail)
  let audience = ''
  if (typeof raw.audience === 'string' && raw.audience.length > 0) audience = raw.audience
  else if (raw.audience !== undefined || audienceRequired) {
    fail([...at, 'audience'], 'audience must be the value the gateway expects in the token\'s "aud" claim')
  }
  const algorithms = stringList(raw.algorithms, [...at, 'algorithms'], fail, 'algorithms') ?? DEFAULT_ALGORITHMS
  for (const [i, alg] of algorithms.entries()) {
    if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
      fail([...at, 'algorithms', i], `algorithm "${alg}" is not allowed; use asymmetric ones: ${ASYMMETRIC_ALGORITHMS.join(', ')}`)
    }
  }
  let clockSkew = DEFAULT_CLOCK_SKEW
  if (raw.clockSkew !== undefined) {
    const d = parseDuration(raw.clockSkew)
    if (d === undefined || d > 300) fail([...at, 'clockSkew'], 'clockSkew must be a duration up to 5m, e.g. 60s')
    else clockSkew = d
  }
  let groupsClaim = 'groups'
  if (raw.groupsClaim !== undefined) {
    if (typeof raw.groupsClaim !== 'string' || !raw.groupsClaim) fail([...at, 'groupsClaim'], 'groupsClaim must be a claim name')
    else groupsClaim = raw.groupsClaim
  }
  if (!issuer) return undefined
  return {issuer, audience, algorithms, clockSkew, groupsClaim}
}

/** Validates `auth:` of the gateway config. Throws CONFIG_INVALID listing every problem with its line. */
export function parseAuthConfig(cfg: Pick<GatewayConfig, 'auth' | 'source' | 'file'>): AuthConfig {
  const {problems, fail} = problemCollector(cfg)
  const out: AuthConfig = {workloads: []}
  const raw = cfg.auth
  if (raw === undefined || raw === null) return out
  const at: PathSegment[] = ['auth']
  if (!isObject(raw)) throw configError([...problems, (cfg.source ?? YamlSource.parse('{}', '<config>')).problem(at, 'auth must be a mapping')])
  unknownKeys(raw, ['oidc', 'clientCredentials', 'workloads'], at, fail, 'auth')

  if (raw.oidc !== undefined) {
    const o = raw.oidc
    const p = [...at, 'oidc']
    if (!isObject(o)) fail(p, 'auth.oidc must be a mapping with issuer, clientId, audience')
    else {
      unknownKeys(o, ['issuer', 'clientId', 'consoleClientId', 'consoleUrl', 'audience', 'scopes', 'groupsClaim', 'algorithms', 'clockSkew'], p, fail, 'auth.oidc')
      const base = issuerSettings(o, p, fail, true)
      if (typeof o.clientId !== 'string' || !o.clientId) fail([...p, 'clientId'], 'clientId must be the public client id the CLI uses for the device flow')
      const scopes = stringList(o.scopes, [...p, 'scopes'], fail, 'scopes') ?? DEFAULT_SCOPES
      if (!scopes.includes('openid')) fail([...p, 'scopes'], 'scopes must include "openid"')
      if (o.consoleClientId !== undefined && (typeof o.consoleClientId !== 'string' || !o.consoleClientId)) fail([...p, 'consoleClientId'], 'consoleClientId must be the client id the web console logs in with')
      const consoleClientId = typeof o.consoleClientId === 'string' && o.consoleClientId ? {consoleClientId: o.consoleClientId} : {}
      let consoleUrl: {consoleUrl?: string} = {}
      if (o.consoleUrl !== undefined) {
        // Same rule as issuers: the console's cookies and redirects need https off loopback.
        const u = checkIssuerUrl(o.consoleUrl, [...p, 'consoleUrl'], (at, msg) => fail(at, msg.replace(/^issuer/, 'consoleUrl')))
        if (u) consoleUrl = {consoleUrl: u}
      }
      if (base && typeof o.clientId === 'string') out.oidc = {...base, clientId: o.clientId, scopes, ...consoleClientId, ...consoleUrl}
    }
  }

  if (raw.clientCredentials !== undefined) {
    const c = raw.clientCredentials
    const p = [...at, 'clientCredentials']
    if (!isObject(c)) fail(p, 'auth.clientCredentials must be a mapping with issuer and audience')
    else {
      unknownKeys(c, ['issuer', 'audience', 'scopes', 'groupsClaim', 'algorithms', 'clockSkew', 'clients'], p, fail, 'auth.clientCredentials')
      const base = issuerSettings(c, p, fail, true)
      const scopes = stringList(c.scopes, [...p, 'scopes'], fail, 'scopes') ?? []
      let clients: Record<string, {groups: string[]}> | undefined
      if (c.clients !== undefined) {
        if (!isObject(c.clients)) fail([...p, 'clients'], 'clients must map a client id to {groups: [...]}')
        else {
          clients = {}
          for (const [id, v] of Object.entries(c.clients)) {
            const groups = isObject(v) ? stringList(v.groups ?? [], [...p, 'clients', id, 'groups'], fail, 'groups') : undefined
            if (!isObject(v)) fail([...p, 'clients', id], 'each client must be {groups: [...]}')
            else if (groups) clients[id] = {groups}
          }
        }
      }
      if (base) out.clientCredentials = {...base, scopes, ...(clients ? {clients} : {})}
    }
  }

  if (raw.workloads !== undefined) {
    const p = [...at, 'workloads']
    if (!Array.isArray(raw.workloads)) fail(p, 'auth.workloads must be a list of trusted CI issuers')
    else {
      const ruleIds = new Set<string>()
      raw.workloads.forEach((w, i) => {
        const wp = [...p, i]
        if (!isObject(w)) return fail(wp, 'each workload issuer must be a mapping with issuer, audience and rules')
        unknownKeys(w, ['issuer', 'audience', 'rules', 'groupsClaim', 'algorithms', 'clockSkew'], wp, fail, 'a workload issuer')
        const base = issuerSettings(w, wp, fail, true)
        const rules: WorkloadRule[] = []
        if (!Array.isArray(w.rules) || w.rules.length === 0) fail([...wp, 'rules'], 'rules must be a non-empty list; a CI token that matches no rule is refused')
        else {
          w.rules.forEach((r, j) => {
            const rp = [...wp, 'rules', j]
            if (!isObject(r)) return fail(rp, 'each rule must be a mapping with id, claims, subject, groups')
            unknownKeys(r, ['id', 'claims', 'subject', 'groups'], rp, fail, 'a workload rule')
            let ok = true
            if (typeof r.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$/.test(r.id)) {
              fail([...rp, 'id'], 'id must be letters, digits, "-", "_", "." or ":" (max 63)')
              ok = false
            } else if (ruleIds.has(r.id)) {
              fail([...rp, 'id'], `duplicate workload rule id "${r.id}"`)
              ok = false
            } else ruleIds.add(r.id)
            const claims: Record<string, ClaimMatcher> = {}
            if (!isObject(r.claims) || Object.keys(r.claims).length === 0) {
              fail([...rp, 'claims'], 'claims must map at least one claim name to the value it must have (e.g. repository: acme/api)')
              ok = false
            } else {
              for (const [name, v] of Object.entries(r.claims)) {
                if (typeof v === 'string' && v.length > 0) claims[name] = v
                else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x.length > 0)) claims[name] = v as string[]
                else {
                  fail([...rp, 'claims', name], `claim "${name}" must be a non-empty string or list of strings`)
                  ok = false
                }
              }
            }
            if (typeof r.subject !== 'string' || !r.subject) {
              fail([...rp, 'subject'], 'subject must name the identity this rule maps to, e.g. ci:acme-api-main')
              ok = false
            }
            const groups = stringList(r.groups ?? [], [...rp, 'groups'], fail, 'groups')
            if (ok && groups) rules.push({id: r.id as string, claims, subject: r.subject as string, groups})
          })
        }
        if (base) out.workloads.push({...base, rules})
      })
    }
  }
  if (problems.length > 0) throw configError(problems)
  return out
}

/** Validates `dev:` of the gateway config (demo users for `hoop gateway --dev`). */
export function parseDevConfig(cfg: Pick<GatewayConfig, 'dev' | 'source' | 'file'>): DevConfig {
  const {problems, fail} = problemCollector(cfg)
  const out: DevConfig = {users: DEFAULT_DEV_USERS, accessTokenTtl: 600}
  const raw = cfg.dev
  if (raw === undefined || raw === null) return out
  const at: PathSegment[] = ['dev']
  if (!isObject(raw)) {
    fail(at, 'dev must be a mapping, e.g. {users: [{email, groups}]}')
    throw configError(problems)
  }
  unknownKeys(raw, ['users', 'accessTokenTtl'], at, fail, 'dev')
  if (raw.users !== undefined) {
    if (!Array.isArray(raw.users) || raw.users.length === 0) fail([...at, 'users'], 'dev.users must be a non-empty list of {email, name?, groups}')
    else {
      const users: DevUser[] = []
      const seen = new Set<string>()
      raw.users.forEach((u, i) => {
        const p = [...at, 'users', i]
        if (!isObject(u)) return fail(p, 'each dev user must be {email, name?, groups}')
        unknownKeys(u, ['email', 'name', 'groups'], p, fail, 'a dev user')
        if (typeof u.email !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(u.email)) return fail([...p, 'email'], 'email must be an e-mail address')
        if (seen.has(u.email)) return fail([...p, 'email'], `duplicate dev user "${u.email}"`)
        seen.add(u.email)
        if (u.name !== undefined && typeof u.name !== 'string') fail([...p, 'name'], 'name must be a string')
        const groups = stringList(u.groups ?? [], [...p, 'groups'], fail, 'groups')
        if (groups) users.push({email: u.email, name: typeof u.name === 'string' ? u.name : u.email, groups})
      })
      out.users = users
    }
  }
  if (raw.accessTokenTtl !== undefined) {
    const d = parseDuration(raw.accessTokenTtl)
    if (d === undefined || d < 1 || d > 86400) fail([...at, 'accessTokenTtl'], 'accessTokenTtl must be a duration between 1s and 24h')
    else out.accessTokenTtl = Math.round(d)
  }
  if (problems.length > 0) throw configError(problems)
  return out
}
