// An HTTP API through the built CLI: gateway (HTTP engine) + embedded agent + connect, called with
// curl and fetch. The upstream sees the injected token, never the caller's; responses are masked.
import assert from 'node:assert/strict'
import {createServer, type Server} from 'node:http'
import {join} from 'node:path'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
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
  let financeToken: string

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
    financeToken = await createSecret('service-accounts', 'cfo', dataDir, ['finance'])
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
    - {id: pii, connections: [api], effect: mask, mask: {entities: [email], fields: ["$.customer.name"]}}
    - {id: no-deletes, connections: [api], match: {methods: [DELETE]}, effect: block, message: deletes go through the admin console}
    - id: refunds-need-approval
      connections: [api]
      match: {methods: [POST], paths: ["/v1/refunds"]}
      effect: review
      review: {approvers: {groups: [finance]}, approvals: 1, ttl: 1h}
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
    assert.notEqual(body.customer.name, 'Ada', 'mask.fields masks $.customer.name')
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

  it('blocks a method by rule with a 403 naming it, before the upstream sees it', async () => {
    seen = []
    const res = await fetch(`${base}/v1/customers/1`, {method: 'DELETE'})
    assert.equal(res.status, 403)
    const body = (await res.json()) as {error: {code: string; rule: string}}
    assert.equal(body.error.code, 'POLICY_BLOCKED')
    assert.equal(body.error.rule, 'no-deletes')
    assert.equal(seen.length, 0)
  })

  it('holds a refund for approval (409 with the id), then lets exactly that request through once', async () => {
    seen = []
    const send = () => fetch(`${base}/v1/refunds`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({order: 17, amount: 30})})
    const first = await send()
    assert.equal(first.status, 409)
    const id = ((await first.json()) as {error: {approvalId: string}}).error.approvalId
    assert.match(id, /^apr_/)
    assert.equal(seen.length, 0)
    const ok = await runHoop(['approvals', 'approve', id, '--reason', 'customer complaint 881', '--gateway', gw.url], {env: {HOOP_TOKEN: financeToken}})
    assert.equal(ok.code, 0, ok.stderr)
    const second = await send()
    assert.equal(second.status, 200)
    await second.arrayBuffer()
    assert.equal(seen.length, 1)
    const third = await send()
    assert.equal(third.status, 409, 'a one-time approval is used up')
  })
})
