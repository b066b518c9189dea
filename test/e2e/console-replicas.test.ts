// Two gateway replicas (built CLI processes) on one PostgreSQL store, behind what a load balancer
// would be: the web console's login state is on the store (issue 16), so a login started on
// replica A completes at replica B's callback, the session cookie works on both, a sign-out on B
// ends it on A, and a callback replayed, or sent to both replicas at once, signs in once at most.
// The browser is played with plain HTTP: a cookie jar, redirects by hand, the provider's forms.
// The login issuer is a dev OpenID Provider in this process that both replicas trust; its console
// client's one redirect URI is on auth.oidc.consoleUrl, the balancer's address. This test is the
// balancer: it sends each request for that address to the replica it chooses.
import assert from 'node:assert/strict'
import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {DEV_CONSOLE_CLIENT_ID, startDevIdpServer} from '../../src/identity/dev-idp.js'
import {adminQuery} from '../conformance/backends.js'
import {tempDir} from '../helpers/cli.js'
import {type GatewayProc, sharedStoreConfig, startGatewayProc} from '../helpers/gateway.js'
import {freePort} from '../helpers/net.js'

const DB = `hoop_store_test_${process.pid}_console_replicas`
const STORE_URL = `postgresql://postgres@127.0.0.1:5432/${DB}`
const APPROVER = {email: 'approver@example.com', name: 'Approver', groups: ['dba']}
const SPENT = /this login expired, was already used, or was not started/

interface Init {
  method?: string
  form?: Record<string, string>
  headers?: Record<string, string>
}

/** One browser's cookies, by the origin the browser believes it talks to (host-only is enough on loopback). */
class Browser {
  private readonly jars = new Map<string, Map<string, string>>()

  /** Requests `url` without following redirects, sending and keeping the cookies of `origin`. */
  async fetch(url: string, init: Init = {}, origin = new URL(url).origin): Promise<Response> {
    const jar = this.jars.get(origin) ?? new Map<string, string>()
    this.jars.set(origin, jar)
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      redirect: 'manual',
      headers: {cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), ...(init.form ? {'content-type': 'application/x-www-form-urlencoded'} : {}), ...init.headers},
      body: init.form && new URLSearchParams(init.form).toString(),
    })
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0]
      const eq = pair.indexOf('=')
      if (pair.slice(eq + 1) === '' || /Max-Age=0/i.test(line)) jar.delete(pair.slice(0, eq))
      else jar.set(pair.slice(0, eq), pair.slice(eq + 1))
    }
    return res
  }

  cookie(origin: string, name: string): string | undefined {
    return this.jars.get(origin)?.get(name)
  }
}

