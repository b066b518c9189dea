// `hoop login` end to end with the built CLI: `hoop gateway --dev` embeds the real oidc-provider;
// the CLI process runs the device flow while this test plays the user in the "browser"; the
// tokens land in the file store under a temp XDG_CONFIG_HOME; whoami shows the verified
// identity; connect carries psql with it; refresh and logout work from the CLI too.
import assert from 'node:assert/strict'
import {readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {freePort, psql} from '../helpers/net.js'
import {startDevIdpServer} from '../../src/identity/dev-idp.js'
import {completeDeviceLogin} from '../integration/identity/browser.js'

const CONFIG = `connections:
  - name: pg-dev
    type: postgres
    target: 127.0.0.1:5432
    database: test
    username: postgres
policy:
  version: 1
  rules:
    - id: dba-access
      subjects: {groups: [dba]}
      connections: [pg-dev]
      effect: allow
`

describe('identity e2e: hoop login against hoop gateway --dev (built CLI)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-id-')
  const home = join(dir.path, 'home')
  const env = {HOME: home, XDG_CONFIG_HOME: join(home, '.config')}
  let gw: GatewayProc

  before(async () => {
    gw = await startGatewayProc(CONFIG, {dir: dir.path, extraArgs: ['--dev']})
  })
  after(async () => {
    await gw?.stop()
    dir.cleanup()
  })

  async function login(email: string): Promise<{code: number | null; stdout: string; stderr: string}> {
    const proc = spawnHoop(['login', '--gateway', gw.url, '--no-browser', '--credential-store', 'file', '--json'], {env})
    const m = await proc.waitFor(/open (http\S+)/)
    await completeDeviceLogin(m[1], email)
    const code = await proc.exited
    return {code, stdout: proc.stdout(), stderr: proc.stderr()}
  }

  it('logs in with the device flow, stores tokens 0600, whoami shows the identity, connect works with it', async () => {
    const r = await login('approver@example.com')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Credentials are stored in .*credentials\.json \(file, mode 0600\)/)
    const out = JSON.parse(r.stdout) as {email: string; groups: string[]; store: {kind: string}}
    assert.equal(out.email, 'approver@example.com')
    assert.deepEqual(out.groups, ['dba', 'approvers'])
    const file = join(home, '.config', 'hoop', 'credentials.json')
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(statSync(join(home, '.config', 'hoop')).mode & 0o777, 0o700)

    // The gateway URL was remembered: whoami needs no --gateway.
    const who = await runHoop(['whoami', '--json'], {env})
    assert.equal(who.code, 0, who.stderr)
    const id = JSON.parse(who.stdout) as {kind: string; email: string; groups: string[]; gateway: string; issuer: string; expiresAt: string}
    assert.equal(id.kind, 'user')
    assert.equal(id.email, 'approver@example.com')
    assert.deepEqual(id.groups, ['dba', 'approvers'])
    assert.equal(id.gateway, gw.url)
    assert.equal(id.issuer, `${gw.url}/oidc`)
    assert.ok(Date.parse(id.expiresAt) > Date.now())

    const conn = spawnHoop(['connect', 'pg-dev', '--port', '0', '--json', '--gateway', gw.url], {env})
    try {
      const m = await conn.waitFor(/\{"connection".*\}/)
      const {port} = JSON.parse(m[0]) as {port: number}
      const q = await psql(port, 'select 40 + 2')
      assert.match(JSON.stringify(q), /42/)
    } finally {
      await conn.stop()
    }
  })

  it('renews an expiring token silently, then logout revokes and deletes it', async () => {
    const file = join(home, '.config', 'hoop', 'credentials.json')
    const data = JSON.parse(readFileSync(file, 'utf8')) as {profiles: Record<string, {accessToken: string; expiresAt: number}>}
    const before = data.profiles[gw.url].accessToken
    data.profiles[gw.url].expiresAt = Math.floor(Date.now() / 1000) + 5
    writeFileSync(file, JSON.stringify(data))
    const who = await runHoop(['whoami', '--json', '--gateway', gw.url], {env})
    assert.equal(who.code, 0, who.stderr)
    const after = (JSON.parse(readFileSync(file, 'utf8')) as typeof data).profiles[gw.url]
    assert.notEqual(after.accessToken, before)

    const out = await runHoop(['logout', '--gateway', gw.url, '--json'], {env})
    assert.equal(out.code, 0, out.stderr)
    assert.deepEqual(JSON.parse(out.stdout), {gateway: gw.url, removed: true, revoked: true})
    const again = await runHoop(['whoami', '--gateway', gw.url], {env})
    assert.equal(again.code, 11)
    assert.match(again.stderr, /not logged in/)
  })

  it('a denied login exits 11 with a clear message', async () => {
    const proc = spawnHoop(['login', '--gateway', gw.url, '--no-browser', '--credential-store', 'file'], {env})
    const m = await proc.waitFor(/open (http\S+)/)
    await completeDeviceLogin(m[1], 'engineer@example.com', {deny: true})
    assert.equal(await proc.exited, 11)
    assert.match(proc.stderr(), /the login was denied in the browser/)
  })

  it('the gateway refuses a forged token with a clear error before any stream opens', async () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    const forged = `${b64({alg: 'none'})}.${b64({iss: `${gw.url}/oidc`, aud: 'hoop', sub: 'admin@example.com', groups: ['dba'], exp: now + 300})}.`
    const r = await runHoop(['connections', '--gateway', gw.url, '--json'], {env: {...env, HOOP_ID_TOKEN: forged}})
    assert.equal(r.code, 11)
    assert.match(r.stdout, /algorithm \\?"none\\?" is not allowed/)
    const conn = spawnHoop(['connect', 'pg-dev', '--port', '0', '--json', '--gateway', gw.url], {env: {...env, HOOP_ID_TOKEN: forged}})
    assert.equal(await conn.exited, 11)
    assert.match(conn.stdout() + conn.stderr(), /not allowed/)
  })
})

