// Heartbeat: a peer that stops answering pings is terminated ("detect broken connections", ws README).
import {strict as assert} from 'node:assert'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {existsSync} from 'node:fs'
import {join} from 'node:path'
import type {HoopError} from '../../../src/shared/errors.js'
import {ROOT, tempDir} from '../../helpers/cli.js'
import {dial, echo, rawClient, readAll, startServer, type Server} from './_pair.js'

/** Blocks this process (timers and I/O alike), as a long GC pause or a starved CPU would. */
function stallUntil(done: () => boolean, atLeastMs: number): void {
  const cell = new Int32Array(new SharedArrayBuffer(4))
  const start = Date.now()
  while (!(done() && Date.now() - start >= atLeastMs) && Date.now() - start < 30_000) Atomics.wait(cell, 0, 0, 10)
}

describe('relay heartbeat', function () {
  let server: Server | undefined
  afterEach(async () => {
    await server?.close()
    server = undefined
  })

  it('the acceptor terminates a dialer that does not answer pings', async () => {
    server = await startServer({onOpen: echo, heartbeatMs: 30})
    const rogue = await rawClient(server.url, {autoPong: false})
    const mux = server.muxes[0]
    const [err] = (await once(mux, 'close')) as [HoopError]
    assert.equal(err.code, 'GATEWAY_UNREACHABLE')
    assert.equal(err.message, 'relay link lost')
    assert.match(String(err.details?.reason), /no pong within 30 ms/)
    assert.equal((await rogue.closed).code, 1006)
  })

  it('the dialer terminates a gateway that does not answer pings, failing its streams', async () => {
    server = await startServer({onOpen: (s) => s.accept(), heartbeatMs: 0}, {autoPong: false})
    const {client} = await dial(server, {heartbeatMs: 30})
    const s = client.open({})
    const [err] = (await once(s, 'error')) as [HoopError]
    assert.equal(err.code, 'GATEWAY_UNREACHABLE')
    assert.equal(client.closed, true)
  })

  it('a pong that arrived while this process was stalled counts: the stall does not end a live link', async () => {
    // The peer is another process, so it answers while this one is blocked; it marks a file once
    // it has answered a ping (ws sends the pong before it emits 'ping').
    const dir = tempDir('hoop-heartbeat-')
    const answered = join(dir.path, 'answered')
    server = await startServer({onOpen: echo, heartbeatMs: 100})
    const linked = server.nextMux()
    const script = "const ws = new (require('ws'))(process.argv[1]); ws.on('error', () => {}); ws.once('ping', () => require('fs').writeFileSync(process.argv[2], ''))"
    const peer = spawn(process.execPath, ['-e', script, server.url, answered], {cwd: ROOT, stdio: 'ignore'})
    const peerExit = once(peer, 'exit')
    try {
      const mux = await linked
      const ws = [...server.wss.clients][0]
      // Right after the first ping goes out, block until the peer has answered and the next
      // heartbeat check is due: the pong then waits unread, and timers run before I/O.
      const ping = ws.ping.bind(ws)
      ws.ping = (...args: Parameters<typeof ws.ping>) => {
        ping(...args)
        if (!existsSync(answered)) setImmediate(() => stallUntil(() => existsSync(answered), 250))
      }
      let pongs = 0
      ws.on('pong', () => pongs++)
      while (pongs < 4 && !mux.closed) await new Promise((r) => setTimeout(r, 10))
      assert.ok(existsSync(answered), 'the peer answered a ping')
      assert.equal(mux.closed, false, 'the link survived the stall')
    } finally {
      peer.kill()
      await peerExit
      dir.cleanup()
    }
  })

  it('a healthy link survives many heartbeat intervals', async () => {
    // 50 ms, not less: on a loaded machine a pong later than one interval ends the link (by design).
    server = await startServer({onOpen: echo, heartbeatMs: 50})
    const {client} = await dial(server, {heartbeatMs: 50})
    let pongs = 0
    ;[...server.wss.clients][0].on('pong', () => pongs++)
    while (pongs < 10 && !client.closed) await new Promise((r) => setTimeout(r, 10))
    assert.equal(client.closed, false)
    const s = client.open({})
    s.end('alive')
    assert.equal((await readAll(s)).toString(), 'alive')
  })
})
