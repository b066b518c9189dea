// An HTTP API through the built CLI: gateway (HTTP engine) + embedded agent + connect, called with
// curl and fetch. The upstream sees the injected token, never the caller's; responses are masked.
import assert from 'node:assert/strict'
import {createServer, type Server} from 'node:http'
import {join} from 'node:path'
import {type Proc, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {sh} from '../helpers/net.js'

describe('HTTP API end to end (built CLI, curl and fetch)', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-e2e-http-')
  let upstream: Server
  let seen: Array<{method?: string; url?: string; authorization?: string}> = []
  let gw: GatewayProc
  let connect: Proc
  let base: string

  before(async () => {
    upstream = createServer((req, res) => {
      seen.push({method: req.method, url: req.url, authorization: req.headers.authorization})
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({customer: {name: 'Ada', email: 'ada@example.com'}, items: [{sku: 'A-1', contact: 'bob@example.org'}]}))
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const upPort = (upstream.address() as {port: number}).port
    const dataDir = join(dir.path, 'data')
    const token = await createSecret('service-accounts', 'svc', dataDir, ['eng'])
    gw = await startGatewayProc(
      `connections:
  - name: api
    type: http
    target: 127.0.0.1:${upPort}
    token: {env: HOOP_E2E_API_TOKEN}
policy:
  version: 1
  rules:
    - {id: eng-api, subjects: {groups: [eng]}, connections: [api], effect: allow}
    - {id: pii, connections: [api], effect: mask, mask: {entities: [email]}}
`,
      {dir: dir.path, dataDir, env: {HOOP_E2E_API_TOKEN: 'upstream-secret-token'}},
    )
    connect = spawnHoop(['connect', 'api', '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    const port = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    base = `http://127.0.0.1:${port}`
  })

  after(async () => {
    await connect?.stop()
    await gw?.stop()
    upstream?.close()
    dir.cleanup()
  })

  it('injects the upstream token, drops the caller Authorization, and masks emails', async () => {
    seen = []
    const r = await sh(`curl -s -H 'Authorization: Bearer caller-own-token' ${base}/v1/customers/1`)
    assert.equal(r.code, 0, r.stderr)
    const body = JSON.parse(r.stdout) as {customer: {name: string; email: string}; items: Array<{contact: string}>}
    assert.equal(body.customer.name, 'Ada')
    assert.ok(!body.customer.email.includes('ada@example.com'), `email unmasked: ${body.customer.email}`)
    assert.ok(!body.items[0].contact.includes('bob@example.org'))
    assert.equal(seen.length, 1)
    assert.equal(seen[0].authorization, 'Bearer upstream-secret-token')
    assert.equal(seen[0].url, '/v1/customers/1')
  })

  it('serves keep-alive requests from fetch', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/v1/ping/${i}`)
      assert.equal(res.status, 200)
      await res.json()
    }
  })
})
