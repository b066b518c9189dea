// HTTPS upstreams: the engine speaks TLS to the target (require / verify-full), with the
// connection's CA and server name; a certificate for another name is refused with 502.
import {strict as assert} from 'node:assert'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {createServer, type Server} from 'node:https'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {curl, startHarness} from './harness.js'

describe('http engine to an https upstream', function () {
  this.timeout(30_000)
  let dir: string
  let server: Server
  let port: number
  let ca: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-https-'))
    const key = join(dir, 'key.pem')
    const cert = join(dir, 'cert.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=api.internal', '-addext', 'subjectAltName=DNS:api.internal'], {stdio: 'ignore'})
    ca = readFileSync(cert, 'utf8')
    server = createServer({key: readFileSync(key), cert: ca}, (req, res) => {
      res.writeHead(200, {'content-type': 'application/json'})
      res.end(JSON.stringify({host: req.headers.host, authorization: req.headers.authorization, tls: true}))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    rmSync(dir, {recursive: true, force: true})
  })

  it('verify-full with the CA and server name; Host names the target', async () => {
    const h = await startHarness({upstreamPort: port, target: {host: 'api.internal', port: 443, tls: {mode: 'verify-full', ca, serverName: 'api.internal'}}})
    try {
      const r = await curl([`${h.url}/x`])
      assert.equal(r.status, 200)
      assert.deepEqual(JSON.parse(r.body), {host: 'api.internal', authorization: 'Bearer upstream-token-xyz', tls: true})
    } finally {
      await h.close()
    }
  })

  it('refuses a certificate for another name (502) and accepts it with require', async () => {
    const wrong = await startHarness({upstreamPort: port, target: {host: 'other.internal', port, tls: {mode: 'verify-full', ca}}})
    const req = await startHarness({upstreamPort: port, target: {host: '127.0.0.1', port, tls: {mode: 'require'}}})
    try {
      const r = await curl([`${wrong.url}/x`])
      assert.equal(r.status, 502)
      assert.match(r.body, /TLS to the target failed/)
      const ok = await curl([`${req.url}/x`])
      assert.equal(ok.status, 200)
      assert.equal((JSON.parse(ok.body) as {host: string}).host, `127.0.0.1:${port}`)
    } finally {
      await wrong.close()
      await req.close()
    }
  })
})
