// The console's login: OpenID Connect authorization code flow with PKCE (RFC 7636, S256) against
// the organisation's OpenID Provider, as a public client, on openid-client 6. Plain-http issuers
// are accepted only on loopback (the dev IdP and tests), like the CLI's device flow.
// Pending logins (state -> PKCE verifier) last ten minutes at most, in the gateway's store
// (store.ts), so the provider may send the browser back to any replica.
import * as oidc from 'openid-client'
import {isLoopbackUrl} from '../identity/auth-config.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {ConsoleStore} from './store.js'

export interface ConsoleOidcSettings {
  issuer: string
  clientId: string
  /** Scopes asked for (offline_access left out: the console keeps no refresh token). */
  scopes: string[]
}

export const LOGIN_TTL_SECONDS = 600
/** Our states are 43 characters; a longer one was not made here and is not looked up. */
const MAX_STATE_LENGTH = 128

export class CodeFlow {
  private config?: Promise<oidc.Configuration>

  constructor(
    private readonly settings: ConsoleOidcSettings,
    private readonly redirectUri: string,
    private readonly store: ConsoleStore,
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
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const now = Date.now()
    await this.store.addLogin(state, {verifier, next, expiresAt: now + LOGIN_TTL_SECONDS * 1000}, now)
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
   * gateway's authenticator verifies like any bearer) and the page to return to. A login
   * not started, already finished, or older than ten minutes is refused. A store failure is thrown
   * as it is, not as LOGIN_FAILED.
   */
  async finish(callbackQuery: URLSearchParams, state: string): Promise<{accessToken: string; next: string}> {
    const login = state.length <= MAX_STATE_LENGTH ? await this.store.takeLogin(state, Date.now()) : undefined
    if (!login) throw new HoopError('LOGIN_FAILED', 'this login expired, was already used, or was not started; sign in again')
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
}

function describe(err: unknown): string {
  if (err instanceof oidc.ResponseBodyError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`
  if (err instanceof oidc.AuthorizationResponseError) return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`
  const e = err as {cause?: {code?: string; message?: string}}
  return e.cause?.code ?? e.cause?.message ?? errorMessage(err)
}
