// The web console in a real browser (Playwright driving Debian's Chromium) against the built CLI's
// gateway in dev mode (the embedded OpenID Provider and its demo users) and real PostgreSQL:
// the approver logs in with the authorization code flow, sees a request a psql session made
// through `hoop connect` appear without a reload, approves it with a reason, and the statement
// then runs; an auditor downloads an evidence package that `hoop audit verify` accepts; an engineer
// cannot reach approver or auditor actions (asked of the API, not only the UI); a cross-site POST
// is refused. A screenshot of each page goes to test/output/console/.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import Database from 'better-sqlite3'
import {chromium, type Browser, type BrowserContext, type Page} from 'playwright-core'
import {ROOT, runHoop, spawnHoop, tempDir, type Proc} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {sh, shellQuote} from '../helpers/net.js'

const CHROMIUM = process.env.HOOP_CHROMIUM ?? '/usr/bin/chromium'
const OUT = join(ROOT, 'test', 'output', 'console')
const DB = `hoop_console_${randomBytes(4).toString('hex')}`

/** Engineers and DBAs may use pg; any write there waits for one DBA's approval; e-mail addresses are masked. */
const CONFIG = `connections:
  - {name: pg, type: postgres, target: 127.0.0.1:5432, database: ${DB}, username: postgres}
policy:
  version: 1
  rules:
    - {id: people, effect: allow, subjects: {groups: [engineering, dba]}, connections: [pg]}
    - {id: writes-need-approval, effect: review, connections: [pg], match: {writes: true}, review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}}
    - {id: hide-email, effect: mask, connections: [pg], mask: {columns: ["t.email"]}}
`

/** psql as the superuser straight to PostgreSQL (set-up, checks, clean-up): tuples only, unaligned. */
async function admin(sql: string, database = 'postgres'): Promise<string> {
  const r = await sh(`psql "host=127.0.0.1 port=5432 user=postgres dbname=${database}" -X -A -t -v ON_ERROR_STOP=1 -c ${shellQuote(sql)}`)
  if (r.code !== 0) throw new Error(`psql: ${r.stderr}`)
  return r.stdout.trim()
}

