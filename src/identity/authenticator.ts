// Turns a bearer into a verified Identity. Gateway keys (`hoop_sa_…`) go to the store; JWTs are
// routed by their (unverified) `iss` to the one trusted issuer that may have signed them, then
// fully verified there. Login tokens become users, client-credential tokens clients, and CI
// tokens are mapped by the first workload rule whose claims all match; no match, no identity.
import {HoopError} from '../shared/errors.js'
import type {Store} from '../store/types.js'
import type {AuthConfig, ClaimMatcher, ClientCredentialsSettings, IssuerSettings, OidcSettings, WorkloadSettings} from './auth-config.js'
import {IssuerKeys, isJwtShaped, peekIssuer, verifyJwt, type VerifiedToken} from './jwt.js'
import {authenticateServiceKey, looksLikeServiceKey} from './service-keys.js'
import type {Authenticator, Identity} from './types.js'

type Role =
  | {kind: 'user'; settings: OidcSettings}
  | {kind: 'client'; settings: ClientCredentialsSettings}
  | {kind: 'ci'; settings: WorkloadSettings}

/** Claims that describe the token itself, not the workload; left out of Identity.claims. */
const TOKEN_CLAIMS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'jti', 'azp', 'scope', 'client_id', 'at_hash', 'nonce'])

interface JwtAuthenticatorOptions {
  store?: Store
  /** For tests: the time tokens are judged at. */
  now?: () => Date
  jwksCooldownMs?: number
}

export function createAuthenticator(auth: AuthConfig, opts: JwtAuthenticatorOptions = {}): Authenticator {
  const roles = new Map<string, Role[]>()
  const keys = new Map<string, IssuerKeys>()
  const add = (role: Role) => {
    const iss = role.settings.issuer
    roles.set(iss, [...(roles.get(iss) ?? []), role])
    if (!keys.has(iss)) keys.set(iss, new IssuerKeys(iss, {cooldownMs: opts.jwksCooldownMs}))
  }
  if (auth.oidc) add({kind: 'user', settings: auth.oidc})
  if (auth.clientCredentials) add({kind: 'client', settings: auth.clientCredentials})
  for (const w of auth.workloads) add({kind: 'ci', settings: w})

  return {
    async authenticate(bearer: string): Promise<Identity> {
      if (looksLikeServiceKey(bearer)) {
        if (!opts.store) throw new HoopError('TOKEN_REJECTED', 'service-account keys are not accepted here')
        return authenticateServiceKey(opts.store, bearer, 'sa')
      }
      if (!isJwtShaped(bearer)) throw new HoopError('TOKEN_REJECTED', 'token is neither a service-account key nor a JWT')
      const iss = peekIssuer(bearer)
      if (!iss) throw new HoopError('TOKEN_REJECTED', 'token has no "iss" claim')
      const candidates = roles.get(iss)
      if (!candidates) {
        const trusted = [...roles.keys()]
        throw new HoopError('TOKEN_REJECTED', `token issuer "${iss}" is not trusted (trusted: ${trusted.length ? trusted.join(', ') : 'none configured'})`)
      }
      const now = opts.now?.()
      let firstError: HoopError | undefined
      // Several roles may share one issuer (login + client credentials, or CI with two audiences);
      // a token whose audience fits none of them is refused with the first role's reason.
      for (const role of candidates) {
        let verified: VerifiedToken
        try {
          verified = await verifyJwt(bearer, role.settings, keys.get(iss)!, now)
        } catch (err) {
          firstError ??= err as HoopError
          if (err instanceof HoopError && /audience/.test(err.message)) continue
          throw err
        }
        return toIdentity(role, verified, auth)
      }
      throw firstError ?? new HoopError('TOKEN_REJECTED', 'token rejected')
    },
  }
}

