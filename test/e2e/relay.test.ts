// The relay foundation end to end, with real processes from the built CLI: gateway, agent and
// connect carry real PostgreSQL traffic (psql and the pg driver), survive agent and gateway
// restarts, keep memory bounded under backpressure, and refuse rogue peers and revoked secrets.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {createServer, connect as netConnect, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import pg from 'pg'
import WebSocket from 'ws'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {cmdlineOf, freePort, psql, rssOf, sh} from '../helpers/net.js'

const MB = 1024 * 1024

function gatewayConfig(tcpPort: number): string {
  return `connections:
  - name: pg
    type: postgres
    target: 127.0.0.1:5432
    agent: db-agent
    database: test
    username: postgres
  - name: pg-embedded
    type: postgres
    target: 127.0.0.1:5432
    database: test
  - name: stream
    type: tcp
    target: 127.0.0.1:${tcpPort}
    agent: db-agent
  - name: nowhere
    type: tcp
    target: 127.0.0.1:1
    agent: db-agent
  - name: lonely
    type: postgres
    target: 127.0.0.1:5432
    agent: missing-agent
  - name: secret-db
    type: postgres
    target: 127.0.0.1:5432
policy:
  version: 1
  rules:
    - id: eng-access
      subjects: {groups: [eng]}
      connections: [pg, pg-embedded, stream, nowhere, lonely]
      effect: allow
`
}

async function startConnect(name: string, token: string, gateway: string): Promise<{proc: Proc; port: number}> {
  const proc = spawnHoop(['connect', name, '--port', '0', '--json', '--gateway', gateway], {env: {HOOP_TOKEN: token}})
  const m = await proc.waitFor(/\{"connection".*\}/)
  const info = JSON.parse(m[0]) as {host: string; port: number}
  assert.equal(info.host, '127.0.0.1')
  return {proc, port: info.port}
}

function pgClient(port: number): pg.Client {
  return new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test', connectionTimeoutMillis: 10_000})
}

