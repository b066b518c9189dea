// Compatibility suite, mysql2 half, through the real thing (issue 13): the built CLI's gateway
// (MySQL engine), agent and `hoop connect`, with relay streams between them. mysql2 observes what
// it observes directly; a connection the server kills is closed toward the client and a pool
// replaces it. The full scenario list runs against the engine alone in
// test/integration/compat/mysql2.test.ts; here a subset, end to end.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import mysql from 'mysql2/promise'
import {type Proc, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {coreOf, poolReplacesKilled, scenarioOptions, scenarios} from '../integration/compat/mysql2-scenarios.js'

const CONFIG = `connections:
  - name: maria
    type: mysql
    target: 127.0.0.1:3306
    agent: edge
    database: test
    username: root
policy:
  version: 1
  rules:
    - {id: app-maria, subjects: {groups: [app]}, connections: [maria], effect: allow}
`

describe('mysql2 through the gateway, agent and hoop connect (built CLI) observes what it observes directly', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-mysql-compat-')
  let gw: GatewayProc
  let agent: Proc
  let connect: Proc
  let port: number
  const options = (p: number, extra: object = {}): mysql.ConnectionOptions => ({host: '127.0.0.1', port: p, user: 'root', database: 'test', ...extra})

  before(async () => {
    const dataDir = join(dir.path, 'data')
    const agentToken = await createSecret('agents', 'edge', dataDir)
    const token = await createSecret('service-accounts', 'app', dataDir, ['app'])
    gw = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    agent = spawnHoop(['agent', '--gateway', gw.url], {env: {HOOP_AGENT_TOKEN: agentToken}})
    await agent.waitFor(/connected to gateway/)
    connect = spawnHoop(['connect', 'maria', '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    port = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
  })

  after(async () => {
    await connect?.stop()
    await agent?.stop()
    await gw?.stop()
    dir.cleanup()
  })

  for (const name of ['types', 'json', 'manyParameters', 'largeValues', 'multiStatements', 'transactions']) {
    it(name, async () => {
      const run = async (p: number) => {
        const c = await mysql.createConnection(options(p, scenarioOptions[name]))
        try {
          return await scenarios[name](c)
        } finally {
          await c.end()
        }
      }
      assert.deepEqual(await run(port), await run(3306))
    })
  }

  // Regression: through the relay the gateway never noticed the target's close while the client
  // was idle; pools kept the dead connection and its next query failed with "packets out of order".
  it('a connection killed server-side while idle ends toward the client; a pool replaces it', async () => {
    const admin = await mysql.createConnection(options(3306))
    try {
      const idle = await mysql.createConnection(options(port))
      const ended = new Promise((resolve) => coreOf(idle).once('end', resolve))
      idle.on('error', () => undefined)
      await admin.query(`KILL ${idle.threadId}`)
      await ended
      idle.destroy()
    } finally {
      await admin.end()
    }
    assert.equal(await poolReplacesKilled(port), true)
  })
})