describe('console logins across two gateway replicas on one PostgreSQL store (built CLI, dev IdP, plain HTTP)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-console-replicas-')
  let idp: Awaited<ReturnType<typeof startDevIdpServer>>
  let consoleUrl = ''
  let a: GatewayProc
  let b: GatewayProc

  /** A request the browser sends to the console's address, which the balancer hands to `replica`. */
  const via = (browser: Browser, replica: GatewayProc, pathOrUrl: string, init: Init = {}) => {
    const u = new URL(pathOrUrl, consoleUrl)
    return browser.fetch(`${replica.url}${u.pathname}${u.search}`, init, consoleUrl)
  }
  const whoami = async (browser: Browser, replica: GatewayProc) => {
    const res = await via(browser, replica, '/console/api/v1/whoami')
    return {status: res.status, body: (await res.json()) as {subject?: string; kind?: string}}
  }

  /**
   * Starts a login through `start` and plays the person at the provider (picks the approver,
   * allows); returns the browser and the callback URL the provider sent it to, on the console's address.
   */
  async function loginUntilCallback(start: GatewayProc): Promise<{browser: Browser; callback: string}> {
    const browser = new Browser()
    const begun = await via(browser, start, '/console/login?next=/console/approvals')
    assert.equal(begun.status, 302, await begun.text())
    assert.ok(browser.cookie(consoleUrl, 'hoop-console-login'), 'a login cookie')
    let next = begun.headers.get('location') ?? ''
    for (let hops = 0; hops < 20; hops++) {
      assert.equal(new URL(next).origin, idp.url, `only the provider until the callback: ${next}`)
      let res = await browser.fetch(next)
      if (res.status === 200) {
        const html = await res.text()
        const form = /<form id="(login|consent)" method="post" action="([^"]+)">/.exec(html)
        assert.ok(form, `a login or consent form at ${next}: ${html.slice(0, 300)}`)
        res = await browser.fetch(new URL(form[2], idp.url).href, {method: 'POST', form: form[1] === 'login' ? {email: APPROVER.email} : {}})
      }
      assert.ok(res.status >= 300 && res.status < 400, `a redirect from ${next}, not HTTP ${res.status}`)
      next = new URL(res.headers.get('location') ?? '', next).href
      if (next.startsWith(`${consoleUrl}/console/callback?`)) return {browser, callback: next}
    }
    throw new Error('the provider never sent the browser back to the console')
  }

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    await adminQuery(`CREATE DATABASE ${DB}`)
    consoleUrl = `http://127.0.0.1:${await freePort()}`
    idp = await startDevIdpServer({users: [APPROVER], consoleRedirectUri: `${consoleUrl}/console/callback`})
    const config = `${sharedStoreConfig('    - {id: dbas, subjects: {groups: [dba]}, connections: [pg], effect: allow}\n')}auth:
  oidc: {issuer: "${idp.issuer}", clientId: hoop-cli, consoleClientId: ${DEV_CONSOLE_CLIENT_ID}, audience: hoop, consoleUrl: "${consoleUrl}"}
`
    // One after the other: the first migrates the store.
    for (const name of ['a', 'b']) mkdirSync(join(dir.path, name))
    a = await startGatewayProc(config, {dir: join(dir.path, 'a'), env: {HOOP_STORE_URL: STORE_URL}})
    b = await startGatewayProc(config, {dir: join(dir.path, 'b'), env: {HOOP_STORE_URL: STORE_URL}})
  })

  after(async () => {
    await a?.stop()
    await b?.stop()
    await idp?.close()
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    dir.cleanup()
  })

  it('completes at B a login started on A; the session serves on both; a replayed callback fails on either; sign-out on B ends it on A', async () => {
    const {browser, callback} = await loginUntilCallback(a)
    const done = await via(browser, b, callback)
    const page = await done.text()
    assert.equal(done.status, 200, page)
    assert.match(page, /Signed in as approver@example\.com\./)
    const id = browser.cookie(consoleUrl, 'hoop-console')
    assert.ok(id, 'a session cookie from B')
    assert.equal(browser.cookie(consoleUrl, 'hoop-console-login'), undefined, 'the login cookie is cleared')

    for (const replica of [a, b]) {
      const me = await whoami(browser, replica)
      assert.equal(me.status, 200, `${replica === a ? 'A' : 'B'}: ${JSON.stringify(me.body)}`)
      assert.deepEqual([me.body.kind, me.body.subject], ['user', APPROVER.email])
    }

    // The same callback again, with the login cookie an attacker replaying it would also send.
    const state = new URL(callback).searchParams.get('state') ?? ''
    for (const replica of [a, b]) {
      const again = await fetch(`${replica.url}${new URL(callback).pathname}${new URL(callback).search}`, {headers: {cookie: `hoop-console-login=${state}`}, redirect: 'manual'})
      assert.equal(again.status, 403)
      assert.match(await again.text(), SPENT)
      assert.equal(again.headers.getSetCookie().filter((c) => c.startsWith('hoop-console=')).length, 0, 'no session from a replay')
    }

    const session = (await (await via(browser, a, '/console/api/session')).json()) as {csrf: string}
    const out = await via(browser, b, '/console/logout', {method: 'POST', headers: {origin: consoleUrl, 'x-hoop-csrf': session.csrf, 'content-type': 'application/json'}})
    assert.equal(out.status, 200, await out.text())
    assert.equal(browser.cookie(consoleUrl, 'hoop-console'), undefined, 'the browser forgets the cookie')
    // Whoever kept a copy of it finds it dead on A.
    const kept = await fetch(`${a.url}/console/api/v1/whoami`, {headers: {cookie: `hoop-console=${id}`}})
    assert.equal(kept.status, 401, 'signed out on B is signed out on A')
    const shell = await fetch(`${a.url}/console/approvals`, {headers: {cookie: `hoop-console=${id}`}, redirect: 'manual'})
    assert.equal(shell.status, 302)
    assert.match(shell.headers.get('location') ?? '', /^\/console\/login\?next=/)

    for (const gw of [a, b]) {
      const log = gw.proc.stderr()
      assert.ok(!log.includes(id) && !log.includes(state), 'neither replica logs the session id or the login state')
    }
  })

  it('signs in once when the same callback reaches both replicas at the same moment', async () => {
    const {browser, callback} = await loginUntilCallback(b)
    const [onA, onB] = await Promise.all([via(browser, a, callback), via(browser, b, callback)])
    const statuses = [onA.status, onB.status].sort()
    assert.deepEqual(statuses, [200, 403], 'one replica signs the browser in, the other refuses')
    const refused = onA.status === 403 ? onA : onB
    assert.match(await refused.text(), SPENT)
  })
})
