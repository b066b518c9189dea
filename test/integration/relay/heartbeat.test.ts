// Heartbeat: a peer that stops answering pings is terminated ("detect broken connections", ws README).
import {strict as assert} from 'node:assert'
import {once} from 'node:events'
import type {HoopError} from '../../../src/shared/errors.js'
import {dial, echo, rawClient, readAll, startServer, type Server} from './_pair.js'

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
