// Admin calls against a running gateway: an admin identity creates, lists and revokes agents and
// service accounts; a non-admin is refused; revocation through the API cuts a live agent at once.
import assert from 'node:assert/strict'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'

describe('admin API through the built CLI', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-admin-')
  let gw: GatewayProc
  let adminToken: string
  let userToken: string

  before(async () => {
    const dataDir = `${dir.path}/data`
    adminToken = await createSecret('service-accounts', 'root-admin', dataDir, ['admins'])
    userToken = await createSecret('service-accounts', 'plain-user', dataDir, ['eng'])
    gw = await startGatewayProc('connections: []\n', {dir: dir.path, dataDir})
  })

  after(async () => {
    await gw?.stop()
    dir.cleanup()
  })

  const admin = (args: string[], token = adminToken) => runHoop(['admin', ...args, '--gateway', gw.url, '--json'], {env: {HOOP_TOKEN: token}})

  it('creates an agent once, shows it online, and revoking cuts the live agent', async () => {
    const created = await admin(['agents', 'create', 'edge-1'])
    assert.equal(created.code, 0, created.stderr)
    const {name, token} = JSON.parse(created.stdout) as {name: string; token: string}
    assert.equal(name, 'edge-1')
    assert.match(token, /^hoop_ag_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/)
    const dup = await admin(['agents', 'create', 'edge-1'])
    assert.equal(dup.code, 23)

    const agent = spawnHoop(['agent', '--gateway', gw.url], {env: {HOOP_AGENT_TOKEN: token}})
    await agent.waitFor(/connected to gateway/)
    const listed = JSON.parse((await admin(['agents', 'list'])).stdout) as {agents: Array<{name: string; online: boolean}>}
    assert.deepEqual(
      listed.agents.map((a) => [a.name, a.online]),
      [['edge-1', true]],
    )
    const revoked = await admin(['agents', 'revoke', 'edge-1'])
    assert.equal(revoked.code, 0, revoked.stderr)
    assert.equal(await agent.exited, 11)
    assert.match(agent.stderr(), /revoked/)
    const after = JSON.parse((await admin(['agents', 'list'])).stdout) as {agents: Array<{revokedAt?: string; online: boolean}>}
    assert.ok(after.agents[0].revokedAt)
    assert.equal(after.agents[0].online, false)
  })

  it('manages service accounts, never listing secrets or hashes', async () => {
    const created = await admin(['service-accounts', 'create', 'deployer', '--group', 'ci', '--group', 'deploy'])
    assert.equal(created.code, 0, created.stderr)
    const sa = JSON.parse(created.stdout) as {token: string; groups: string[]}
    assert.deepEqual(sa.groups, ['ci', 'deploy'])
    const who = (await (await fetch(`${gw.url}/v1/whoami`, {headers: {authorization: `Bearer ${sa.token}`}})).json()) as {subject: string; groups: string[]}
    assert.equal(who.subject, 'deployer')
    const list = await admin(['service-accounts', 'list'])
    assert.ok(!/hash|hoop_sa_/.test(list.stdout), 'list must not expose secrets or hashes')
    assert.ok(list.stdout.includes('deployer'))
  })

  it('refuses admin calls from a non-admin and rejects bad input', async () => {
    const r = await admin(['agents', 'list'], userToken)
    assert.equal(r.code, 15)
    assert.match(r.stdout, /admin calls need membership of admins/)
    const bad = await admin(['agents', 'create', 'Bad Name!'])
    assert.equal(bad.code, 2)
    assert.match(bad.stdout, /agent name must be/)
  })
})