function toIdentity(role: Role, v: VerifiedToken, auth: AuthConfig): Identity {
  const p = v.payload
  const base = {issuer: role.settings.issuer, expiresAt: typeof p.exp === 'number' ? p.exp : undefined}
  switch (role.kind) {
    case 'user': {
      const cc = auth.clientCredentials
      if (cc && cc.issuer === role.settings.issuer && looksLikeClientToken(p)) return clientIdentity(cc, v)
      if (typeof p.sub !== 'string' || !p.sub) throw new HoopError('TOKEN_REJECTED', 'login token has no "sub" claim')
      const email = typeof p.email === 'string' ? p.email : undefined
      const preferred = typeof p.preferred_username === 'string' ? p.preferred_username : undefined
      return {kind: 'user', subject: p.sub, name: email ?? preferred ?? p.sub, ...(email ? {email} : {}), groups: readGroups(p, role.settings), ...base}
    }
    case 'client':
      return clientIdentity(role.settings, v)
    case 'ci':
      return workloadIdentity(role.settings, v)
    default: {
      const never: never = role
      throw new HoopError('INTERNAL', `unknown role ${String(never)}`)
    }
  }
}

/** Client-credential tokens carry no end user: `sub` is the client itself, or `gty` says so (Auth0). */
function looksLikeClientToken(p: VerifiedToken['payload']): boolean {
  const client = p.client_id ?? p.azp
  return p.gty === 'client-credentials' || p.sub === undefined || (typeof client === 'string' && p.sub === client)
}

function clientIdentity(s: ClientCredentialsSettings, v: VerifiedToken): Identity {
  const p = v.payload
  const id = [p.client_id, p.azp, p.sub].find((x): x is string => typeof x === 'string' && x.length > 0)
  if (!id) throw new HoopError('TOKEN_REJECTED', 'client-credentials token names no client (client_id, azp or sub)')
  let groups = readGroups(p, s)
  if (s.clients) {
    const entry = s.clients[id]
    if (!entry) throw new HoopError('TOKEN_REJECTED', `client "${id}" is not listed in auth.clientCredentials.clients`)
    groups = [...new Set([...entry.groups, ...groups])]
  }
  return {kind: 'client', subject: `client:${id}`, name: id, groups, issuer: s.issuer, expiresAt: typeof p.exp === 'number' ? p.exp : undefined}
}

function workloadIdentity(s: WorkloadSettings, v: VerifiedToken): Identity {
  const p = v.payload
  const rule = s.rules.find((r) => Object.entries(r.claims).every(([name, m]) => claimMatches(readClaim(p, name), m)))
  const claims: Record<string, string> = {}
  for (const [k, val] of Object.entries(p)) if (!TOKEN_CLAIMS.has(k) && typeof val === 'string') claims[k] = val
  if (!rule) {
    const shown = [...new Set(s.rules.flatMap((r) => Object.keys(r.claims)))]
      .map((k) => `${k}=${JSON.stringify(readClaim(p, k) ?? null)}`)
      .join(', ')
    throw new HoopError('TOKEN_REJECTED', `CI token from ${s.issuer} matches no workload rule (${shown})`)
  }
  return {
    kind: 'ci',
    subject: rule.subject,
    name: rule.id,
    groups: [...new Set([...rule.groups])],
    issuer: s.issuer,
    expiresAt: typeof p.exp === 'number' ? p.exp : undefined,
    claims: {...claims, rule: rule.id},
  }
}

function readClaim(p: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(p, path)) return p[path]
  let cur: unknown = p
  for (const seg of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, seg)) return undefined
    cur = (cur as Record<string, unknown>)[seg]
  }
  return cur
}

function readGroups(p: Record<string, unknown>, s: IssuerSettings): string[] {
  const v = readClaim(p, s.groupsClaim)
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string')
  if (typeof v === 'string' && v) return [v]
  return []
}

/** Exact match, or `*` matching any run of characters; a list matches if any entry does. */
export function claimMatches(value: unknown, m: ClaimMatcher): boolean {
  if (typeof value !== 'string') return false
  const patterns = Array.isArray(m) ? m : [m]
  return patterns.some((pat) => {
    if (!pat.includes('*')) return value === pat
    const re = new RegExp('^' + pat.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
    return re.test(value)
  })
}
