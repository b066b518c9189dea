// The CLI's side of OAuth/OIDC, on openid-client 6: read the gateway's public auth settings, run the
// device authorization grant (RFC 8628), refresh, revoke (RFC 7009), and client credentials
// (RFC 6749 §4.4). Plain-http issuers are accepted only on loopback (the dev IdP).
import * as oidc from 'openid-client'
import {decodeJwt} from 'jose'
import {errorMessage, HoopError} from '../shared/errors.js'
import {isLoopbackUrl} from './auth-config.js'
import type {LoginProfile} from './token-store.js'

/** The `auth` member of GET /.well-known/hoop-configuration (see PublicAuthSettings). */
interface GatewayAuthSettings {
  issuer?: string
  clientId?: string
  audience?: string
  scopes?: string[]
  clientCredentials?: {issuer: string; audience: string; scopes?: string[]}
  dev?: boolean
}

export async function fetchGatewaySettings(gateway: string): Promise<GatewayAuthSettings> {
  let res: Response
  try {
    res = await fetch(`${gateway}/.well-known/hoop-configuration`, {signal: AbortSignal.timeout(10_000), headers: {accept: 'application/json'}})
  } catch (err) {
    const cause = (err as {cause?: {code?: string}}).cause?.code ?? errorMessage(err)
    throw new HoopError('GATEWAY_UNREACHABLE', `cannot reach gateway ${gateway}: ${cause}`)
  }
  if (!res.ok) throw new HoopError('GATEWAY_UNREACHABLE', `gateway ${gateway} answered ${res.status} for /.well-known/hoop-configuration`)
  let body: {auth?: GatewayAuthSettings} & GatewayAuthSettings
  try {
    body = (await res.json()) as typeof body
  } catch {
    throw new HoopError('GATEWAY_UNREACHABLE', `gateway ${gateway} sent a configuration document that is not JSON`)
  }
  return body.auth ?? body
}

const configs = new Map<string, Promise<oidc.Configuration>>()

/** OIDC discovery for `issuer`, cached per process. A client secret makes it a confidential client. */
function issuerConfig(issuer: string, clientId: string, clientSecret?: string): Promise<oidc.Configuration> {
  const key = `${issuer}\n${clientId}\n${clientSecret ?? ''}`
  let p = configs.get(key)
  if (!p) {
    const insecure = new URL(issuer).protocol === 'http:'
    if (insecure && !isLoopbackUrl(issuer)) {
      return Promise.reject(new HoopError('LOGIN_FAILED', `issuer ${issuer} uses plain http; only https issuers are accepted (http only on 127.0.0.1/localhost)`))
    }
    p = oidc
      .discovery(new URL(issuer), clientId, undefined, clientSecret ? oidc.ClientSecretPost(clientSecret) : oidc.None(), insecure ? {execute: [oidc.allowInsecureRequests]} : undefined)
      .catch((err: unknown) => {
        configs.delete(key)
        throw new HoopError('LOGIN_FAILED', `cannot discover issuer ${issuer}: ${describe(err)}`)
      })
    configs.set(key, p)
  }
  return p
}

