// Single-request commands (approvals, admin, audit, sessions, connections, whoami, the audit export
// download) on a replica list: the
// HTTP API client (src/client/api.ts) passes a replica it cannot reach to the next, against real
// HTTP servers and a closed port on loopback, and never resends a change that may have arrived.
import assert from 'node:assert/strict'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import {GatewayApi} from '../../../src/client/api.js'
import {runWhoami} from '../../../src/client/login.js'
import {freePort} from '../../helpers/net.js'

interface Replica {
  url: string
  hits: string[]
  server: Server
}

async function replica(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<Replica> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`)
    answer(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, server}
}

const json = (body: unknown, status = 200) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, {'content-type': 'application/json'})
  res.end(JSON.stringify(body))
}

describe('gateway API client on a replica list', function () {
  this.timeout(20_000)
  const servers: Server[] = []
  const closed = async () => `http://127.0.0.1:${await freePort()}`
  const up = async (answer: (req: IncomingMessage, res: ServerResponse) => void) => {
    const r = await replica(answer)
    servers.push(r.server)
    return r
  }

  after(() => {
    for (const s of servers) s.closeAllConnections(), s.close()
  })

  it('a GET and a change pass a replica that refuses connections to the next, and stay there', async () => {
    const dead = await closed()
    const b = await up(json({ok: true}))
    const api = new GatewayApi(dead, 'tok', [dead, b.url])
    assert.deepEqual(await api.get('/v1/whoami'), {ok: true})
    assert.deepEqual(await api.request('POST', '/v1/approvals/x/approve', {reason: 'r'}), {ok: true})
    assert.equal(api.answered, b.url)
    assert.deepEqual(b.hits, ['GET /v1/whoami', 'POST /v1/approvals/x/approve'])
  })

  it('a change whose connection broke after it was sent is not resent to another replica', async () => {
    const a = await up((req) => req.socket.destroy())
    const b = await up(json({ok: true}))
    const api = new GatewayApi(a.url, 'tok', [a.url, b.url])
    await assert.rejects(api.request('POST', '/v1/approvals/x/approve', {}), (e: Error & {code?: string}) => e.code === 'GATEWAY_UNREACHABLE' && e.message.includes(a.url))
    assert.deepEqual(b.hits, [], 'the approval may have been decided on A: B never sees it')
    // A read is safe to resend.
    assert.deepEqual(await api.get('/v1/approvals'), {ok: true})
    assert.deepEqual(b.hits, ['GET /v1/approvals'])
  })

  it("a replica's answer (a refusal) is final; with every replica down the error names each", async () => {
    const a = await up(json({error: {code: 'ACCESS_DENIED', message: 'not an approver'}}, 403))
    const b = await up(json({ok: true}))
    await assert.rejects(new GatewayApi(a.url, 'tok', [a.url, b.url]).get('/v1/approvals'), (e: Error & {code?: string}) => e.code === 'ACCESS_DENIED')
    assert.deepEqual(b.hits, [])

    const [d1, d2] = [await closed(), await closed()]
    await assert.rejects(new GatewayApi(d1, undefined, [d1, d2]).get('/v1/audit/key'), (e: Error) => e.message.startsWith('no gateway replica answered') && e.message.includes(d1) && e.message.includes(d2))
  })

  it('whoami given a list asks the next replica when the first is down, and says which answered', async () => {
    const dead = await closed()
    const b = await up(json({kind: 'service-account', subject: 'ci-bot', name: 'ci-bot', groups: ['eng']}))
    const who = await runWhoami({gateway: `${dead},${b.url}`, token: 'tok', credentialStore: 'file'})
    assert.equal(who.gateway, dead, 'the first URL stays the gateway identity')
    assert.equal(who.replica, b.url)
    assert.equal(who.subject, 'ci-bot')
    assert.deepEqual(b.hits, ['GET /v1/whoami'])
  })

  it('a download (the audit export) fails over until a replica sends its headers, then streams its body', async () => {
    const dead = await closed()
    const body = Buffer.alloc(256 * 1024, 7)
    const b = await up((_req, res) => {
      res.writeHead(200, {'content-type': 'application/gzip', 'x-hoop-export-summary': '%7B%7D'})
      res.end(body)
    })
    const api = new GatewayApi(dead, 'tok', [dead, b.url])
    const {gateway, res} = await api.download('/v1/audit/export?from=2020-01-01')
    assert.equal(gateway, b.url)
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body)
    // A refusal is the replica's answer, with the gateway's error code, and not retried.
    const c = await up(json({error: {code: 'ACCESS_DENIED', message: 'audit evidence needs membership of auditors'}}, 403))
    const d = await up(json({}))
    await assert.rejects(new GatewayApi(c.url, 'tok', [c.url, d.url]).download('/v1/audit/export'), (e: Error & {code?: string}) => e.code === 'ACCESS_DENIED')
    assert.deepEqual(d.hits, [])
  })
})
