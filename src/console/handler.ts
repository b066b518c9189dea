// The web console at /console/ on the gateway's own port: pages for approvers, auditors and
// engineers who log in with the organisation's OpenID Provider in the browser (oidc.ts). It owns
// the login, the session cookie, CSRF and same-origin checks, and the security headers; every data
// call (/console/api/v1/...) is handed to the gateway's own API router with the session's
// identity, so a page can do exactly what the same person could do with the CLI, no more.
//
//   GET  /                      a browser (Accept: text/html, no Authorization) is sent to /console/
//   GET  /console/login         starts the authorization code flow (PKCE)
//   GET  /console/callback      finishes it: verifies the access token, opens a session
//   POST /console/logout        ends the session (CSRF)
//   GET  /console/api/session   who is logged in, and the CSRF token for state changes
//   *    /console/api/v1/...    the gateway API (/v1/...), as the session's identity (state changes: CSRF)
//   GET  /console/assets/NAME   the built browser modules and style sheet
//   GET  /console/[PAGE[/ID]]   the page shell (logs in first)
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {TLSSocket} from 'node:tls'
import type {OidcSettings} from '../identity/auth-config.js'
import type {Authenticator, Identity} from '../identity/types.js'
import {HoopError, errorMessage} from '../shared/errors.js'
import {sendError, sendJson} from '../shared/http.js'
import type {Logger} from '../shared/log.js'
import {ASSET_NAME, loadAssets} from './assets.js'
import {readCookie, setCookie} from './cookies.js'
import {CodeFlow, LOGIN_TTL_SECONDS} from './oidc.js'
import {ConsoleSessions, sameSecret} from './sessions.js'
import type {ConsoleStore} from './store.js'

export const CONSOLE_PREFIX = '/console/'

/** No inline script or style, nothing from another origin, no framing, forms only to us. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
}

/** API routes the console may call, by method: reads, and the two approval decisions. */
const API_ROUTES: Array<[string, RegExp]> = [
  ['GET', /^\/v1\/(whoami|connections|approvals|sessions|policy|audit\/(export|verify|key|head|exports))$/],
  ['GET', /^\/v1\/(approvals|sessions)\/[A-Za-z0-9_-]{1,64}$/],
  ['POST', /^\/v1\/approvals\/[A-Za-z0-9_-]{1,64}\/(approve|reject)$/],
  ['POST', /^\/v1\/policy\/test$/],
]

const PAGE = /^\/console\/(?:(connections|approvals|sessions|evidence|policy)(?:\/[A-Za-z0-9_-]{1,64})?)?$/
const CSRF_HEADER = 'x-hoop-csrf'
const LOGIN_COOKIE = 'hoop-console-login'

export interface ConsoleOptions {
  /** The gateway's public base URL; the OpenID Provider sends browsers back to <url>/console/callback. */
  publicUrl: string
  /** The login issuer (auth.oidc, or the dev IdP); without it the console says how to configure one. */
  oidc?: OidcSettings
  authenticator: Authenticator
  /** The gateway's API router for a verified identity (src/gateway/api.ts routeApi). */
  api: (identity: Identity, req: IncomingMessage, res: ServerResponse) => Promise<void>
  /** Where sessions and pending logins are kept: the gateway's store (store-for.ts). */
  store: ConsoleStore
  logger: Logger
  /** Where the built assets are (default dist/console of this package). */
  assetsDir?: string
}