describe('web console in Chromium (dev IdP, built CLI, real PostgreSQL)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-console-')
  let gw: GatewayProc
  let browser: Browser
  let connect: Proc
  let localPort = 0
  const contexts: BrowserContext[] = []

  /** The engineer's psql, through `hoop connect`'s local port. */
  const psql = (sql: string) => sh(`psql "host=127.0.0.1 port=${localPort} user=postgres dbname=${DB}" -X -A -v ON_ERROR_STOP=1 -c ${shellQuote(sql)}`, {env: {PGCONNECT_TIMEOUT: '10'}})
  const counter = async () => Number(await admin('SELECT n FROM t WHERE id = 1', DB))
  const shot = (page: Page, name: string) => page.screenshot({path: join(OUT, `${name}.png`), fullPage: true})

  /** Logs in through the dev provider's pages as one demo user, in a fresh browser context. */
  async function login(email: string, start = '/console/'): Promise<Page> {
    const context = await browser.newContext({acceptDownloads: true})
    contexts.push(context)
    const page = await context.newPage()
    await page.goto(gw.url + start)
    await page.getByRole('button', {name: new RegExp(email.replace('.', '\\.'))}).click()
    await page.waitForURL(/\/oidc\/interaction\/|\/console\//)
    if (page.url().includes('/interaction/')) await page.getByRole('button', {name: 'Allow'}).click()
    await page.waitForURL(new RegExp(`${start.replace(/\//g, '\\/')}$`))
    await page.locator('#who').waitFor()
    return page
  }

  /** A call to the console's API from the page itself: the browser's cookie, our CSRF token. */
  function apiFromPage(page: Page, method: string, path: string, body?: unknown): Promise<{status: number; body: {error?: {code: string; message: string}} & Record<string, unknown>}> {
    return page.evaluate(
      async ([method, path, body]) => {
        const s = (await (await fetch('/console/api/session')).json()) as {csrf: string}
        const res = await fetch(path as string, {method: method as string, headers: {'content-type': 'application/json', 'x-hoop-csrf': s.csrf}, body: body === undefined ? undefined : JSON.stringify(body)})
        return {status: res.status, body: (await res.json()) as {error?: {code: string; message: string}} & Record<string, unknown>}
      },
      [method, path, body] as const,
    )
  }

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip()
    mkdirSync(OUT, {recursive: true})
    await admin(`CREATE DATABASE ${DB}`)
    await admin("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, email text); INSERT INTO t VALUES (1, 0, 'ann@example.com'), (2, 0, 'bob@example.com')", DB)
    const dataDir = join(dir.path, 'data')
    const token = await createSecret('service-accounts', 'eng-bot', dataDir, ['engineering'])
    gw = await startGatewayProc(CONFIG, {dir: dir.path, dataDir, extraArgs: ['--dev']})
    connect = spawnHoop(['connect', 'pg', '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    localPort = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    browser = await chromium.launch({executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking']})
  })

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {})
    await browser?.close()
    await connect?.stop()
    await gw?.stop()
    await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {})
    dir.cleanup()
  })

  it('sends a browser opening the gateway to the console, and API clients still get their JSON 401', async () => {
    const browserGet = await fetch(gw.url + '/', {headers: {accept: 'text/html'}, redirect: 'manual'})
    assert.equal(browserGet.status, 302)
    assert.equal(browserGet.headers.get('location'), '/console/')
    const apiGet = await fetch(gw.url + '/', {headers: {accept: 'application/json'}})
    assert.equal(apiGet.status, 401)
    assert.equal(((await apiGet.json()) as {error: {code: string}}).error.code, 'TOKEN_REJECTED')
    const page = await fetch(gw.url + '/console/approvals', {redirect: 'manual'})
    assert.equal(page.status, 302, 'no session: the page sends the browser to log in')
    assert.match(page.headers.get('location') ?? '', /^\/console\/login\?next=%2Fconsole%2Fapprovals$/)
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'; script-src 'self'/)
  })

  it('the approver logs in, sees the psql request arrive, approves it with a reason, and the statement runs', async () => {
    const page = await login('approver@example.com', '/console/approvals')
    const cookies = await page.context().cookies()
    const session = cookies.find((c) => c.name === 'hoop-console')
    assert.ok(session, 'a session cookie')
    assert.equal(session.httpOnly, true)
    assert.equal(session.sameSite, 'Strict')
    await page.locator('#approvals').getByText(/No pending requests/).waitFor()

    const held = await psql('UPDATE t SET n = n + 1 WHERE id = 1')
    assert.notEqual(held.code, 0)
    const id = /hoop approvals approve (apr_[A-Za-z0-9_-]{12})/.exec(held.stderr)?.[1]
    assert.ok(id, held.stderr)
    // No reload: the inbox polls.
    const link = page.getByRole('link', {name: id})
    await link.waitFor()
    await page.getByText('UPDATE t SET n = n + 1 WHERE id = 1').waitFor()
    await shot(page, 'approvals')

    await link.click()
    await page.waitForURL(new RegExp(`/console/approvals/${id}$`))
    await page.locator('#statement').getByText('UPDATE t SET n = n + 1 WHERE id = 1').waitFor()
    await page.getByRole('button', {name: 'Approve'}).click()
    await page.getByText('A reason is required to approve.').waitFor()
    await page.getByLabel(/Reason/).fill('change ticket OPS-42')
    await page.getByRole('button', {name: 'Approve'}).click()
    await page.locator('#outcome').getByText(`${id} approved: now approved.`).waitFor()
    await shot(page, 'approval')

    const ran = await psql('UPDATE t SET n = n + 1 WHERE id = 1')
    assert.equal(ran.code, 0, ran.stderr)
    assert.match(ran.stdout, /UPDATE 1/)
    assert.equal(await counter(), 1)
    // The last session before the auditor's visit: a read of a masked column.
    const read = await psql('SELECT email FROM t WHERE id = 1')
    assert.equal(read.code, 0, read.stderr)
    assert.doesNotMatch(read.stdout, /ann@example\.com/)

    await page.goto(gw.url + '/console/')
    await page.locator('input#connect-pg').waitFor()
    assert.equal(await page.locator('input#connect-pg').inputValue(), `hoop connect pg --gateway ${gw.url}`)
    assert.equal(await page.locator('input#client-pg').inputValue(), `psql "host=127.0.0.1 port=5433 user=postgres dbname=${DB}"`)
    await shot(page, 'connections')

    // Audited like a CLI decision: the approver, the outcome and the justification.
    const db = new Database(join(gw.dataDir, 'hoop.db'), {readonly: true, fileMustExist: true})
    try {
      const rows = db.prepare("SELECT body FROM audit_events WHERE kind = 'approval.decided'").all() as {body: string}[]
      const decided = rows.map((r) => JSON.parse(r.body) as {actor?: {name: string}; data: {approval_id: string; outcome: string; justification_hash?: string}})
      const mine = decided.find((e) => e.data.approval_id === id)
      assert.ok(mine, 'an approval.decided event')
      assert.equal(mine.actor?.name, 'approver@example.com')
      assert.equal(mine.data.outcome, 'approved')
    } finally {
      db.close()
    }
  })

  it('the auditor exports a package that hoop audit verify accepts, sees the head, the exports, sessions and the policy', async () => {
    const page = await login('admin@example.com', '/console/evidence')
    await page.getByLabel('Connection').fill('pg')
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', {name: 'Download evidence package'}).click()])
    const file = join(dir.path, 'evidence.tar.gz')
    await download.saveAs(file)
    const verified = await runHoop(['audit', 'verify', file, '--json'])
    assert.equal(verified.code, 0, verified.stdout + verified.stderr)
    assert.equal((JSON.parse(verified.stdout) as {ok: boolean}).ok, true)

    await page.reload()
    await page.locator('#exports').getByText('admin@example.com').waitFor()
    await page.getByRole('button', {name: 'Verify now'}).click()
    await page.locator('#verified').getByText(/^Verified: \d+ events/).waitFor()
    assert.match((await page.locator('#anchor').textContent()) ?? '', /head of size \d+ published/)
    await shot(page, 'evidence')

    await page.goto(gw.url + '/console/sessions?connection=pg')
    const first = page.locator('#sessions a').first()
    await first.waitFor()
    await shot(page, 'sessions')
    await first.click()
    // The replay is what the client saw: the statement, and the address masked.
    const replay = page.locator('pre.replay')
    await replay.getByText(/SELECT email FROM t WHERE id = 1/).first().waitFor()
    assert.doesNotMatch((await replay.textContent()) ?? '', /ann@example\.com/)
    await shot(page, 'session-replay')

    await page.goto(gw.url + '/console/policy')
    await page.getByText('writes-need-approval').first().waitFor()
    await page.getByLabel('User (email)').fill('someone@example.com')
    await page.getByLabel('Groups (comma separated)').fill('engineering')
    await page.getByLabel('Statement (optional)').fill('DELETE FROM t WHERE id = 2')
    await page.getByRole('button', {name: 'Ask'}).click()
    await page.locator('#answer').getByText('statement: review [rule writes-need-approval]').waitFor()
    await shot(page, 'policy')
    // Bad questions get clear errors, not a crash.
    const unknown = await apiFromPage(page, 'POST', '/console/api/v1/policy/test', {user: 'a@example.com', connection: 'nope'})
    assert.equal(unknown.status, 404)
    assert.match(unknown.body.error?.message ?? '', /unknown connection "nope"/)
    const badGroups = await apiFromPage(page, 'POST', '/console/api/v1/policy/test', {user: 'a@example.com', groups: 'dba', connection: 'pg'})
    assert.equal(badGroups.status, 400)
    const huge = await apiFromPage(page, 'POST', '/console/api/v1/policy/test', {user: 'a@example.com', connection: 'pg', sql: 'x'.repeat(70_000)})
    assert.equal(huge.status, 400)
    assert.match(huge.body.error?.message ?? '', /exceeds limit 65536/)

  })

  it('an engineer reaches no approver or auditor action, and a cross-site POST is refused', async () => {
    const held = await psql('UPDATE t SET n = n + 1 WHERE id = 2')
    const id = /hoop approvals approve (apr_[A-Za-z0-9_-]{12})/.exec(held.stderr)?.[1]
    assert.ok(id, held.stderr)

    const eng = await login('engineer@example.com', '/console/approvals')
    const approve = await apiFromPage(eng, 'POST', `/console/api/v1/approvals/${id}/approve`, {reason: 'looks fine to me'})
    assert.equal(approve.status, 403, JSON.stringify(approve.body))
    assert.match(approve.body.error?.message ?? '', /approver|may not|cannot/)
    for (const path of ['/console/api/v1/audit/export', '/console/api/v1/audit/verify', '/console/api/v1/sessions', '/console/api/v1/policy', '/console/api/v1/audit/exports']) {
      const r = await apiFromPage(eng, 'GET', path)
      assert.equal(r.status, 403, `${path}: ${JSON.stringify(r.body)}`)
    }
    const test = await apiFromPage(eng, 'POST', '/console/api/v1/policy/test', {user: 'x@example.com', connection: 'pg'})
    assert.equal(test.status, 403)

    // A page on another site (localhost is not the same site as 127.0.0.1) posts a form to the
    // approver's console: the Strict cookie stays home and the Origin is not ours.
    const approver = await login('approver@example.com', '/console/approvals')
    const target = `${gw.url}/console/api/v1/approvals/${id}/approve`
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, {'content-type': 'text/html'})
      res.end(`<form id="f" method="post" action="${target}" enctype="text/plain"><input name='{"reason":"x","a":"' value='"}'></form><script>document.getElementById('f').submit()</script>`)
    })
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r))
    try {
      const evilPage = await approver.context().newPage()
      const posted = evilPage.waitForResponse((r) => r.url() === target)
      await evilPage.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`)
      const res = await posted
      assert.ok(res.status() === 401 || res.status() === 403, `cross-site POST answered ${res.status()}`)
      await shot(evilPage, 'cross-site-refused')
    } finally {
      evil.closeAllConnections()
      await new Promise((r) => evil.close(r))
    }
    // With the approver's cookie but from another origin, or without the CSRF token: refused too.
    const cookie = (await approver.context().cookies()).find((c) => c.name === 'hoop-console')!
    const forged = await fetch(target, {method: 'POST', headers: {cookie: `hoop-console=${cookie.value}`, origin: 'http://evil.example', 'content-type': 'application/json'}, body: '{"reason":"x"}'})
    assert.equal(forged.status, 403)
    assert.match(((await forged.json()) as {error: {message: string}}).error.message, /cross-origin/)
    const noCsrf = await fetch(target, {method: 'POST', headers: {cookie: `hoop-console=${cookie.value}`, origin: gw.url, 'content-type': 'application/json'}, body: '{"reason":"x"}'})
    assert.equal(noCsrf.status, 403)
    assert.match(((await noCsrf.json()) as {error: {message: string}}).error.message, /CSRF/)

    const still = await apiFromPage(approver, 'GET', `/console/api/v1/approvals/${id}`)
    assert.equal(still.body.state, 'pending', 'nothing approved the request')
  })
})
