// Hostile peers against a real gateway process (built CLI), loopback only, bounded in count and
// time (issue 13): a link that floods OPENs and never reads, a burst of bad-token upgrades, and a
// data dir that refuses writes during raw TCP sessions. The gateway stays up, its memory stays
// bounded, a healthy session keeps working, and the audit log still verifies.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {readdirSync, statSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import Database from 'better-sqlite3'
import WebSocket from 'ws'
import {encodeFrame, MAX_FRAME_SIZE} from '../../src/relay/frame.js'
import {Mux, type RelayStream} from '../../src/relay/mux.js'
import type {HoopError} from '../../src/shared/errors.js'
import {baseEnv, HOOP_BIN, runHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {freePort, rssOf} from '../helpers/net.js'

const MB = 1024 * 1024

function config(echoPort: number): string {
  return `connections:
  - name: echo
    type: tcp
    target: 127.0.0.1:${echoPort}
policy:
  version: 1
  rules:
    - id: eng-echo
      subjects: {groups: [eng]}
      connections: [echo]
      effect: allow
`
}

/** A relay link to the gateway, as `hoop connect` dials it. */
async function link(gateway: string, token: string): Promise<Mux> {
  const ws = new WebSocket(`${gateway.replace('http', 'ws')}/v1/connect`, {headers: {authorization: `Bearer ${token}`}, perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE})
  const mux = new Mux(ws, {side: 'dialer', heartbeatMs: 0})
  await once(ws, 'open')
  return mux
}

/** Writes `text` on a raw session and reads the echo back. */
function roundTrip(stream: RelayStream, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = ''
    const onData = (d: Buffer) => {
      got += d.toString()
      if (got.length >= text.length) {
        stream.off('data', onData)
        stream.off('error', reject)
        resolve(got)
      }
    }
    stream.on('data', onData)
    stream.once('error', reject)
    stream.write(text)
  })
}

/** Sends `size` bytes and reads them back through an echo session; returns both hashes. */
async function pump(stream: RelayStream, size: number): Promise<{sent: string; got: string}> {
  const sent = createHash('sha256')
  const got = createHash('sha256')
  let received = 0
  const done = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      got.update(d)
      received += d.length
      if (received >= size) {
        stream.off('data', onData)
        resolve()
      }
    }
    stream.on('data', onData)
    stream.once('error', reject)
  })
  const chunk = Buffer.alloc(64 * 1024)
  for (let off = 0; off < size; off += chunk.length) {
    chunk.fill(off % 251)
    sent.update(chunk)
    if (!stream.write(Buffer.from(chunk))) await once(stream, 'drain')
  }
  await done
  return {sent: sent.digest('hex'), got: got.digest('hex')}
}

function authFailureRows(dataDir: string): Array<{count?: number}> {
  const db = new Database(join(dataDir, 'hoop.db'), {readonly: true})
  try {
    return (db.prepare("SELECT body FROM audit_events WHERE kind = 'auth.failure'").all() as {body: string}[]).map((r) => JSON.parse(r.body).data as {count?: number})
  } finally {
    db.close()
  }
}