export interface Console {
  /** Answers console requests (and a browser's GET /); resolves false for anything else. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  readonly sessions: ConsoleSessions
}

export function createConsole(opts: ConsoleOptions): Console {
  // Behind a TLS proxy the browser's address is auth.oidc.consoleUrl, not the port the gateway binds.
  const base = (opts.oidc?.consoleUrl ?? opts.publicUrl).replace(/\/+$/, '')
  const publicOrigin = new URL(base).origin
  const secureByUrl = publicOrigin.startsWith('https:')
  const sessions = new ConsoleSessions(opts.store)
  const assets = loadAssets(opts.assetsDir)
  const flow = opts.oidc
    ? new CodeFlow({issuer: opts.oidc.issuer, clientId: opts.oidc.consoleClientId ?? opts.oidc.clientId, scopes: opts.oidc.scopes}, `${base}/console/callback`, opts.store)
    : undefined
  const log = opts.logger.child({component: 'console'})

  const secure = (req: IncomingMessage) => secureByUrl || Boolean((req.socket as TLSSocket).encrypted)
  // __Host- cookies must be Secure, Path=/ and host-only: no subdomain can plant or read one.
  const sessionCookie = (req: IncomingMessage) => (secure(req) ? '__Host-hoop-console' : 'hoop-console')
  /** The request's session. A store that cannot answer means none: the browser is asked to log in. */
  const sessionOf = async (req: IncomingMessage) => {
    const id = readCookie(req.headers.cookie, sessionCookie(req))
    try {
      return {id, session: await sessions.get(id)}
    } catch (err) {
      log.warn('console session look-up failed; treated as signed out', {error: errorMessage(err)})
      return {id, session: undefined}
    }
  }

  /** The login state could not be kept or read: say so, and keep the store's details in the log. */
  function loginUnavailable(res: ServerResponse, step: string, err: unknown, retry: string): void {
    log.error('console login state unavailable', {step, error: errorMessage(err)})
    sendPage(res, 503, 'Console login unavailable', 'The gateway cannot reach the store that keeps console logins. Try again in a moment.', retry)
  }

  /** State changes come from our own pages only: same origin by Fetch Metadata and Origin, and the session's CSRF token. */
  function checkStateChange(req: IncomingMessage, csrf: string): void {
    const site = req.headers['sec-fetch-site']
    if (site !== undefined && site !== 'same-origin') throw new HoopError('ACCESS_DENIED', `cross-site request refused (Sec-Fetch-Site: ${String(site).slice(0, 32)})`)
    const origin = req.headers.origin
    const own = [publicOrigin, `${secure(req) ? 'https' : 'http'}://${req.headers.host ?? ''}`]
    if (!origin || !own.includes(origin)) throw new HoopError('ACCESS_DENIED', origin ? 'cross-origin request refused' : 'a state change needs an Origin header')
    const token = req.headers[CSRF_HEADER]
    if (typeof token !== 'string' || !sameSecret(token, csrf)) throw new HoopError('ACCESS_DENIED', 'missing or wrong CSRF token; reload the page')
  }

