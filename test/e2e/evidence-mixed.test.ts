// One gateway, one policy, three engines: PostgreSQL, MariaDB and an HTTP API. After a run with
// allowed, blocked and masked work on each, an auditor exports evidence through the gateway, pins
// the gateway key, and the package verifies and lists all three connections.
import assert from 'node:assert/strict'
import {createServer, type Server} from 'node:http'
import {join} from 'node:path'
import {writeFileSync} from 'node:fs'
import {readTarGz} from '../../src/audit/tar.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {psql, sh} from '../helpers/net.js'

describe('evidence from a mixed PostgreSQL + MariaDB + HTTP run', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-mixed-')
  let upstream: Server
  let gw: GatewayProc
  const procs: Proc[] = []
  let app: string
  let auditor: string

  before(async () => {
    upstream = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({email: 'eve@example.com', ok: true}))
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const dataDir = join(dir.path, 'data')
    app = await createSecret('service-accounts', 'app', dataDir, ['eng'])
    auditor = await createSecret('service-accounts', 'iso-auditor', dataDir, ['auditors'])
    gw = await startGatewayProc(
      `connections:
  - {name: pg, type: postgres, target: "127.0.0.1:5432", database: test, username: postgres}
  - {name: maria, type: mysql, target: "127.0.0.1:3306", database: test, username: root}
  - {name: api, type: http, target: "127.0.0.1:${(upstream.address() as {port: number}).port}"}
policy:
  version: 1
  rules:
    - {id: eng, subjects: {groups: [eng]}, connections: [pg, maria, api], effect: allow}
    - {id: no-drop, types: [postgres, mysql], match: {kinds: [drop]}, effect: block}
    - {id: no-delete-api, types: [http], match: {methods: [DELETE]}, effect: block}
    - {id: emails, effect: mask, mask: {entities: [email]}}
`,
      {dir: dir.path, dataDir},
    )
  })

  after(async () => {
    for (const p of procs) await p.stop()
    await gw?.stop()
    upstream?.close()
    dir.cleanup()
  })

  async function connect(name: string): Promise<number> {
    const p = spawnHoop(['connect', name, '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: app}})
    procs.push(p)
    return (JSON.parse((await p.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
  }

  it('exports a package that verifies with the pinned key and covers all three engines', async () => {
    const pgPort = await connect('pg')
    const myPort = await connect('maria')
    const apiPort = await connect('api')
    assert.equal((await psql(pgPort, "select 'x@example.com'")).stdout.includes('x@example.com'), false)
    assert.notEqual((await psql(pgPort, 'drop table if exists nothing_here')).code, 0)
    assert.equal((await sh(`mysql -h 127.0.0.1 -P ${myPort} -u root test -e "SELECT 1"`)).code, 0)
    assert.notEqual((await sh(`mysql -h 127.0.0.1 -P ${myPort} -u root test -e "DROP TABLE IF EXISTS nothing_here"`)).code, 0)
    assert.equal((await fetch(`http://127.0.0.1:${apiPort}/v1/x`)).status, 200)
    assert.equal((await fetch(`http://127.0.0.1:${apiPort}/v1/x`, {method: 'DELETE'})).status, 403)
    for (const p of procs.splice(0)) await p.stop()

    // The session recording replays what the client saw: the statement and the masked row.
    const asAuditor = {env: {HOOP_TOKEN: auditor}}
    assert.equal((await runHoop(['sessions', 'list', '--gateway', gw.url], {env: {HOOP_TOKEN: app}})).code, 15, 'only auditors read recordings')
    const list = await runHoop(['sessions', 'list', '--gateway', gw.url, '--connection', 'pg', '--json'], asAuditor)
    assert.equal(list.code, 0, list.stderr)
    const sessions = JSON.parse(list.stdout) as {sessions: Array<{id: string}>} | Array<{id: string}>
    const ids = (Array.isArray(sessions) ? sessions : sessions.sessions).map((x) => x.id)
    const replays = await Promise.all(ids.map((id) => runHoop(['sessions', 'show', id, '--gateway', gw.url], asAuditor)))
    const replay = replays.map((r) => r.stdout).join('\n')
    assert.match(replay, /select 'x@example\.com'/, 'the statement as the target saw it')
    assert.match(replay, /DataRow \["[^"]*\*\*\*/, 'the masked row as the client saw it')
    assert.doesNotMatch(replay.replace(/select 'x@example\.com'/g, ''), /x@example\.com/, 'no unmasked value in the recording')

    const denied = await runHoop(['audit', 'export', '--out', join(dir.path, 'no.tar.gz'), '--gateway', gw.url], {env: {HOOP_TOKEN: app}})
    assert.equal(denied.code, 15, 'only auditors export evidence')

    const pkg = join(dir.path, 'evidence.tar.gz')
    const ex = await runHoop(['audit', 'export', '--out', pkg, '--gateway', gw.url, '--json'], {env: {HOOP_TOKEN: auditor}})
    assert.equal(ex.code, 0, ex.stderr + ex.stdout)
    const key = await runHoop(['audit', 'key', '--gateway', gw.url])
    assert.equal(key.code, 0, key.stderr)
    const keyFile = join(dir.path, 'gateway-audit.pem')
    writeFileSync(keyFile, key.stdout)
    const v = await runHoop(['audit', 'verify', pkg, '--public-key', keyFile, '--json'])
    assert.equal(v.code, 0, v.stdout + v.stderr)
    assert.equal((JSON.parse(v.stdout) as {ok: boolean}).ok, true)

    const files = new Map<string, string>()
    await readTarGz(pkg, (name) => {
      const chunks: Buffer[] = []
      return {data: (c) => chunks.push(Buffer.from(c)), end: () => files.set(name.replace(/^[^/]+\//, ''), Buffer.concat(chunks).toString('utf8'))}
    })
    const log = files.get('reports/session-log.jsonl') ?? ''
    const rows = log.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    const connections = new Set(rows.map((r) => String(r.connection ?? r.target)))
    for (const c of ['pg', 'maria', 'api']) assert.ok(connections.has(c), `session log lists ${c}: ${[...connections]}`)
    assert.ok(rows.some((r) => JSON.stringify(r).includes('no-drop')), 'blocked statements carry their rule id')
    assert.ok(rows.some((r) => JSON.stringify(r).includes('no-delete-api')), 'blocked HTTP requests carry their rule id')
    assert.ok((files.get('reports/masking.jsonl') ?? '').includes('email'), 'the masking report names the entity')
    assert.ok(files.has('summary.md') && files.get('summary.md')!.includes('A.8.11'), 'summary maps to ISO/IEC 27001:2022')
  })
})