describe('hostile peers against a real gateway', function () {
  this.timeout(240_000)
  const dir = tempDir('hoop-e2e-hostile-')
  const dataDir = join(dir.path, 'data')
  let echo: Server
  let echoPort: number
  const echoSockets = new Set<Socket>()
  let gw: GatewayProc
  let token: string

  before(async () => {
    echo = createServer((s) => {
      echoSockets.add(s)
      s.once('close', () => echoSockets.delete(s))
      s.on('error', () => {})
      s.pipe(s)
    })
    echo.listen(0, '127.0.0.1')
    await once(echo, 'listening')
    echoPort = (echo.address() as {port: number}).port
    token = await createSecret('service-accounts', 'ci-bot', dataDir, ['eng'])
    gw = await startGatewayProc(config(echoPort), {dir: dir.path, dataDir})
  })

  after(async () => {
    await gw?.stop()
    for (const s of echoSockets) s.destroy()
    echo?.close()
    dir.cleanup()
  })

  it('closes a link that floods OPENs without reading; gateway memory stays bounded and a healthy session keeps working', async () => {
    const healthy = await link(gw.url, token)
    const session = healthy.open({connection: 'echo'})
    assert.equal(await roundTrip(session, 'before'), 'before')

    // Names are quoted back in errors only up to 128 characters.
    const long = healthy.open({connection: 'z'.repeat(10_000)})
    const refused = await new Promise<HoopError>((resolve) => long.once('error', (err) => resolve(err as HoopError)))
    assert.equal(refused.code, 'UNKNOWN_CONNECTION')
    assert.ok(refused.message.length < 200, `error message of ${refused.message.length} characters`)
    assert.match(refused.message, /z…"$/)

    const pid = gw.proc.child.pid!
    const base = rssOf(pid)
    let peak = 0
    const rogue = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/connect`, {headers: {authorization: `Bearer ${token}`}, perMessageDeflate: false})
    rogue.on('error', () => {})
    await once(rogue, 'open')
    let closed = false
    rogue.once('close', () => (closed = true))
    rogue.pause() // never reads: every RESET the gateway answers with stays queued there
    let sent = 0
    let roundTrips = 0
    const name = 'unknown-'.repeat(12)
    for (let id = 1; sent < 400_000 && !closed; id += 2) {
      rogue.send(encodeFrame({type: 'open', streamId: id, meta: {connection: name}}))
      sent++
      if (sent % 5000 === 0) {
        await new Promise<void>((resolve) => rogue.send(encodeFrame({type: 'open', streamId: (id += 2), meta: {connection: name}}), () => resolve()))
        peak = Math.max(peak, rssOf(pid) - base)
        if (sent % 20_000 === 0) {
          assert.equal(await roundTrip(session, `during ${sent}`), `during ${sent}`)
          roundTrips++
        }
      }
    }
    await gw.proc.waitFor(/relay peer is not reading; closing the link/)
    peak = Math.max(peak, rssOf(pid) - base)
    rogue.terminate()
    console.log(`      flood: ${sent} OPENs sent, gateway RSS peak +${(peak / MB).toFixed(1)} MB, ${roundTrips} healthy round trips during it`)
    assert.ok(peak < 160 * MB, `gateway RSS grew by ${(peak / MB).toFixed(1)} MB`)
    assert.ok(roundTrips >= 1)
    assert.equal(await roundTrip(session, 'after'), 'after')
    assert.equal(gw.proc.child.exitCode, null)
    session.end()
    healthy.goAway('GATEWAY_SHUTDOWN', 'test done')
  })

  it('counts a burst of 500 bad-token upgrades into a few audit events, and the log still verifies', async () => {
    const url = `${gw.url.replace('http', 'ws')}/v1/connect`
    const attempt = () =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, {headers: {authorization: `Bearer hoop_sa_000000000000_${'A'.repeat(43)}`}})
        ws.once('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0)
          ws.terminate()
        })
        ws.once('error', () => resolve(-1))
      })
    const statuses: number[] = []
    for (let i = 0; i < 10; i++) statuses.push(...(await Promise.all(Array.from({length: 50}, attempt))))
    assert.equal(statuses.filter((s) => s === 401).length, 500)
    assert.equal(gw.proc.child.exitCode, null)
    const warned = gw.proc.stderr().split('\n').filter((l) => l.includes('websocket refused') && l.includes('"level":"warn"')).length
    assert.ok(warned <= 5, `${warned} warnings logged for 500 refusals`)

    await gw.stop() // shutdown appends the pending counts
    const rows = authFailureRows(dataDir)
    const total = rows.reduce((n, r) => n + (r.count ?? 1), 0)
    console.log(`      500 bad tokens -> ${rows.length} auth.failure events, counts summing to ${total}`)
    assert.ok(rows.length <= 10, `${rows.length} auth.failure events`)
    assert.equal(total, 500)
    const verify = await runHoop(['audit', 'verify', '--live', '--data-dir', dataDir, '--json'])
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)
  })

  it('stays up and keeps raw TCP traffic flowing while the data dir refuses writes (file-size limit)', async () => {
    // A file-size limit just above what the store holds now: the next few MB of recording cannot
    // be written (write(2) fails with EFBIG; Node ignores SIGXFSZ), as on a full disk.
    const biggest = Math.max(...readdirSync(dataDir).map((f) => statSync(join(dataDir, f)).size))
    const limit = biggest + 2 * MB
    const port = await freePort()
    const child = spawn('prlimit', [`--fsize=${limit}`, '--', process.execPath, HOOP_BIN, 'gateway', '--config', gw.configFile, '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
      env: baseEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let log = ''
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()))
    const exited = once(child, 'exit')
    try {
      const deadline = Date.now() + 20_000
      while (!/gateway listening/.test(log)) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `gateway did not start: ${log.slice(-2000)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      const url = `http://127.0.0.1:${port}`
      const mux = await link(url, token)
      const session = mux.open({connection: 'echo'})
      assert.equal(await roundTrip(session, 'hello'), 'hello')
      // 16 MB each way: far beyond what the limit lets the recording store.
      const r = await pump(session, 16 * MB)
      assert.equal(r.got, r.sent)
      assert.match(log, /session recording failed; the session goes on unrecorded/)
      assert.equal(await roundTrip(session, 'still flowing'), 'still flowing')
      assert.equal(child.exitCode, null, `gateway exited: ${log.slice(-2000)}`)
      const health = await fetch(`${url}/healthz`)
      assert.equal(health.status, 200)
      session.end()
      await new Promise((r) => session.once('close', r))
      mux.goAway('GATEWAY_SHUTDOWN', 'test done')
      // The session ends cleanly (its end event may or may not fit in the full store).
      const deadline2 = Date.now() + 10_000
      while (!/session ended/.test(log) && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 50))
      assert.match(log, /session ended/)
      assert.equal(child.exitCode, null)
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM')
      await exited
    }
  })
})