  async function login(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!flow || !opts.oidc) return sendPage(res, 503, 'Console login is not configured', 'Set auth.oidc (issuer, clientId, consoleClientId) in the gateway config, or run hoop gateway --dev. See docs/console.md.')
    if (['0.0.0.0', '[::]'].includes(new URL(base).hostname)) {
      return sendPage(res, 503, 'Console address unknown', 'The gateway listens on every address, so it cannot tell the identity provider where to send you back. Set auth.oidc.consoleUrl to the address browsers use (docs/console.md).')
    }
    // The callback comes back to the public URL: start there so the login cookie is found on return.
    // (Not with consoleUrl: a proxy in front may pass its own Host, and this would loop.)
    if (!opts.oidc.consoleUrl && req.headers.host !== new URL(base).host) return redirect(res, `${base}/console/login${url.search}`)
    const next = safeNext(url.searchParams.get('next'))
    let started: {url: string; state: string}
    try {
      started = await flow.start(next)
    } catch (err) {
      const retry = `/console/login?next=${encodeURIComponent(next)}`
      // The provider's failures are LOGIN_FAILED; anything else is the store's.
      if (!isLoginFailure(err)) return loginUnavailable(res, 'start', err, retry)
      log.warn('console login could not start', {error: errorMessage(err)})
      return sendPage(res, 503, 'Cannot reach the identity provider', errorMessage(err), retry)
    }
    const {url: to, state} = started
    // Lax, not Strict: it must come back on the provider's cross-site redirect to the callback.
    res.setHeader('set-cookie', setCookie(LOGIN_COOKIE, state, {path: '/console/callback', maxAgeSeconds: LOGIN_TTL_SECONDS, sameSite: 'Lax', secure: secure(req)}))
    redirect(res, to)
  }

  async function callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!flow) throw new HoopError('NOT_FOUND', 'console login is not configured')
    // Whatever the outcome, this login is over: the browser's login cookie goes.
    const clear = setCookie(LOGIN_COOKIE, '', {path: '/console/callback', maxAgeSeconds: 0, sameSite: 'Lax', secure: secure(req)})
    res.setHeader('set-cookie', clear)
    const state = url.searchParams.get('state') ?? ''
    const cookieState = readCookie(req.headers.cookie, LOGIN_COOKIE) ?? ''
    if (url.searchParams.has('error')) {
      return sendPage(res, 403, 'Login refused', `The identity provider said: ${(url.searchParams.get('error_description') ?? url.searchParams.get('error') ?? '').slice(0, 200)}`, '/console/login')
    }
    if (!state || !cookieState || !sameSecret(state, cookieState)) return sendPage(res, 400, 'Login failed', 'This login was not started in this browser, or it expired.', '/console/login')
    const refuse = (err: unknown) => {
      log.warn('console login failed', {error: errorMessage(err)})
      sendPage(res, 403, 'Login failed', errorMessage(err), '/console/login')
    }
    let done: {accessToken: string; next: string}
    try {
      done = await flow.finish(url.searchParams, state)
    } catch (err) {
      return isLoginFailure(err) ? refuse(err) : loginUnavailable(res, 'finish', err, '/console/login')
    }
    let identity: Identity
    try {
      // The same verification as every bearer on the API: issuer, audience, expiry, signature.
      identity = await opts.authenticator.authenticate(done.accessToken)
    } catch (err) {
      return refuse(err)
    }
    if (identity.kind !== 'user') return sendPage(res, 403, 'Login failed', 'The console is for people; this token names no user.', '/console/login')
    let opened: Awaited<ReturnType<ConsoleSessions['create']>>
    try {
      opened = await sessions.create(identity)
    } catch (err) {
      return loginUnavailable(res, 'session', err, '/console/login')
    }
    const {id, session} = opened
    log.info('console login', {subject: identity.subject, name: identity.name})
    res.setHeader('set-cookie', [
      clear,
      setCookie(sessionCookie(req), id, {path: '/', maxAgeSeconds: (session.expiresAt - Date.now()) / 1000, sameSite: 'Strict', secure: secure(req)}),
    ])
    // A page, not a redirect: the browser sends a SameSite=Strict cookie on a navigation our own
    // page starts, not on the tail of the provider's cross-site redirect chain.
    sendPage(res, 200, 'Signed in', `Signed in as ${identity.name}.`, done.next, true)
  }

  async function api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const {session} = await sessionOf(req)
    if (!session) throw new HoopError('NOT_LOGGED_IN', 'not signed in to the console (or the session expired); reload the page to sign in')
    const method = req.method ?? 'GET'
    const path = url.pathname.slice('/console/api'.length)
    if (method !== 'GET' && method !== 'HEAD') checkStateChange(req, session.csrf)
    if (!API_ROUTES.some(([m, re]) => m === method && re.test(path))) throw new HoopError('NOT_FOUND', `the console has no route for ${method} ${path}`)
    // The gateway API sees the request as /v1/...: the same routes, checks and audit events.
    req.url = path + url.search
    await opts.api(session.identity, req, res)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://gateway')
    const path = url.pathname
    const method = req.method ?? 'GET'
    if (path === '/' && method === 'GET' && !req.headers.authorization && /text\/html/.test(String(req.headers.accept ?? ''))) {
      redirect(res, CONSOLE_PREFIX)
      return true
    }
    if (path !== '/console' && !path.startsWith(CONSOLE_PREFIX)) return false
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v)
    try {
      if (path === '/console') redirect(res, CONSOLE_PREFIX)
      else if (path.startsWith('/console/api/')) {
        if (path === '/console/api/session' && method === 'GET') {
          const {session} = await sessionOf(req)
          if (!session) throw new HoopError('NOT_LOGGED_IN', 'not signed in to the console')
          sendJson(res, 200, {identity: session.identity, csrf: session.csrf, expiresAt: new Date(session.expiresAt).toISOString()})
        } else await api(req, res, url)
      } else if (path.startsWith('/console/assets/') && method === 'GET') {
        const asset = assets.get(path.slice('/console/assets/'.length))
        if (!asset || !ASSET_NAME.test(path.slice('/console/assets/'.length))) throw new HoopError('NOT_FOUND', `no console asset ${path}`)
        res.writeHead(200, {'content-type': asset.type, 'content-length': asset.body.length, 'cache-control': 'no-cache'})
        res.end(asset.body)
      } else if (path === '/console/login' && method === 'GET') await login(req, res, url)
      else if (path === '/console/callback' && method === 'GET') await callback(req, res, url)
      else if (path === '/console/logout' && method === 'POST') {
        const {id, session} = await sessionOf(req)
        if (session) checkStateChange(req, session.csrf)
        // Gone from the store, so from every replica. A sign-out the store could not record is not
        // reported as done, and the cookie stays for another try.
        try {
          await sessions.end(id)
        } catch (err) {
          log.error('console sign-out failed', {error: errorMessage(err)})
          throw new HoopError('STORE_UNAVAILABLE', 'the sign-out could not be recorded; try again')
        }
        res.setHeader('set-cookie', setCookie(sessionCookie(req), '', {path: '/', maxAgeSeconds: 0, sameSite: 'Strict', secure: secure(req)}))
        sendJson(res, 200, {signedOut: true})
      } else if (PAGE.test(path) && method === 'GET') {
        if (!(await sessionOf(req)).session) redirect(res, `/console/login?next=${encodeURIComponent(path)}`)
        else if (!assets.has('app.js')) sendPage(res, 503, 'Console not built', 'The console assets are missing: run npm run build (it writes dist/console).')
        else sendShell(res)
      } else throw new HoopError('NOT_FOUND', `no console route for ${method} ${path}`)
    } catch (err) {
      if (res.headersSent) throw err
      sendError(res, err instanceof HoopError ? err : new HoopError('INTERNAL', 'internal error'))
      if (!(err instanceof HoopError)) log.error('console request failed', {path, error: errorMessage(err)})
    }
    return true
  }

  return {handle, sessions}
}

