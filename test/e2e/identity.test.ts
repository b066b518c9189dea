// `hoop login` end to end with the built CLI: `hoop gateway --dev` embeds the real oidc-provider;
// the CLI process runs the device flow while this test plays the user in the "browser"; the
// tokens land in the file store under a temp XDG_CONFIG_HOME; whoami shows the verified
// identity; connect carries psql with it; refresh and logout work from the CLI too.
import assert from 'node:assert/strict'
import {readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {psql} from '../helpers/net.js'
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