describe('relay end to end (built CLI, real PostgreSQL)', function () {
  this.timeout(240_000)
  let gw: GatewayProc
  let gwPort: number
  let agent: Proc
  let agentToken: string
  let saToken: string
  let conn: {proc: Proc; port: number}
  let tcpServer: Server
  let tcpPort: number
  const tcpSockets = new Set<Socket>()
  const dir = tempDir('hoop-e2e-relay-')

  before(async () => {
    // A TCP target that streams a fixed amount of data when asked: "N\n" -> N MiB.
    tcpServer = createServer((s) => {
      tcpSockets.add(s)
      s.once('close', () => tcpSockets.delete(s))
      s.on('error', () => {})
      s.once('data', (d) => {
        let left = Number(d.toString().trim()) * MB
        const chunk = Buffer.alloc(64 * 1024, 'x')
        const pump = () => {
          while (left > 0) {
            left -= chunk.length
            if (!s.write(chunk)) return void s.once('drain', pump)
          }
          s.end()
        }
        pump()
      })
    })
    await new Promise<void>((r) => tcpServer.listen(0, '127.0.0.1', r))
    tcpPort = (tcpServer.address() as {port: number}).port
    gwPort = await freePort()
    const dataDir = join(dir.path, 'data')
    // The first credentials are made on the gateway host, without any default password.
    agentToken = await createSecret('agents', 'db-agent', dataDir)
    saToken = await createSecret('service-accounts', 'ci-bot', dataDir, ['eng'])
    gw = await startGatewayProc(gatewayConfig(tcpPort), {dir: dir.path, dataDir, listen: `127.0.0.1:${gwPort}`})
    agent = spawnHoop(['agent', '--gateway', gw.url], {env: {HOOP_AGENT_TOKEN: agentToken}})
    await agent.waitFor(/connected to gateway/)
    conn = await startConnect('pg', saToken, gw.url)
  })

  after(async () => {
    await conn?.proc.stop()
    await agent?.stop()
    await gw?.stop()
    for (const s of tcpSockets) s.destroy()
    tcpServer?.close()
    dir.cleanup()
  })

  it('keeps the agent token out of the process command line', () => {
    assert.ok(agent.child.pid)
    assert.ok(!cmdlineOf(agent.child.pid!).includes(agentToken))
    assert.ok(!agent.stderr().includes(agentToken), 'agent log must not contain its token')
    assert.ok(!gw.proc.stderr().includes(agentToken.slice(20)), 'gateway log must not contain the token')
  })

  it('serves /healthz and /metrics, and lists the connections the caller may use', async () => {
    const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {status: string}
    assert.deepEqual(health, {status: 'ok'}, '/healthz says alive and nothing more')
    // The agent's link shows in /metrics (loopback callers need no token).
    assert.match(await (await fetch(`${gw.url}/metrics`)).text(), /^hoop_agent_links 1$/m)
    const r = await runHoop(['connections', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: saToken}})
    assert.equal(r.code, 0, r.stderr)
    const list = (JSON.parse(r.stdout) as {connections: Array<{name: string; online: boolean; agent: string}>}).connections
    assert.deepEqual(
      list.map((c) => `${c.name}:${c.online}`),
      ['pg:true', 'pg-embedded:true', 'stream:true', 'nowhere:true', 'lonely:false'],
    )
    assert.ok(!list.some((c) => c.name === 'secret-db'), 'connections without an allow rule are hidden')
  })

  it('carries psql sessions and transactions through connect -> gateway -> agent', async () => {
    const r = await psql(conn.port, 'select 40 + 2')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '42')
    const c = pgClient(conn.port)
    await c.connect()
    try {
      await c.query('CREATE TEMP TABLE t (id int, v text)')
      await c.query('BEGIN')
      await c.query('INSERT INTO t VALUES ($1, $2)', [1, 'one'])
      await c.query('ROLLBACK')
      await c.query('BEGIN')
      await c.query('INSERT INTO t VALUES ($1, $2)', [2, 'two'])
      await c.query('COMMIT')
      const rows = await c.query('SELECT id, v FROM t ORDER BY id')
      assert.deepEqual(rows.rows, [{id: 2, v: 'two'}])
    } finally {
      await c.end()
    }
  })

  it('moves 100 MB of COPY out and in byte-exact', async () => {
    const q = `COPY (SELECT i, repeat(md5(i::text), 10) FROM generate_series(1, 320000) i) TO STDOUT`
    const direct = await sh(`psql -X -h 127.0.0.1 -p 5432 -U postgres test -c "${q}" | sha256sum`)
    const tunnel = await sh(`psql -X -h 127.0.0.1 -p ${conn.port} -U postgres test -c "${q}" | sha256sum`)
    assert.equal(direct.code, 0, direct.stderr)
    assert.equal(tunnel.code, 0, tunnel.stderr)
    assert.equal(tunnel.stdout, direct.stdout)
    const size = await sh(`psql -X -h 127.0.0.1 -p ${conn.port} -U postgres test -c "${q}" | wc -c`)
    assert.ok(Number(size.stdout.trim()) > 100 * 1000 * 1000, `COPY size ${size.stdout}`)

    const file = join(dir.path, 'copy-in.tsv')
    const out = createWriteStream(file)
    const hash = createHash('sha256')
    for (let i = 0; i < 320_000; i++) {
      const line = `${i}\t${randomBytes(160).toString('hex')}\n`
      hash.update(line)
      if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()))
    }
    await new Promise<void>((r) => out.end(() => r()))
    const table = `copy_in_${process.pid}`
    await sh(`psql -X -h 127.0.0.1 -p 5432 -U postgres test -c "DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (i int, v text)"`)
    try {
      const load = await sh(`psql -X -h 127.0.0.1 -p ${conn.port} -U postgres test -c "\\copy ${table} FROM '${file}'"`)
      assert.equal(load.code, 0, load.stderr)
      assert.match(load.stdout, /COPY 320000/)
      const back = await sh(`psql -X -h 127.0.0.1 -p 5432 -U postgres test -c "COPY (SELECT * FROM ${table} ORDER BY i) TO STDOUT" | sha256sum`)
      assert.equal(back.stdout.split(' ')[0], hash.digest('hex'))
    } finally {
      await sh(`psql -X -h 127.0.0.1 -p 5432 -U postgres test -c "DROP TABLE IF EXISTS ${table}"`)
    }
  })

  it('runs 50 concurrent sessions through one connect', async () => {
    const results = await Promise.all(
      Array.from({length: 50}, async (_, i) => {
        const c = pgClient(conn.port)
        await c.connect()
        try {
          const r = await c.query('SELECT $1::int * 2 AS v, pg_backend_pid() AS pid', [i])
          return r.rows[0] as {v: number; pid: number}
        } finally {
          await c.end()
        }
      }),
    )
    assert.deepEqual(
      results.map((r) => r.v),
      Array.from({length: 50}, (_, i) => i * 2),
    )
    assert.equal(new Set(results.map((r) => r.pid)).size, 50, 'each session is its own backend')
  })

  it('names each failure with its own message and exit code', async () => {
    const env = {HOOP_TOKEN: saToken}
    const unknown = await runHoop(['connect', 'nope', '--port', '0', '--gateway', gw.url], {env})
    assert.equal(unknown.code, 12)
    assert.match(unknown.stderr, /unknown connection "nope"/)
    const denied = await runHoop(['connect', 'secret-db', '--port', '0', '--gateway', gw.url], {env})
    assert.equal(denied.code, 15)
    assert.match(denied.stderr, /denied/)
    const unreachable = await runHoop(['connections', '--gateway', `http://127.0.0.1:${await freePort()}`], {env})
    assert.equal(unreachable.code, 10)
    assert.match(unreachable.stderr, /cannot reach gateway/)
    const badToken = await runHoop(['connections', '--gateway', gw.url], {env: {HOOP_TOKEN: 'hoop_sa_000000000000_' + 'A'.repeat(43)}})
    assert.equal(badToken.code, 11)
    assert.match(badToken.stderr, /rejected/)

    const lonely = await startConnect('lonely', saToken, gw.url)
    const nowhere = await startConnect('nowhere', saToken, gw.url)
    try {
      const r = await psql(lonely.port, 'select 1')
      assert.notEqual(r.code, 0)
      await lonely.proc.waitFor(/agent "missing-agent" serving connection "lonely" is offline \[AGENT_OFFLINE\]/)
      const s = netConnect(nowhere.port, '127.0.0.1')
      s.on('error', () => {})
      await new Promise((r) => s.once('close', r))
      await nowhere.proc.waitFor(/refused the connection \(ECONNREFUSED\) \[TARGET_REFUSED\]/)
    } finally {
      await lonely.proc.stop()
      await nowhere.proc.stop()
    }
  })

  it('keeps gateway and agent memory bounded when a client stops reading a 500 MB stream', async () => {
    const stream = await startConnect('stream', saToken, gw.url)
    try {
      const s = netConnect(stream.port, '127.0.0.1')
      await new Promise((r) => s.once('connect', r))
      s.write('500\n')
      let received = 0
      s.on('data', (d: Buffer) => (received += d.length))
      await new Promise((r) => setTimeout(r, 500))
      s.pause()
      const gwBase = rssOf(gw.proc.child.pid!)
      const agentBase = rssOf(agent.child.pid!)
      // Give the target every chance to push: if anything buffered without bound, it would grow here.
      await new Promise((r) => setTimeout(r, 3000))
      const gwGrowth = rssOf(gw.proc.child.pid!) - gwBase
      const agentGrowth = rssOf(agent.child.pid!) - agentBase
      assert.ok(received < 100 * MB, `client received ${received} bytes before pausing`)
      assert.ok(gwGrowth < 40 * MB, `gateway RSS grew ${(gwGrowth / MB).toFixed(1)} MB while the client was paused`)
      assert.ok(agentGrowth < 40 * MB, `agent RSS grew ${(agentGrowth / MB).toFixed(1)} MB while the client was paused`)
      const done = new Promise((r) => s.once('end', r))
      s.resume()
      await done
      assert.equal(received, 500 * MB)
      s.destroy()
    } finally {
      await stream.proc.stop()
    }
  })

  it('survives rogue client and agent frames, and other sessions are unaffected', async () => {
    const steady = pgClient(conn.port)
    await steady.connect()
    try {
      const rogue = async (path: string, token: string, frames: Buffer[]) => {
        const ws = new WebSocket(gw.url.replace('http', 'ws') + path, {headers: {authorization: `Bearer ${token}`}, perMessageDeflate: false})
        await new Promise((r, j) => {
          ws.once('open', r)
          ws.once('error', j)
        })
        const closed = new Promise((r) => ws.once('close', r))
        ws.on('error', () => {})
        for (const f of frames) ws.send(f)
        await Promise.race([closed, new Promise((r) => setTimeout(r, 1500))])
        ws.terminate()
      }
      const header = (type: number, id: number) => {
        const b = Buffer.alloc(6)
        b[0] = 1
        b[1] = type
        b.writeUInt32BE(id, 2)
        return b
      }
      await rogue('/v1/connect', saToken, [Buffer.from([1])]) // truncated header
      await rogue('/v1/connect', saToken, [Buffer.from([9, 9, 9, 9, 9, 9, 9])]) // bad version
      await rogue('/v1/connect', saToken, [Buffer.concat([header(3, 77), Buffer.from('data for nobody')])]) // unknown stream
      await rogue('/v1/connect', saToken, [Buffer.concat([header(1, 1), Buffer.from('{not json')])]) // bad open
      await rogue('/v1/connect', saToken, [Buffer.alloc(4 * MB, 1)]) // oversized
      await rogue('/v1/agent', agentToken, [Buffer.from('garbage garbage')])
      await rogue('/v1/agent', agentToken, [Buffer.concat([header(2, 99999), Buffer.alloc(0)])])
      // The steady session and new sessions still work; the gateway is alive.
      const r = await steady.query('SELECT 7 AS v')
      assert.equal(r.rows[0].v, 7)
      await agent.waitFor(/connected to gateway/)
      const again = await psql(conn.port, 'select 8')
      assert.equal(again.stdout.trim(), '8')
      assert.equal(gw.proc.child.exitCode, null)
    } finally {
      await steady.end().catch(() => {})
    }
  })

  it('gives open sessions a clean error when the agent dies, and recovers when it returns', async () => {
    const c = pgClient(conn.port)
    const seen: string[] = []
    c.on('error', (e: Error) => seen.push(e.message))
    await c.connect()
    await c.query('SELECT 1')
    agent.child.kill('SIGKILL')
    await agent.exited
    try {
      // The PostgreSQL engine answers in the protocol, so psql and drivers print the reason. It
      // may reach the idle client before the next query (then the driver reports it as an event).
      const failed = await c.query('SELECT 2').then(
        () => 'query succeeded',
        (e: Error) => e.message,
      )
      const deadline = Date.now() + 5000
      while (!seen.concat(failed).some((m) => /hoop: agent "db-agent" disconnected/.test(m)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.ok(seen.concat(failed).some((m) => /hoop: agent "db-agent" disconnected/.test(m)), `errors seen: ${seen.concat(failed).join(' | ')}`)
      await c.end().catch(() => {})
      const offline = await psql(conn.port, 'select 1')
      assert.notEqual(offline.code, 0)
    } finally {
      agent = spawnHoop(['agent', '--gateway', gw.url], {env: {HOOP_AGENT_TOKEN: agentToken}})
      await agent.waitFor(/connected to gateway/)
    }
    const r = await psql(conn.port, 'select 3')
    assert.equal(r.stdout.trim(), '3')
  })

  it('recovers agent and client after a gateway restart', async () => {
    const c = pgClient(conn.port)
    c.on('error', () => {})
    await c.connect()
    const stopped = gw.stop()
    await conn.proc.waitFor(/gateway is shutting down/)
    await stopped
    assert.equal(gw.proc.child.exitCode, 0)
    await c.end().catch(() => {})
    gw = await startGatewayProc(gatewayConfig(tcpPort), {dir: dir.path, dataDir: gw.dataDir, listen: `127.0.0.1:${gwPort}`})
    await agent.waitFor(/connected to gateway[\s\S]*connected to gateway/, 40_000)
    const r = await psql(conn.port, 'select 4')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '4')
  })

  it('refuses revoked agent tokens and service-account keys', async () => {
    const spare = await createSecret('service-accounts', 'temp-bot', gw.dataDir, ['eng'])
    assert.equal((await psql(conn.port, 'select 5')).stdout.trim(), '5')
    const revokeSa = await runHoop(['admin', 'service-accounts', 'revoke', 'temp-bot', '--data-dir', gw.dataDir])
    assert.equal(revokeSa.code, 0, revokeSa.stderr)
    const refused = await runHoop(['connections', '--gateway', gw.url], {env: {HOOP_TOKEN: spare}})
    assert.equal(refused.code, 11)
    assert.match(refused.stderr, /revoked/)

    const revoke = await runHoop(['admin', 'agents', 'revoke', 'db-agent', '--data-dir', gw.dataDir])
    assert.equal(revoke.code, 0, revoke.stderr)
    // The running agent is cut off and exits with the token-rejected code.
    assert.equal(await agent.exited, 11)
    assert.match(agent.stderr(), /revoked/)
    // A new agent process with the revoked token exits non-zero with a clear message.
    const stale = spawnHoop(['agent', '--gateway', gw.url], {env: {HOOP_AGENT_TOKEN: agentToken}})
    const code = await stale.exited
    assert.equal(code, 11)
    assert.match(stale.stderr(), /revoked/)
  })
})
