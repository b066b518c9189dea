// The console's HTTP layer on a real loopback server, without a browser: who gets sent where, the
// security headers, what a session may reach, and each of the three checks on a state change
// (Fetch Metadata, Origin, CSRF token) on its own; and a store that fails: no session, a 503 page
// at login, nothing secret in the log. Login state is in a real SQLite database (in memory here).
// The browser flows are test/e2e/console.test.ts; the stores themselves test/conformance/console-store.test.ts.
import assert from 'node:assert/strict'
import {createServer, type IncomingMessage, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import Database from 'better-sqlite3'
import {createConsole, type Console, type ConsoleOptions} from '../../../src/console/handler.js'
import {ConsoleSessions, MAX_SESSION_SECONDS} from '../../../src/console/sessions.js'
import {SqliteConsoleStore} from '../../../src/console/store-sqlite.js'
import {readCookie} from '../../../src/console/cookies.js'
import {DEV_CONSOLE_CLIENT_ID, startDevIdpServer} from '../../../src/identity/dev-idp.js'
import type {Identity} from '../../../src/identity/types.js'
import {HoopError} from '../../../src/shared/errors.js'
import {sendError, sendJson} from '../../../src/shared/http.js'
import {createLogger} from '../../../src/shared/log.js'

const alice: Identity = {kind: 'user', subject: 'alice', name: 'alice@example.com', groups: ['dba']}

describe('console HTTP layer', () => {
  let server: Server
  let url = ''
  let cons: Console
  const calls: Array<{identity: Identity; url?: string; method?: string}> = []

  before(async () => {
    server = createServer((req, res) => {
      void cons.handle(req, res).then(
        (handled) => {
          if (!handled) sendJson(res, 404, {error: {code: 'NOT_FOUND'}})
        },
        (err) => sendError(res, err as HoopError),
      )
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    cons = createConsole({
      publicUrl: url,
      authenticator: {authenticate: async () => Promise.reject(new HoopError('TOKEN_REJECTED', 'no'))},
      api: async (identity: Identity, req: IncomingMessage, res) => {
        calls.push({identity, url: req.url, method: req.method})
        sendJson(res, 200, {ok: true})
      },
      store: new SqliteConsoleStore(new Database(':memory:')),
      logger: createLogger({level: 'error', write: () => {}}),
    })
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  // The token's expiry is set when the test runs: mocha loads every file long before the last runs.
  const login = async () => {
    const {id, session} = await cons.sessions.create({...alice, expiresAt: Math.floor(Date.now() / 1000) + 600})
    return {cookie: `hoop-console=${id}`, csrf: session.csrf}
  }
  const post = (path: string, headers: Record<string, string>) => fetch(url + path, {method: 'POST', headers: {'content-type': 'application/json', ...headers}, body: '{"reason":"r"}'})
  const messageOf = async (r: Response) => ((await r.json()) as {error: {message: string}}).error.message

  it('sends a browser at / to the console and leaves API clients (and other paths) alone', async () => {
    const html = await fetch(url + '/', {headers: {accept: 'text/html,application/xhtml+xml'}, redirect: 'manual'})
    assert.equal(html.status, 302)
    assert.equal(html.headers.get('location'), '/console/')
    const bearer = await fetch(url + '/', {headers: {accept: 'text/html', authorization: 'Bearer x'}})
    assert.equal(bearer.status, 404, 'a caller with a token is not a browser')
    assert.equal((await fetch(url + '/v1/whoami')).status, 404)
  })

  it('answers every console path with the strict headers, and a page without a session with a login redirect', async () => {
    const r = await fetch(url + '/console/sessions/ses_1', {redirect: 'manual'})
    assert.equal(r.status, 302)
    assert.equal(r.headers.get('location'), '/console/login?next=%2Fconsole%2Fsessions%2Fses_1')
    assert.equal(r.headers.get('content-security-policy'), "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    assert.equal(r.headers.get('x-frame-options'), 'DENY')
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff')
    const noLogin = await fetch(url + '/console/login')
    assert.equal(noLogin.status, 503, 'no issuer configured: a page that says how to set one')
    assert.match(await noLogin.text(), /auth\.oidc/)
  })

  it('serves only built asset names, never a path', async () => {
    for (const p of ['/console/assets/../../package.json', '/console/assets/%2e%2e%2fpackage.json', '/console/assets/app.ts', '/console/assets/APP.js']) {
      assert.equal((await fetch(url + p)).status, 404, p)
    }
  })

  it('hands the API the session identity and the /v1 path, for the routes the console lists only', async () => {
    const {cookie} = await login()
    const r = await fetch(url + '/console/api/v1/approvals?state=all', {headers: {cookie}})
    assert.equal(r.status, 200)
    assert.deepEqual({...calls.at(-1), identity: {...calls.at(-1)?.identity, expiresAt: undefined}}, {identity: {...alice, expiresAt: undefined}, url: '/v1/approvals?state=all', method: 'GET'})
    const admin = await fetch(url + '/console/api/v1/admin/agents', {headers: {cookie}})
    assert.equal(admin.status, 404, 'admin calls are not reachable from the console')
    assert.equal((await fetch(url + '/console/api/v1/approvals')).status, 401, 'no cookie, no API')
    assert.equal((await fetch(url + '/console/api/v1/approvals', {headers: {cookie: 'hoop-console=forged'}})).status, 401)
  })

  it('refuses a state change that fails any one check: Sec-Fetch-Site, Origin, CSRF token', async () => {
    const {cookie, csrf} = await login()
    const path = '/console/api/v1/approvals/apr_abcdefghijkl/approve'
    const before = calls.length
    const crossSite = await post(path, {cookie, origin: url, 'x-hoop-csrf': csrf, 'sec-fetch-site': 'cross-site'})
    assert.equal(crossSite.status, 403)
    assert.match(await messageOf(crossSite), /cross-site request refused/)
    const noOrigin = await post(path, {cookie, 'x-hoop-csrf': csrf})
    assert.equal(noOrigin.status, 403)
    assert.match(await messageOf(noOrigin), /needs an Origin/)
    const otherOrigin = await post(path, {cookie, origin: 'http://127.0.0.1:1', 'x-hoop-csrf': csrf})
    assert.equal(otherOrigin.status, 403)
    const wrongToken = await post(path, {cookie, origin: url, 'x-hoop-csrf': csrf.slice(1) + 'x'})
    assert.equal(wrongToken.status, 403)
    assert.match(await messageOf(wrongToken), /CSRF/)
    assert.equal(calls.length, before, 'none of them reached the API')
    const ok = await post(path, {cookie, origin: url, 'x-hoop-csrf': csrf, 'sec-fetch-site': 'same-origin'})
    assert.equal(ok.status, 200)
    assert.equal(calls.at(-1)?.url, '/v1/approvals/apr_abcdefghijkl/approve')
  })

  it('logs out: the cookie is cleared and the session no longer works', async () => {
    const {cookie, csrf} = await login()
    const out = await post('/console/logout', {cookie, origin: url, 'x-hoop-csrf': csrf})
    assert.equal(out.status, 200)
    assert.match(out.headers.get('set-cookie') ?? '', /^hoop-console=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/)
    assert.equal((await fetch(url + '/console/api/session', {headers: {cookie}})).status, 401)
  })
})

describe('console login set-up', () => {
  it('asks for auth.oidc.consoleUrl when the gateway listens on every address', async () => {
    const cons = createConsole({
      publicUrl: 'http://0.0.0.0:8009',
      oidc: {issuer: 'https://id.example.com', clientId: 'hoop-cli', audience: 'hoop', scopes: ['openid'], groupsClaim: 'groups', algorithms: ['RS256'], clockSkew: 60},
      authenticator: {authenticate: async () => Promise.reject(new HoopError('TOKEN_REJECTED', 'no'))},
      api: async () => {},
      store: new SqliteConsoleStore(new Database(':memory:')),
      logger: createLogger({level: 'error', write: () => {}}),
    })
    const server = createServer((req, res) => void cons.handle(req, res))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/console/login`, {redirect: 'manual'})
      assert.equal(r.status, 503)
      assert.match(await r.text(), /Set auth\.oidc\.consoleUrl/)
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })
})

describe('console sessions', () => {
  it('end with the access token, and never last more than an hour', async () => {
    let now = 1_000_000_000_000
    const s = new ConsoleSessions(new SqliteConsoleStore(new Database(':memory:')), () => now)
    const short = await s.create({...alice, expiresAt: now / 1000 + 60})
    const long = await s.create({...alice, expiresAt: now / 1000 + 86400})
    assert.equal(short.session.expiresAt, now + 60_000)
    assert.equal(long.session.expiresAt, now + MAX_SESSION_SECONDS * 1000)
    now += 61_000
    assert.equal(await s.get(short.id), undefined)
    assert.ok(await s.get(long.id))
    now += MAX_SESSION_SECONDS * 1000
    assert.equal(await s.get(long.id), undefined)
  })

  it('ignore oversized cookie headers and ids', async () => {
    assert.equal(readCookie(`a=1; hoop-console=${'x'.repeat(9000)}`, 'hoop-console'), undefined)
    assert.equal(readCookie('a=1; hoop-console=abc', 'hoop-console'), 'abc')
    const store = new SqliteConsoleStore(new Database(':memory:'))
    const s = new ConsoleSessions(store)
    const {id} = await s.create(alice)
    // A 200-character id that would otherwise be looked up: refused before the store is asked.
    assert.equal(await s.get(id + 'x'.repeat(200 - id.length)), undefined)
    await s.end(id + 'x'.repeat(200 - id.length))
    assert.ok(await s.get(id), 'an oversized id ends nothing either')
  })
})

describe('console on a store that fails', function () {
  this.timeout(30_000)
  let idp: Awaited<ReturnType<typeof startDevIdpServer>>
  let server: Server
  let url = ''
  let db: Database.Database
  let cons: Console
  const logged: string[] = []

  before(async () => {
    server = createServer((req, res) => void cons.handle(req, res))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    idp = await startDevIdpServer({users: [{email: 'alice@example.com', name: 'Alice', groups: ['dba']}], consoleRedirectUri: `${url}/console/callback`})
    db = new Database(':memory:')
    const opts: ConsoleOptions = {
      publicUrl: url,
      oidc: {issuer: idp.issuer, clientId: 'hoop-cli', consoleClientId: DEV_CONSOLE_CLIENT_ID, audience: 'hoop', scopes: ['openid'], groupsClaim: 'groups', algorithms: ['RS256'], clockSkew: 60},
      authenticator: {authenticate: async () => ({...alice, expiresAt: Math.floor(Date.now() / 1000) + 600})},
      api: async (_identity, _req, res) => sendJson(res, 200, {ok: true}),
      store: new SqliteConsoleStore(db),
      logger: createLogger({level: 'debug', json: true, write: (line) => logged.push(line)}),
    }
    cons = createConsole(opts)
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
    await idp.close()
  })

  it('treats the session as absent (API 401, pages to login), and says so at login with a 503 page, logging no secret', async () => {
    const {id} = await cons.sessions.create(alice)
    const cookie = `hoop-console=${id}`
    assert.equal((await fetch(url + '/console/api/v1/whoami', {headers: {cookie}})).status, 200, 'the session works while the store does')
    const started = await fetch(url + '/console/login', {redirect: 'manual'})
    assert.equal(started.status, 302, 'a login starts while the store works')
    const state = /hoop-console-login=([^;]+)/.exec(started.headers.get('set-cookie') ?? '')?.[1]
    assert.ok(state)

    db.close()
    const api = await fetch(url + '/console/api/v1/whoami', {headers: {cookie}})
    assert.equal(api.status, 401)
    assert.equal(((await api.json()) as {error: {code: string}}).error.code, 'NOT_LOGGED_IN')
    assert.equal((await fetch(url + '/console/api/session', {headers: {cookie}})).status, 401)
    const page = await fetch(url + '/console/approvals', {headers: {cookie}, redirect: 'manual'})
    assert.equal(page.status, 302)
    assert.equal(page.headers.get('location'), '/console/login?next=%2Fconsole%2Fapprovals')

    const login = await fetch(url + '/console/login?next=/console/approvals', {redirect: 'manual'})
    assert.equal(login.status, 503)
    const loginText = await login.text()
    assert.match(loginText, /Console login unavailable/)
    assert.match(loginText, /cannot reach the store that keeps console logins/)
    const back = await fetch(`${url}/console/callback?code=c&state=${state}`, {headers: {cookie: `hoop-console-login=${state}`}, redirect: 'manual'})
    assert.equal(back.status, 503, 'a callback whose login cannot be read')
    assert.match(await back.text(), /Console login unavailable/)
    const out = await fetch(url + '/console/logout', {method: 'POST', headers: {cookie, origin: url}})
    assert.equal(out.status, 503, 'a sign-out the store could not record is not reported as done')
    assert.equal(out.headers.get('set-cookie'), null, 'and the cookie stays, for another try')

    const log = logged.join('\n')
    assert.match(log, /console session look-up failed; treated as signed out/)
    assert.match(log, /"msg":"console login state unavailable","component":"console","step":"start"/)
    assert.match(log, /"step":"finish"/)
    assert.match(log, /console sign-out failed/)
    for (const secret of [id, state]) assert.ok(!log.includes(secret), 'no cookie value or login state in the log')
  })
})