function describe(err: unknown): string {
  if (err instanceof oidc.ResponseBodyError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`
  const e = err as {message?: string; cause?: {code?: string; message?: string}}
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err)
}

export interface DevicePrompt {
  userCode: string
  verificationUri: string
  verificationUriComplete?: string
  expiresIn: number
}

/** Builds the profile kept in the store from a token response; claims are for display only. */
function profileFromTokens(
  base: {gateway: string; issuer: string; clientId: string; audience?: string; loggedInAt?: number; refreshToken?: string},
  tokens: oidc.TokenEndpointResponse,
): LoginProfile {
  const now = Math.floor(Date.now() / 1000)
  let claims: Record<string, unknown> = {}
  try {
    claims = decodeJwt(tokens.access_token) as Record<string, unknown>
  } catch {
    // an opaque access token: fall back to the ID token's claims
  }
  if (!claims.sub && tokens.id_token) claims = {...(decodeJwt(tokens.id_token) as Record<string, unknown>), ...claims}
  const groups = Array.isArray(claims.groups) ? claims.groups.filter((g): g is string => typeof g === 'string') : []
  const exp = typeof claims.exp === 'number' ? claims.exp : now + (tokens.expires_in ?? 300)
  return {
    gateway: base.gateway,
    issuer: base.issuer,
    clientId: base.clientId,
    ...(base.audience ? {audience: base.audience} : {}),
    accessToken: tokens.access_token,
    // RFC 6749 §6: a refresh response may omit the refresh token; the old one stays valid then.
    ...(tokens.refresh_token ?? base.refreshToken ? {refreshToken: tokens.refresh_token ?? base.refreshToken} : {}),
    ...(tokens.id_token ? {idToken: tokens.id_token} : {}),
    expiresAt: exp,
    subject: String(claims.sub ?? ''),
    ...(typeof claims.email === 'string' ? {email: claims.email} : {}),
    ...(typeof claims.name === 'string' ? {name: claims.name} : {}),
    groups,
    ...(tokens.scope ? {scope: tokens.scope} : {}),
    loggedInAt: base.loggedInAt ?? now,
  }
}

interface DeviceLoginOptions {
  gateway: string
  settings: GatewayAuthSettings
  onPrompt(prompt: DevicePrompt): void | Promise<void>
  signal?: AbortSignal
}

/** RFC 8628: ask for a device code, let the user confirm it in a browser, poll for the tokens. */
export async function deviceLogin(opts: DeviceLoginOptions): Promise<LoginProfile> {
  const {issuer, clientId, audience, scopes} = opts.settings
  if (!issuer || !clientId) {
    throw new HoopError('LOGIN_FAILED', `gateway ${opts.gateway} has no login issuer configured (auth.oidc); use HOOP_TOKEN, or start the gateway with --dev`)
  }
  const config = await issuerConfig(issuer, clientId)
  if (!config.serverMetadata().device_authorization_endpoint) {
    throw new HoopError('LOGIN_FAILED', `issuer ${issuer} does not support the device authorization grant (no device_authorization_endpoint)`)
  }
  const params: Record<string, string> = {scope: (scopes ?? ['openid', 'email', 'profile', 'offline_access']).join(' ')}
  // Auth0-style issuers pick the token audience from `audience`; others ignore the parameter.
  if (audience) params.audience = audience
  let da: oidc.DeviceAuthorizationResponse
  try {
    da = await oidc.initiateDeviceAuthorization(config, params)
  } catch (err) {
    throw new HoopError('LOGIN_FAILED', `the issuer refused to start a device login: ${describe(err)}`)
  }
  await opts.onPrompt({
    userCode: da.user_code,
    verificationUri: da.verification_uri,
    verificationUriComplete: da.verification_uri_complete,
    expiresIn: da.expires_in,
  })
  let tokens: oidc.TokenEndpointResponse
  try {
    // openid-client waits `interval` between polls, adds 5 s on slow_down and keeps polling on
    // authorization_pending (RFC 8628 §3.5); it stops at expires_in.
    tokens = await oidc.pollDeviceAuthorizationGrant(config, da, undefined, opts.signal ? {signal: opts.signal} : undefined)
  } catch (err) {
    throw pollError(err, da.expires_in)
  }
  return profileFromTokens({gateway: opts.gateway, issuer, clientId, audience}, tokens)
}

function pollError(err: unknown, expiresIn: number): HoopError {
  if (err instanceof oidc.ResponseBodyError) {
    switch (err.error) {
      case 'expired_token':
        return new HoopError('LOGIN_FAILED', `the login code expired before it was confirmed (it was valid for ${Math.round(expiresIn / 60)} min)`)
      case 'access_denied':
        return new HoopError('LOGIN_FAILED', 'the login was denied in the browser')
      default:
        return new HoopError('LOGIN_FAILED', `the issuer refused the login: ${describe(err)}`)
    }
  }
  const name = (err as {name?: string; cause?: {name?: string}}).name
  const causeName = (err as {cause?: {name?: string}}).cause?.name
  if (name === 'TimeoutError' || causeName === 'TimeoutError') {
    return new HoopError('LOGIN_FAILED', `the login code expired before it was confirmed (it was valid for ${Math.round(expiresIn / 60)} min)`)
  }
  if (name === 'AbortError' || causeName === 'AbortError') return new HoopError('LOGIN_FAILED', 'the login was cancelled')
  return new HoopError('LOGIN_FAILED', `polling for the login failed: ${describe(err)}`)
}

/** Renews an access token with the refresh token; throws NOT_LOGGED_IN when that is no longer possible. */
export async function refreshProfile(profile: LoginProfile): Promise<LoginProfile> {
  const expired = () => new HoopError('NOT_LOGGED_IN', `session for ${profile.gateway} expired, run \`hoop login\``)
  if (!profile.refreshToken) throw expired()
  let config: oidc.Configuration
  try {
    config = await issuerConfig(profile.issuer, profile.clientId)
  } catch (err) {
    throw new HoopError('NOT_LOGGED_IN', `session for ${profile.gateway} cannot be renewed (${errorMessage(err)}), run \`hoop login\``)
  }
  try {
    const params: Record<string, string> = profile.audience ? {audience: profile.audience} : {}
    const tokens = await oidc.refreshTokenGrant(config, profile.refreshToken, params)
    return profileFromTokens({...profile, refreshToken: profile.refreshToken}, tokens)
  } catch {
    throw expired()
  }
}