describe('identity e2e: hoop login --dev-user, headless (built CLI)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-devuser-')
  const home = join(dir.path, 'home')
  const env = {HOME: home, XDG_CONFIG_HOME: join(home, '.config'), HOOP_CREDENTIAL_STORE: 'file'}
  let dev: GatewayProc
  let prod: GatewayProc

  before(async () => {
    dev = await startGatewayProc(CONFIG, {dir: join(dir.path), dataDir: join(dir.path, 'dev-data'), extraArgs: ['--dev']})
    prod = await startGatewayProc(CONFIG, {dir: join(dir.path), dataDir: join(dir.path, 'prod-data')})
  })
  after(async () => {
    await dev?.stop()
    await prod?.stop()
    dir.cleanup()
  })

  it('signs in as a demo user without a browser, then works like any login', async () => {
    const r = await runHoop(['login', '--dev-user', 'approver@example.com', '--gateway', dev.url, '--json'], {env})
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as {email: string}).email, 'approver@example.com')
    assert.match(r.stderr, /Signing in to the dev identity provider as approver@example\.com \(no browser: --dev-user\)/)
    assert.doesNotMatch(r.stderr, /open http/, 'no page to open')
    const who = await runHoop(['whoami', '--json', '--gateway', dev.url], {env})
    assert.equal(who.code, 0, who.stderr)
    assert.deepEqual((JSON.parse(who.stdout) as {groups: string[]}).groups, ['dba', 'approvers'])
  })

  it('names the demo users when the one asked for is not among them', async () => {
    const r = await runHoop(['login', '--dev-user', 'mallory@example.com', '--gateway', dev.url], {env})
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /mallory@example\.com is not a demo user of this gateway; its demo users are engineer@example\.com, approver@example\.com, admin@example\.com/)
  })

  it('is refused by a gateway that is not in dev mode, and for a gateway that is not on this machine', async () => {
    const prodRun = await runHoop(['login', '--dev-user', 'engineer@example.com', '--gateway', prod.url], {env})
    assert.equal(prodRun.code, 2, prodRun.stderr)
    assert.match(prodRun.stderr, /--dev-user needs a gateway running with --dev \(demo users, no passwords\); http:\/\/127\.0\.0\.1:\d+ is not in dev mode: run `hoop login` without --dev-user/)
    // A documentation address (RFC 5737): refused before any request is made.
    const remote = await runHoop(['login', '--dev-user', 'engineer@example.com', '--gateway', 'http://192.0.2.10:8009'], {env, timeoutMs: 10_000})
    assert.equal(remote.code, 2, remote.stderr)
    assert.match(remote.stderr, /--dev-user signs in only to a dev-mode gateway on this machine \(127\.0\.0\.1, localhost or ::1\); http:\/\/192\.0\.2\.10:8009 is not one/)
  })
})

