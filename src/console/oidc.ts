// The console's login: OpenID Connect authorization code flow with PKCE (RFC 7636, S256) against
// the organisation's OpenID Provider, as a public client, on openid-client 6. Plain-http issuers
// are accepted only on loopback (the dev IdP and tests), like the CLI's device flow.
// Pending logins (state -> PKCE verifier) live here for ten minutes at most, bounded in number.
import * as oidc from 'openid-client'
import {isLoopbackUrl} from '../identity/auth-config.js'
import {errorMessage, HoopError} from '../shared/errors.js'

export interface ConsoleOidcSettings {
  issuer: string
  clientId: string
  /** Scopes asked for (offline_access left out: the console keeps no refresh token). */
  scopes: string[]
}

interface PendingLogin {
  verifier: string
  /** The console page to return to. */
  next: string
  createdAt: number
}

export const LOGIN_TTL_SECONDS = 600
const MAX_PENDING = 1000

export class CodeFlow {
  private config?: Promise<oidc.Configuration>
  private readonly pending = new Map<string, PendingLogin>()

  constructor(
    private readonly settings: ConsoleOidcSettings,
    private readonly redirectUri: string,
  ) {}

  private discover(): Promise<oidc.Configuration> {
    if (!this.config) {
      const {issuer, clientId} = this.settings
      const insecure = new URL(issuer).protocol === 'http:'
      if (insecure && !isLoopbackUrl(issuer)) {
        return Promise.reject(new HoopError('LOGIN_FAILED', `issuer ${issuer} uses plain http; the console logs in only with https issuers (http only on loopback)`))
      }
      this.config = oidc
        .discovery(new URL(issuer), clientId, undefined, oidc.None(), insecure ? {execute: [oidc.allowInsecureRequests]} : undefined)
        .catch((err: unknown) => {
          this.config = undefined
          throw new HoopError('LOGIN_FAILED', `cannot discover issuer ${issuer}: ${describe(err)}`)
        })
    }
    return this.config
  }

  /** Where to send the browser, and the state that names this login (also put in a cookie). */
  async start(next: string): Promise<{url: string; state: string}> {
    const config = await this.discover()
    this.sweep()
    while (this.pending.size >= MAX_PENDING) this.pending.delete(this.pending.keys().next().value as string)
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    this.pending.set(state, {verifier, next, createdAt: Date.now()})
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: this.settings.scopes.filter((s) => s !== 'offline_access').join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    })
    return {url: url.href, state}
  }

  /**
   * Exchanges the code on the callback URL for tokens; returns the access token (which the
   * gateway's authenticator verifies like any bearer) and the page to return to. A state not
   * started here, or older than ten minutes, is refused.
   */
  async finish(callbackQuery: URLSearchParams, state: string): Promise<{accessToken: string; next: string}> {
    const login = this.pending.get(state)
    this.pending.delete(state)
    if (!login || Date.now() - login.createdAt > LOGIN_TTL_SECONDS * 1000) throw new HoopError('LOGIN_FAILED', 'this login expired or was not started here; sign in again')
    const config = await this.discover()
    const current = new URL(this.redirectUri)
    current.search = callbackQuery.toString()
    let tokens: oidc.TokenEndpointResponse
    try {
      tokens = await oidc.authorizationCodeGrant(config, current, {pkceCodeVerifier: login.verifier, expectedState: state})
    } catch (err) {
      throw new HoopError('LOGIN_FAILED', `the identity provider did not complete the login: ${describe(err)}`)
    }
    if (!tokens.access_token) throw new HoopError('LOGIN_FAILED', 'the identity provider returned no access token')
    return {accessToken: tokens.access_token, next: login.next}
  }

  private sweep(): void {
    const cutoff = Date.now() - LOGIN_TTL_SECONDS * 1000
    for (const [s, l] of this.pending) if (l.createdAt < cutoff) this.pending.delete(s)
  }
}

function describe(err: unknown): string {
  if (err instanceof oidc.ResponseBodyError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`
  if (err instanceof oidc.AuthorizationResponseError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`
  const e = err as {cause?: {code?: string; message?: string}}
  return e.cause?.code ?? e.cause?.message ?? errorMessage(err)
}