const isLoginFailure = (err: unknown) => err instanceof HoopError && err.code === 'LOGIN_FAILED'

/** Only a console page is a place to return to after login: never another site. */
function safeNext(v: string | null): string {
  return v && PAGE.test(v) ? v : CONSOLE_PREFIX
}

function redirect(res: ServerResponse, to: string): void {
  res.writeHead(302, {location: to, 'cache-control': 'no-store', 'content-length': 0})
  res.end()
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The one HTML page every console page starts from; the module renders the page by its path. */
function sendShell(res: ServerResponse): void {
  sendHtml(
    res,
    200,
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hoop console</title><link rel="stylesheet" href="/console/assets/app.css"><script type="module" src="/console/assets/app.js"></script></head>
<body><a class="skip" href="#main">Skip to content</a><header id="top"></header><main id="main" tabindex="-1"><p>Loading…</p></main></body></html>`,
  )
}

/** A short message page (login results, errors); `refresh` moves on to `link` by itself, without script. */
function sendPage(res: ServerResponse, status: number, title: string, text: string, link?: string, refresh = false): void {
  const target = link && esc(link)
  sendHtml(
    res,
    status,
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · hoop console</title>${refresh && target ? `<meta http-equiv="refresh" content="0;url=${target}">` : ''}
<link rel="stylesheet" href="/console/assets/app.css"></head><body><main id="main"><h1>${esc(title)}</h1><p id="message">${esc(text)}</p>${target ? `<p><a href="${target}">Continue</a></p>` : ''}</main></body></html>`,
  )
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(html)})
  res.end(html)
}