describe('identity e2e: from dev mode to production on the same URL, hints lead somewhere (built CLI)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-switch-')
  const home = join(dir.path, 'home')
  const env = {HOME: home, XDG_CONFIG_HOME: join(home, '.config'), HOOP_CREDENTIAL_STORE: 'file'}
  let gw: GatewayProc | undefined
  let idp: Awaited<ReturnType<typeof startDevIdpServer>> | undefined
  let listen = ''
  let url = ''

  before(async () => {
    const port = await freePort()
    listen = `127.0.0.1:${port}`
    url = `http://${listen}`
    gw = await startGatewayProc(CONFIG, {dir: dir.path, extraArgs: ['--dev'], listen})
    const r = await runHoop(['login', '--dev-user', 'engineer@example.com', '--gateway', url], {env})
    assert.equal(r.code, 0, r.stderr)
    await gw.stop()
  })
  after(async () => {
    await gw?.stop()
    await idp?.close()
    dir.cleanup()
  })

  it('a production gateway with no login issuer: the stale dev login gets "hoop logout", hoop login does not send you back to itself', async () => {
    gw = await startGatewayProc(CONFIG, {dir: dir.path, listen})
    const conns = await runHoop(['connections', '--gateway', url], {env})
    assert.equal(conns.code, 11, conns.stderr)
    assert.match(conns.stderr, /token issuer "http:\/\/127\.0\.0\.1:\d+\/oidc" is not trusted/)
    assert.match(conns.stderr, new RegExp(`Hint: your stored login for ${url} was issued by ${url}/oidc .*remove the stale login with \`hoop logout --gateway ${url}\`.*HOOP_TOKEN.*auth\\.oidc`))
    assert.doesNotMatch(conns.stderr, /run `hoop login`/)

    const login = await runHoop(['login', '--gateway', url], {env})
    assert.equal(login.code, 11, login.stderr)
    assert.match(login.stderr, new RegExp(`Error: gateway ${url} has no login issuer: its config sets no auth\\.oidc`))
    assert.match(login.stderr, new RegExp(`Hint: your stored login for it \\(from ${url}/oidc\\) is stale: remove it with \`hoop logout --gateway ${url}\`; then use a service-account key \\(HOOP_TOKEN\\), ask the gateway's admin to configure auth\\.oidc`))
    assert.doesNotMatch(login.stderr, /run `hoop login`/)

    const out = await runHoop(['logout', '--gateway', url, '--json'], {env})
    assert.equal(out.code, 0, out.stderr)
    assert.equal((JSON.parse(out.stdout) as {removed: boolean}).removed, true)
    const after = await runHoop(['connections', '--gateway', url], {env})
    assert.equal(after.code, 11)
    assert.match(after.stderr, /Error: no credential for http:\/\/127\.0\.0\.1:\d+: not logged in/)
    assert.match(after.stderr, /Hint: http:\/\/127\.0\.0\.1:\d+ has no login issuer \(its config sets no auth\.oidc\), so `hoop login` cannot help: set HOOP_TOKEN/)
    await gw.stop()
    gw = undefined
  })

  it('a production gateway with another issuer: hoop login replaces the stale login (the hint says so, with the profile)', async () => {
    // The dev login again, in a profile this time.
    const penv = {...env, HOOP_PROFILE: 'oncall'}
    gw = await startGatewayProc(CONFIG, {dir: dir.path, extraArgs: ['--dev'], listen})
    assert.equal((await runHoop(['login', '--dev-user', 'engineer@example.com', '--gateway', url], {env: penv})).code, 0)
    await gw.stop()
    idp = await startDevIdpServer({users: [{email: 'erin@corp.example', name: 'Erin', groups: ['engineering']}]})
    gw = await startGatewayProc(`${CONFIG}auth:\n  oidc: {issuer: "${idp.issuer}", clientId: hoop-cli, audience: hoop}\n`, {dir: dir.path, listen})
    const conns = await runHoop(['connections', '--gateway', url], {env: penv})
    assert.equal(conns.code, 11, conns.stderr)
    assert.match(conns.stderr, new RegExp(`Hint: your stored login for ${url} was issued by ${url}/oidc; the gateway now trusts ${idp.issuer}: run \`HOOP_PROFILE=oncall hoop login --gateway ${url}\` to replace it`))
    const none = await runHoop(['whoami', '--gateway', url], {env: {...env, HOOP_PROFILE: 'nobody'}})
    assert.equal(none.code, 11)
    assert.match(none.stderr, new RegExp(`Error: no credential for ${url} in profile "nobody" \\(HOOP_PROFILE\\): that profile has not logged in to this gateway`))
    assert.match(none.stderr, new RegExp(`Hint: run \`HOOP_PROFILE=nobody hoop login --gateway ${url}\``))
  })
})
