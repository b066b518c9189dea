// MariaDB through the built CLI: gateway (MySQL engine) + agent + connect, with the real `mysql`
// client: queries, a blocked DROP naming its rule, masked PII, and the session staying usable.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {type Proc, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {sh} from '../helpers/net.js'

const table = `hoop_e2e_people_${process.pid}`
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
    - {id: eng-maria, subjects: {groups: [eng]}, connections: [maria], effect: allow}
    - {id: no-drop, match: {kinds: [drop, truncate]}, effect: block, message: no DROP through the gateway}
    - id: pii
      connections: [maria]
      effect: mask
      mask: {columns: ["*.email"], entities: [card]}
`

const mysql = (port: number, sql: string) => sh(`mysql -h 127.0.0.1 -P ${port} -u root --batch --skip-column-names test -e "${sql}"`)

describe('MariaDB end to end (built CLI, real mysql client)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-mysql-')
  let gw: GatewayProc
  let agent: Proc
  let connect: Proc
  let port: number

  before(async () => {
    await sh(`mysql -h 127.0.0.1 -u root test -e "DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int, name text, email text, note text); INSERT INTO ${table} VALUES (1, 'Ada', 'ada@example.com', 'card 4111 1111 1111 1111')"`)
    await sh(`mysql -h 127.0.0.1 -u root test -e "DROP PROCEDURE IF EXISTS ${table}_names; DROP PROCEDURE IF EXISTS ${table}_mails; CREATE PROCEDURE ${table}_names() SELECT upper(name) FROM ${table}; CREATE PROCEDURE ${table}_mails() SELECT upper(email) FROM ${table}"`)
    const dataDir = join(dir.path, 'data')
    const agentToken = await createSecret('agents', 'edge', dataDir)
    const token = await createSecret('service-accounts', 'app', dataDir, ['eng'])
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
    await sh(`mysql -h 127.0.0.1 -u root test -e "DROP TABLE IF EXISTS ${table}; DROP PROCEDURE IF EXISTS ${table}_names; DROP PROCEDURE IF EXISTS ${table}_mails"`)
    dir.cleanup()
  })

  it('runs queries and masks PII by column origin and by value', async () => {
    const r = await mysql(port, `SELECT id, name, email AS contact, note FROM ${table}`)
    assert.equal(r.code, 0, r.stderr)
    const [id, name, contact, note] = r.stdout.trim().split('\t')
    assert.equal(id, '1')
    assert.equal(name, 'Ada')
    assert.ok(!contact.includes('ada@example.com'), `email unmasked: ${contact}`)
    assert.ok(!note.includes('4111 1111 1111 1111'), `card unmasked: ${note}`)
  })

  it('CALL: computed columns of a body that reads no masked column pass, of one that does stay masked', async () => {
    // The procedure bodies are read on a catalog connection the gateway opens through the agent.
    const names = await mysql(port, `CALL ${table}_names()`)
    assert.equal(names.stdout.trim(), 'ADA', names.stderr)
    const mails = await mysql(port, `CALL ${table}_mails()`)
    assert.equal(mails.code, 0, mails.stderr)
    assert.ok(!mails.stdout.includes('ADA@EXAMPLE.COM'), `email unmasked: ${mails.stdout}`)
  })

  it('blocks DROP with the rule named and keeps the table', async () => {
    const r = await mysql(port, `DROP TABLE ${table}`)
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /blocked by policy rule no-drop/)
    const still = await mysql(port, `SELECT COUNT(*) FROM ${table}`)
    assert.equal(still.stdout.trim(), '1')
  })
})