/** RFC 7009 revocation of the refresh and access tokens; false when the issuer has no endpoint or refuses. */
export async function revokeProfile(profile: LoginProfile): Promise<boolean> {
  try {
    const config = await issuerConfig(profile.issuer, profile.clientId)
    if (!config.serverMetadata().revocation_endpoint) return false
    // Revoking the refresh token ends the grant (RFC 7009 §2.1). Many issuers refuse to revoke
    // self-contained JWT access tokens; those simply expire, so that attempt is best effort.
    if (profile.refreshToken) {
      await oidc.tokenRevocation(config, profile.refreshToken, {token_type_hint: 'refresh_token'})
      await oidc.tokenRevocation(config, profile.accessToken, {token_type_hint: 'access_token'}).catch(() => {})
      return true
    }
    await oidc.tokenRevocation(config, profile.accessToken, {token_type_hint: 'access_token'})
    return true
  } catch {
    return false
  }
}

/** Client credentials grant: a confidential client's short-lived access token for the gateway. */
export async function clientCredentialsToken(
  settings: {issuer: string; audience: string; scopes?: string[]},
  clientId: string,
  clientSecret: string,
): Promise<{accessToken: string; expiresAt: number}> {
  const config = await issuerConfig(settings.issuer, clientId, clientSecret).catch((err: HoopError) => {
    throw new HoopError('NOT_LOGGED_IN', err.message)
  })
  const params: Record<string, string> = {audience: settings.audience}
  if (settings.scopes?.length) params.scope = settings.scopes.join(' ')
  try {
    const t = await oidc.clientCredentialsGrant(config, params)
    const now = Math.floor(Date.now() / 1000)
    let exp = now + (t.expires_in ?? 300)
    try {
      const claims = decodeJwt(t.access_token)
      if (typeof claims.exp === 'number') exp = claims.exp
    } catch {
      // opaque token: trust expires_in
    }
    return {accessToken: t.access_token, expiresAt: exp}
  } catch (err) {
    throw new HoopError('NOT_LOGGED_IN', `client credentials for "${clientId}" were refused by ${settings.issuer}: ${describe(err)}`)
  }
}
