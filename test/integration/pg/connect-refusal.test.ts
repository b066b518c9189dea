// `hoop connect` in process, against a stub gateway whose relay link refuses every stream: a
// PostgreSQL client (psql, pg) is answered with a FATAL ErrorResponse naming the reason, instead of
// "server closed the connection unexpectedly"; other clients are closed as before.
import {strict as assert} from 'node:assert'
import {execFile} from 'node:child_process'
import * as net from 'node:net'
import {promisify} from 'node:util'
import pg from 'pg'
import {WebSocketServer} from 'ws'
import {ConnectClient} from '../../../src/client/connect.js'
import {MAX_FRAME_SIZE} from '../../../src/relay/frame.js'
import {Mux} from '../../../src/relay/mux.js'
import {silentLogger} from '../../../src/shared/log.js'

const exec = promisify(execFile)

async function psqlStderr(port: number): Promise<string> {
  const r = await exec('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'test', '-X', '-c', 'select 1'], {
    env: {...process.env, PGSSLMODE: 'prefer', PGCONNECT_TIMEOUT: '10'},
  }).catch((e: {stderr: string}) => e)
  return r.stderr
}

describe('hoop connect answers a PostgreSQL client whose stream cannot be opened', function () {
  this.timeout(30_000)
  let wss: WebSocketServer
  let client: ConnectClient
  let port: number

  before(async () => {
    wss = new WebSocketServer({host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE})
    wss.on('connection', (ws) => new Mux(ws, {side: 'acceptor', logger: silentLogger, onOpen: (s) => s.reject('AGENT_OFFLINE', 'agent "db-agent" serving connection "db" is offline')}))
    await new Promise((r) => wss.once('listening', r))
    const gateway = `http://127.0.0.1:${(wss.address() as net.AddressInfo).port}`
    client = await ConnectClient.start({gateways: [gateway], connection: 'db', bearer: async () => 'token', port: 0, logger: silentLogger})
    port = client.address().port
  })
  after(async () => {
    await client.close()
    wss.close()
  })

  it('a stream the gateway refuses: psql (SSLRequest first) and pg get FATAL with the code (was: "server closed the connection unexpectedly")', async () => {
    const stderr = await psqlStderr(port)
    assert.match(stderr, /FATAL: {2}hoop: agent "db-agent" serving connection "db" is offline \[AGENT_OFFLINE\]/)
    assert.match(stderr, /HINT: {2}start the agent/)
    const c = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    await assert.rejects(c.connect(), (e: Error & {code?: string}) => e.code === '08001' && /\[AGENT_OFFLINE\]/.test(e.message))
  })

  it('a client that does not speak PostgreSQL is closed without a byte, a silent one within about a second', async () => {
    for (const first of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), undefined]) {
      const s = net.connect(port, '127.0.0.1')
      let got = 0
      s.on('data', (d: Buffer) => (got += d.length))
      s.on('error', () => {})
      if (first) s.write(first)
      const started = Date.now()
      await new Promise((r) => s.once('close', r))
      assert.equal(got, 0)
      assert.ok(Date.now() - started < 5_000)
    }
  })

  it('the gateway gone: psql gets FATAL 08001 GATEWAY_UNREACHABLE from hoop connect itself', async () => {
    for (const ws of wss.clients) ws.terminate()
    await new Promise<void>((r) => wss.close(() => r()))
    await new Promise((r) => setTimeout(r, 200))
    const stderr = await psqlStderr(port)
    assert.match(stderr, /FATAL: {2}hoop: cannot reach gateway .*\[GATEWAY_UNREACHABLE\]/)
    const c = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    await assert.rejects(c.connect(), (e: Error & {code?: string}) => e.code === '08001')
  })
})
