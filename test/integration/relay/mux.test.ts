// The multiplexer over a real ws server/client pair on 127.0.0.1.
import {strict as assert} from 'node:assert'
import {once} from 'node:events'
import {pipeline} from 'node:stream/promises'
import {HoopError} from '../../../src/shared/errors.js'
import {DEFAULT_WINDOW, LINK_HIGH_WATER, STREAM_HIGH_WATER, type Mux, type RelayStream} from '../../../src/relay/mux.js'
import {dial, echo, hashSink, randomBlock, readAll, source, startServer, until, type Server} from './_pair.js'

async function errorOf(stream: RelayStream): Promise<HoopError> {
  const [err] = (await once(stream, 'error')) as [Error]
  assert.ok(err instanceof HoopError, `expected a HoopError, got ${String(err)}`)
  return err
}

describe('relay mux', function () {
  let server: Server
  let onOpen: (s: RelayStream) => void
  afterEach(async () => {
    await server?.close()
  })

  async function setup(opts: Parameters<typeof startServer>[0] = {}, clientOpts: Parameters<typeof dial>[1] = {}) {
    onOpen = echo
    server = await startServer({onOpen: (s) => onOpen(s), ...opts})
    return dial(server, clientOpts)
  }

  it('opens, accepts with meta and echoes; ready fires on OPEN_OK', async () => {
    const {client} = await setup()
    let seenMeta: unknown
    onOpen = (s) => {
      seenMeta = s.meta
      echo(s)
    }
    const s = client.open({connection: 'db'})
    assert.equal(s.id, 1)
    const ready = once(s, 'ready')
    s.end('hello relay')
    await ready
    assert.equal((await readAll(s)).toString(), 'hello relay')
    assert.deepEqual(seenMeta, {connection: 'db'})
    assert.equal(s.bytesOut, 11)
    assert.equal(s.bytesIn, 11)
    await until(() => client.streamCount === 0, 'stream forgotten after both ENDs')
  })

  it('a reject reaches the opener as a HoopError with that code and message', async () => {
    const {client} = await setup()
    onOpen = (s) => s.reject('UNKNOWN_CONNECTION', 'no connection named "nope"')
    const err = await errorOf(client.open({connection: 'nope'}))
    assert.equal(err.code, 'UNKNOWN_CONNECTION')
    assert.equal(err.message, 'no connection named "nope"')
  })

  it('rejects when there is no handler, and INTERNAL when the handler throws', async () => {
    const {client} = await setup({onOpen: undefined})
    const noHandler = await errorOf(client.open({}))
    assert.equal(noHandler.code, 'PROTOCOL_ERROR')
    assert.match(noHandler.message, /does not accept streams/)
    await server.close()
    server = await startServer({
      onOpen: () => {
        throw new Error('boom')
      },
    })
    const {client: c3} = await dial(server)
    const err = await errorOf(c3.open({}))
    assert.equal(err.code, 'INTERNAL')
    assert.equal(err.message, 'internal error')
  })

  it('the acceptor opens streams to the dialer with even ids (gateway -> agent)', async () => {
    const {server: srv} = await setup({}, {onOpen: echo})
    const s = srv.open({connection: 'db', host: '127.0.0.1', port: 5432, sessionId: 'ses_x'})
    assert.equal(s.id, 2)
    s.end(Buffer.from([1, 2, 3]))
    assert.deepEqual([...(await readAll(s))], [1, 2, 3])
  })

  it('200 concurrent streams echo random data byte-exact', async () => {
    const {client} = await setup()
    const streams = Array.from({length: 200}, (_, i) => {
      const data = randomBlock(1 + ((i * 7919) % 150_000), i + 1)
      const s = client.open({i})
      s.end(data)
      return readAll(s).then((back) => assert.ok(back.equals(data), `stream ${i} echoed different bytes`))
    })
    assert.equal(client.streamCount, 200)
    await Promise.all(streams)
  })

  it('half close: the opener ends, then still receives the answer', async () => {
    const {client} = await setup()
    onOpen = (s) => {
      s.accept()
      void readAll(s).then((req) => {
        // Our side got END; we can still write.
        s.write('got ')
        setImmediate(() => s.end(req.toString().toUpperCase()))
      })
    }
    const s = client.open({})
    s.end('question')
    await once(s, 'finish')
    assert.equal((await readAll(s)).toString(), 'got QUESTION')
  })

  it('transfers 50 MB byte-exact', async () => {
    const {client} = await setup()
    const sink = hashSink()
    const done = new Promise<void>((resolve, reject) => {
      onOpen = (s) => {
        s.accept()
        pipeline(s, sink.stream).then(() => {
          s.end()
          resolve()
        }, reject)
      }
    })
    const src = source(50 * 1024 * 1024, 42)
    const s = client.open({})
    await pipeline(src.stream, s)
    await done
    assert.equal(sink.received(), 50 * 1024 * 1024)
    assert.equal(sink.hash(), src.hash())
  })

  it('backpressure: a receiver that stops reading stalls a 200 MB sender; resuming completes it', async () => {
    const {client} = await setup()
    const total = 200 * 1024 * 1024
    let receiver: RelayStream | undefined
    onOpen = (s) => {
      receiver = s
      s.accept() // and do not read
    }
    const before = process.memoryUsage()
    const src = source(total, 7)
    const sender = client.open({})
    const sent = pipeline(src.stream, sender)
    await until(() => receiver !== undefined, 'stream accepted')
    const r = receiver!
    // Stalled: the sender has no credit, nothing is in flight, and the reader's buffer is full.
    await until(
      () => sender.sendCredit === 0 && r.recvCredit === 0 && r.readableLength >= r.readableHighWaterMark,
      'sender stalls on window',
    )
    const bound = DEFAULT_WINDOW + STREAM_HIGH_WATER
    assert.ok(r.readableLength <= bound, `receiver buffers ${r.readableLength} > window + hwm ${bound}`)
    assert.ok(sender.bytesOut <= bound, `sender sent ${sender.bytesOut} bytes before stalling`)
    // The producer was held back by write callbacks: it made at most a few buffers beyond what was sent.
    assert.ok(src.produced() < sender.bytesOut + 8 * STREAM_HIGH_WATER, `producer made ${src.produced()} bytes`)
    assert.ok(sender.writableLength > 0, 'writes are held waiting for credit')
    const grown = process.memoryUsage().arrayBuffers - before.arrayBuffers
    assert.ok(grown < 32 * 1024 * 1024, `buffers grew ${grown} bytes while 200 MB were being written`)

    const sink = hashSink()
    let peakGrowth = 0
    const sample = setInterval(() => {
      peakGrowth = Math.max(peakGrowth, process.memoryUsage().rss - before.rss)
    }, 20)
    try {
      await Promise.all([pipeline(r, sink.stream), sent.then(() => r.end())])
    } finally {
      clearInterval(sample)
    }
    assert.equal(sink.received(), total)
    assert.equal(sink.hash(), src.hash())
    assert.ok(peakGrowth < total / 2, `rss grew ${peakGrowth} bytes during a ${total}-byte transfer`)
  })

  it('link backpressure: a socket that stops draining holds stream writes near LINK_HIGH_WATER', async () => {
    const n = 8
    const per = 8 * 1024 * 1024
    const sinks = Array.from({length: n}, () => hashSink())
    const received: Array<Promise<void>> = []
    const {server: srv, ws} = await setup(
      {initialWindow: 4 * 1024 * 1024},
      {
        initialWindow: 4 * 1024 * 1024,
        onOpen: (s) => {
          s.accept()
          received.push(pipeline(s, sinks[s.meta.i as number].stream).then(() => void s.end()))
        },
      },
    )
    const srvWs = [...server.wss.clients][0]
    const srcs = Array.from({length: n}, (_, i) => source(per, 100 + i))
    const streams = srcs.map((_, i) => srv.open({i}))
    await Promise.all(streams.map((s) => once(s, 'ready')))
    // The client stops reading its socket: the server's frames pile up in its ws buffer.
    const raw = (ws as unknown as {_socket: import('node:net').Socket})._socket
    raw.pause()
    const sent = streams.map((s, i) => pipeline(srcs[i].stream, s))
    await until(() => srv.congested, 'server link congested')
    const buffered = srvWs.bufferedAmount
    // Writes wait while congested: the buffer holds at most the limit plus one frame per stream.
    assert.ok(buffered <= LINK_HIGH_WATER + n * 70 * 1024, `ws buffered ${buffered}`)
    assert.ok(streams.some((s) => s.writableLength > 0), 'some writes are held')
    raw.resume()
    await Promise.all(sent)
    await until(() => received.length === n, 'all streams accepted')
    await Promise.all(received)
    for (let i = 0; i < n; i++) {
      assert.equal(sinks[i].received(), per)
      assert.equal(sinks[i].hash(), srcs[i].hash())
    }
  })

  it('reset() and destroy() abort the peer stream with a code', async () => {
    const {client} = await setup()
    const peer: RelayStream[] = []
    onOpen = (s) => {
      peer.push(s)
      s.accept()
    }
    const a = client.open({})
    const b = client.open({})
    await until(() => peer.length === 2, 'both accepted')
    const errA = errorOf(peer[0])
    a.reset('ACCESS_DENIED', 'session expired')
    const ea = await errA
    assert.equal(ea.code, 'ACCESS_DENIED')
    assert.equal(ea.message, 'session expired')
    const errB = errorOf(peer[1])
    b.destroy()
    assert.equal((await errB).code, 'INTERNAL')
    await until(() => client.streamCount === 0, 'client forgot both streams')
  })

  it('goAway ends every stream with its code on both sides and closes the link', async () => {
    const {client, server: srv} = await setup()
    const s1 = client.open({})
    const s2 = client.open({})
    await Promise.all([once(s1, 'ready'), once(s2, 'ready')])
    const closed = once(client, 'close')
    const e1 = errorOf(s1)
    srv.goAway('GATEWAY_SHUTDOWN', 'gateway restarting')
    assert.equal(srv.closed, true)
    assert.equal((await e1).code, 'GATEWAY_SHUTDOWN')
    assert.equal((await e1).message, 'gateway restarting')
    const [err] = (await closed) as [HoopError]
    assert.equal(err.code, 'GATEWAY_SHUTDOWN')
    assert.equal(client.closed, true)
    assert.equal(client.streamCount, 0)
    assert.throws(() => client.open({}), (e: unknown) => e instanceof HoopError && e.code === 'GATEWAY_SHUTDOWN')
  })

  it('a lost link destroys streams with GATEWAY_UNREACHABLE "relay link lost"', async () => {
    const {client} = await setup()
    const s = client.open({})
    await once(s, 'ready')
    const e = errorOf(s)
    const closed = once(client, 'close') as Promise<[HoopError]>
    for (const ws of server.wss.clients) ws.terminate()
    const err = await e
    assert.equal(err.code, 'GATEWAY_UNREACHABLE')
    assert.equal(err.message, 'relay link lost')
    assert.equal((await closed)[0].code, 'GATEWAY_UNREACHABLE')
  })

  it('writes before OPEN_OK are delivered, and a bigger or smaller initialWindow still works', async () => {
    for (const w of [16 * 1024, 1024 * 1024]) {
      const {client} = await setup({initialWindow: w}, {initialWindow: w})
      const data = randomBlock(3 * 1024 * 1024, w)
      const s = client.open({})
      s.end(data) // before OPEN_OK
      const back = await readAll(s)
      assert.ok(back.equals(data))
      await server.close()
    }
  })

  it('open() rejects meta over 16 KiB', async () => {
    const {client}: {client: Mux} = await setup()
    assert.throws(() => client.open({big: 'x'.repeat(17_000)}), (e: unknown) => e instanceof HoopError && e.code === 'INVALID_INPUT' && /exceeds limit 16384/.test(e.message))
  })
})
