// Gateway-side JWT verification for every issuer the gateway trusts (login OIDC issuer, client-
// credentials issuer, CI workload issuers). Keys come from the issuer's JWKS, found through OIDC
// discovery, cached, and re-fetched when a token names an unknown `kid` (jose's remote key set,
// with a cooldown so a flood of bad kids cannot hammer the issuer). The allow-list is checked on
// the header before any key is looked up, so `alg: none` and HS* tokens never reach a key.
// RFC 7519 (JWT), RFC 8725 (JWT best practices), OpenID Connect Discovery 1.0.
import {createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey} from 'jose'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {IssuerSettings} from './auth-config.js'

export interface VerifiedToken {
  payload: JWTPayload & Record<string, unknown>
  alg: string
}

const reject = (msg: string) => new HoopError('TOKEN_REJECTED', msg)

/** Discovers an issuer's JWKS once and keeps the remote key set (jose caches and re-fetches it). */
export class IssuerKeys {
  private keySet?: Promise<JWTVerifyGetKey>

  constructor(
    readonly issuer: string,
    private readonly opts: {cooldownMs?: number; cacheMaxAgeMs?: number; timeoutMs?: number} = {},
  ) {}

  private async discover(): Promise<JWTVerifyGetKey> {
    const url = `${this.issuer}/.well-known/openid-configuration`
    let meta: {issuer?: unknown; jwks_uri?: unknown}
    try {
      const res = await fetch(url, {signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000), headers: {accept: 'application/json'}})
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      meta = (await res.json()) as typeof meta
    } catch (err) {
      throw reject(`cannot verify token: discovery at ${url} failed (${errorMessage(err)})`)
    }
    // OIDC Discovery §4.3: the issuer in the document must be the one we asked for.
    if (typeof meta.issuer !== 'string' || meta.issuer.replace(/\/+$/, '') !== this.issuer) {
      throw reject(`cannot verify token: discovery document at ${url} names issuer "${String(meta.issuer)}", expected "${this.issuer}"`)
    }
    if (typeof meta.jwks_uri !== 'string') throw reject(`cannot verify token: issuer ${this.issuer} publishes no jwks_uri`)
    return createRemoteJWKSet(new URL(meta.jwks_uri), {
      cooldownDuration: this.opts.cooldownMs ?? 30_000,
      cacheMaxAge: this.opts.cacheMaxAgeMs ?? 10 * 60_000,
      timeoutDuration: this.opts.timeoutMs ?? 5000,
    })
  }

  getKeySet(): Promise<JWTVerifyGetKey> {
    if (!this.keySet) {
      this.keySet = this.discover()
      // A failed discovery is retried on the next token rather than cached forever.
      this.keySet.catch(() => (this.keySet = undefined))
    }
    return this.keySet
  }
}

/** Reads `iss` without verifying anything, only to pick which issuer's rules to apply. */
export function peekIssuer(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss
    return typeof iss === 'string' ? iss.replace(/\/+$/, '') : undefined
  } catch {
    return undefined
  }
}

export function isJwtShaped(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)
}

/** Verifies signature, alg, iss, aud, exp, nbf (with clock skew). Throws TOKEN_REJECTED naming the rule broken. */
export async function verifyJwt(token: string, settings: IssuerSettings, keys: IssuerKeys, now?: Date): Promise<VerifiedToken> {
  let header: ReturnType<typeof decodeProtectedHeader>
  try {
    header = decodeProtectedHeader(token)
  } catch {
    throw reject('token is not a well-formed JWT')
  }
  const alg = String(header.alg)
  if (!settings.algorithms.includes(alg)) {
    throw reject(`token signature algorithm "${alg}" is not allowed for ${settings.issuer} (allowed: ${settings.algorithms.join(', ')})`)
  }
  const getKey = await keys.getKeySet()
  try {
    const {payload} = await jwtVerify(token, getKey, {
      issuer: settings.issuer,
      audience: settings.audience,
      algorithms: settings.algorithms,
      clockTolerance: settings.clockSkew,
      requiredClaims: ['exp', 'iss', 'aud'],
      ...(now ? {currentDate: now} : {}),
    })
    return {payload: payload as VerifiedToken['payload'], alg}
  } catch (err) {
    throw mapJoseError(err, settings, header.kid)
  }
}

function mapJoseError(err: unknown, s: IssuerSettings, kid: string | undefined): HoopError {
  if (err instanceof HoopError) return err
  if (err instanceof joseErrors.JWTExpired) {
    const exp = Number(err.payload.exp)
    return reject(`token expired at ${new Date(exp * 1000).toISOString()} (clock skew allowed: ${s.clockSkew}s)`)
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return reject(`token is not valid before ${new Date(Number(err.payload.nbf) * 1000).toISOString()} (clock skew allowed: ${s.clockSkew}s)`)
      case 'iat':
        return reject('token is issued in the future')
      case 'iss':
        return reject(`token issuer "${String(err.payload.iss)}" is not "${s.issuer}"`)
      case 'aud':
        return reject(`token audience ${JSON.stringify(err.payload.aud)} does not include "${s.audience}"`)
      default:
        return reject(`token claim "${err.claim}" is invalid: ${err.reason}`)
    }
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) {
    return reject(`token key id ${kid ? `"${kid}"` : '(none)'} is not among the keys of ${s.issuer}`)
  }
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return reject(`token key id is ambiguous in the keys of ${s.issuer}`)
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return reject(`token signature does not verify against the keys of ${s.issuer}`)
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return reject(`token signature algorithm is not allowed for ${s.issuer}`)
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return reject(`cannot verify token: the key set of ${s.issuer} could not be fetched`)
  }
  if (err instanceof joseErrors.JOSEError) return reject(`token is invalid: ${err.message}`)
  return reject(`cannot verify token: ${errorMessage(err)}`)
}
