// Rogue peers: a raw ws client sends malformed or abusive frames to a server-side Mux. The mux must
// survive, answer with GOAWAY/RESET as docs/relay-protocol.md says, and other links keep working.
// A peer that floods and never reads must have its link closed at the queue bound, never grown.
import {strict as assert} from 'node:assert'
import {once} from 'node:events'
import type WebSocket from 'ws'
import {HoopError} from '../../../src/shared/errors.js'
import {HEADER_SIZE, INITIAL_WINDOW, MAX_DATA_PAYLOAD, MAX_FRAME_SIZE, MAX_META_SIZE, encodeFrame, type Frame} from '../../../src/relay/frame.js'
import {LINK_MAX_QUEUED, type Mux, type RelayStream} from '../../../src/relay/mux.js'
import {dial, echo, readAll, rawClient, recordingLogger, startServer, until, type Server} from './_pair.js'

const send = (ws: WebSocket, f: Frame) => ws.send(encodeFrame(f))
const MB = 1024 * 1024

/** Bytes the process holds in JS objects and buffers (queued frames are buffers). */
function memoryInUse(): number {
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

describe('relay mux against a rogue peer', function () {
  let server: Server
  let good: Mux
  let log: ReturnType<typeof recordingLogger>
  const held: RelayStream[] = []
  /** Streams left waiting for accept()/reject(). */
  const unanswered: RelayStream[] = []

  beforeEach(async () => {
    log = recordingLogger()
    held.length = 0
    unanswered.length = 0
    server = await startServer({
      logger: log,
      maxStreams: 3,
      maxPending: 2,
      onOpen: (s) => {
        if (typeof s.meta.connection === 'string') {
          // Like the gateway: refuse an unknown name, quoting what the peer sent.
          s.reject('UNKNOWN_CONNECTION', `unknown connection "${s.meta.connection}"`)
        } else if (s.meta.unanswered) {
          unanswered.push(s)
        } else if (s.meta.hold) {
          held.push(s)
          s.accept() // never reads
        } else if (s.meta.throwOnData) {
          s.accept()
          s.on('data', () => {
            throw new Error('handler bug')
          })
        } else echo(s)
      },
    })
    good = (await dial(server)).client
  })
  afterEach(async () => {
    await server.close()
  })

  /** The well-behaved link still echoes. */
  async function goodLinkWorks(): Promise<void> {
    const s = good.open({})
    s.end('still here')
    assert.equal((await readAll(s)).toString(), 'still here')
  }

  /** Sends `bytes`, expects GOAWAY PROTOCOL_ERROR matching `re`, then the close. */
  async function expectGoAway(bytes: Buffer | string, re: RegExp): Promise<void> {
    const rogue = await rawClient(server.url)
    const mux = server.muxes[server.muxes.length - 1]
    const closedMux = once(mux, 'close') as Promise<[HoopError]>
    rogue.ws.send(bytes)
    const {code} = await rogue.closed
    assert.equal(code, 1000)
    const goaway = rogue.frames.find((f) => f.type === 'goaway')
    assert.ok(goaway && goaway.type === 'goaway', `expected GOAWAY, got ${JSON.stringify(rogue.frames)}`)
    assert.equal(goaway.code, 'PROTOCOL_ERROR')
    assert.match(goaway.message, re)
    const [err] = await closedMux
    assert.equal(err.code, 'PROTOCOL_ERROR')
    assert.ok(log.lines.some((l) => l.level === 'warn' && /broke the protocol/.test(l.msg)), 'the rogue link is logged')
    await goodLinkWorks()
  }

  it('garbage (unknown version) gets GOAWAY PROTOCOL_ERROR', async () => {
    await expectGoAway(Buffer.from('GET / HTTP/1.1\r\n'), /version 71 is not supported/)
  })

  it('a truncated header gets GOAWAY', async () => {
    await expectGoAway(Buffer.from([1, 3, 0]), /shorter than the 6-byte header/)
  })

  it('an unknown frame type gets GOAWAY', async () => {
    await expectGoAway(Buffer.from([1, 99, 0, 0, 0, 1]), /type 99 is unknown/)
  })

  it('OPEN with bad JSON gets GOAWAY', async () => {
    await expectGoAway(Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 1]), Buffer.from('{nope')]), /not valid JSON/)
  })

  it('a text message gets GOAWAY', async () => {
    await expectGoAway('hello', /text message/)
  })

  it('a message over maxPayload is refused from its header with close 1009', async () => {
    const rogue = await rawClient(server.url)
    const mux = server.muxes[server.muxes.length - 1]
    const closedMux = once(mux, 'close') as Promise<[HoopError]>
    rogue.ws.send(Buffer.alloc(MAX_FRAME_SIZE + 1, 1))
    assert.equal((await rogue.closed).code, 1009)
    const [err] = await closedMux
    assert.equal(err.code, 'PROTOCOL_ERROR')
    assert.match(err.message, /Max payload size exceeded/)
    await goodLinkWorks()
  })

  it('DATA, WINDOW and END for never-opened ids get RESET; the link stays up', async () => {
    const rogue = await rawClient(server.url)
    send(rogue.ws, {type: 'data', streamId: 11, data: Buffer.from('x')})
    send(rogue.ws, {type: 'window', streamId: 13, increment: 5})
    send(rogue.ws, {type: 'end', streamId: 15})
    send(rogue.ws, {type: 'open-ok', streamId: 4})
    await until(() => rogue.frames.length === 4, 'four RESETs')
    assert.deepEqual(
      rogue.frames.map((f) => f.type === 'reset' && [f.streamId, f.code]),
      [[11, 'PROTOCOL_ERROR'], [13, 'PROTOCOL_ERROR'], [15, 'PROTOCOL_ERROR'], [4, 'PROTOCOL_ERROR']],
    )
    send(rogue.ws, {type: 'open', streamId: 17, meta: {}})
    await until(() => rogue.frames.some((f) => f.type === 'open-ok' && f.streamId === 17), 'OPEN_OK 17')
    assert.equal(rogue.ws.readyState, rogue.ws.OPEN)
    rogue.ws.terminate()
    await goodLinkWorks()
  })

  it('DATA beyond the window resets only that stream', async () => {
    const rogue = await rawClient(server.url)
    send(rogue.ws, {type: 'open', streamId: 1, meta: {hold: true}})
    send(rogue.ws, {type: 'open', streamId: 3, meta: {}})
    const chunk = Buffer.alloc(MAX_DATA_PAYLOAD, 7)
    for (let sent = 0; sent < INITIAL_WINDOW; sent += chunk.length) send(rogue.ws, {type: 'data', streamId: 1, data: chunk})
    send(rogue.ws, {type: 'data', streamId: 1, data: Buffer.from('one byte too many')})
    await until(() => rogue.frames.some((f) => f.type === 'reset' && f.streamId === 1), 'RESET 1')
    const reset = rogue.frames.find((f) => f.type === 'reset')!
    assert.ok(reset.type === 'reset')
    assert.equal(reset.code, 'PROTOCOL_ERROR')
    assert.match(reset.message, /window/)
    // The held stream saw the error; stream 3 on the same link still works.
    assert.equal(held[0].destroyed, true)
    send(rogue.ws, {type: 'data', streamId: 3, data: Buffer.from('ping')})
    await until(() => rogue.frames.some((f) => f.type === 'data' && f.streamId === 3), 'echo on 3')
    rogue.ws.terminate()
    await goodLinkWorks()
  })

  it('a WINDOW that overflows the credit resets that stream', async () => {
    const rogue = await rawClient(server.url)
    send(rogue.ws, {type: 'open', streamId: 1, meta: {}})
    send(rogue.ws, {type: 'window', streamId: 1, increment: 2 ** 31})
    await until(() => rogue.frames.some((f) => f.type === 'reset'), 'RESET')
    const reset = rogue.frames.find((f) => f.type === 'reset')!
    assert.ok(reset.type === 'reset' && reset.streamId === 1 && /window would exceed/.test(reset.message))
    rogue.ws.terminate()
  })

  it('OPEN with the wrong parity, a reused id, or beyond maxStreams gets RESET', async () => {
    const rogue = await rawClient(server.url)
    send(rogue.ws, {type: 'open', streamId: 2, meta: {}}) // dialer must use odd ids
    send(rogue.ws, {type: 'open', streamId: 1, meta: {hold: true}})
    send(rogue.ws, {type: 'open', streamId: 1, meta: {}}) // in use
    send(rogue.ws, {type: 'open', streamId: 5, meta: {hold: true}})
    send(rogue.ws, {type: 'open', streamId: 7, meta: {hold: true}})
    send(rogue.ws, {type: 'open', streamId: 9, meta: {hold: true}}) // stream 1 was reset: 3 concurrent
    send(rogue.ws, {type: 'open', streamId: 11, meta: {hold: true}}) // 4th concurrent, limit 3
    await until(() => rogue.frames.filter((f) => f.type === 'reset').length === 3, 'three RESETs')
    const resets = rogue.frames.filter((f) => f.type === 'reset').map((f) => f.type === 'reset' && `${f.streamId}:${f.message}`)
    assert.match(resets[0] as string, /^2:.*wrong parity/)
    assert.match(resets[1] as string, /^1:.*already in use/)
    assert.match(resets[2] as string, /^11:.*limit 3/)
    // The duplicate OPEN tore down the existing stream 1 on this side as well.
    assert.equal(held[0].destroyed, true)
    rogue.ws.terminate()
    await goodLinkWorks()
  })

  it('an exception in a stream data handler resets that stream, not the process or the link', async () => {
    const rogue = await rawClient(server.url)
    send(rogue.ws, {type: 'open', streamId: 1, meta: {throwOnData: true}})
    await until(() => rogue.frames.some((f) => f.type === 'open-ok'), 'OPEN_OK 1')
    // The stream is flowing now, so the listener runs inside the mux's frame handling.
    send(rogue.ws, {type: 'data', streamId: 1, data: Buffer.from('boom')})
    await until(() => rogue.frames.some((f) => f.type === 'reset'), 'RESET')
    const reset = rogue.frames.find((f) => f.type === 'reset')!
    assert.ok(reset.type === 'reset' && reset.code === 'INTERNAL' && reset.message === 'internal error')
    send(rogue.ws, {type: 'open', streamId: 3, meta: {}})
    await until(() => rogue.frames.some((f) => f.type === 'open-ok' && f.streamId === 3), 'OPEN_OK 3')
    rogue.ws.terminate()
  })

  it('refuses OPENs beyond maxPending unanswered streams; an answer or a RESET frees room', async () => {
    const rogue = await rawClient(server.url)
    const mux = server.muxes[server.muxes.length - 1]
    for (const id of [1, 3, 5]) send(rogue.ws, {type: 'open', streamId: id, meta: {unanswered: true}})
    await until(() => rogue.frames.some((f) => f.type === 'reset'), 'RESET 5')
    assert.deepEqual(
      rogue.frames.map((f) => f.type === 'reset' && `${f.streamId}:${f.code}:${f.message}`),
      ['5:PROTOCOL_ERROR:relay peer already has 2 stream opens waiting for an answer, limit 2'],
    )
    assert.equal(mux.pendingCount, 2)
    unanswered[0].accept()
    assert.equal(mux.pendingCount, 1)
    send(rogue.ws, {type: 'open', streamId: 7, meta: {unanswered: true}})
    await until(() => unanswered.length === 3, 'stream 7 waits')
    assert.equal(mux.pendingCount, 2)
    // A RESET from the peer for a waiting stream frees its place too; so does reject().
    send(rogue.ws, {type: 'reset', streamId: 3, code: 'INTERNAL', message: 'gone'})
    await until(() => mux.pendingCount === 1, 'pending 1')
    unanswered[2].reject('ACCESS_DENIED', 'no')
    assert.equal(mux.pendingCount, 0)
    assert.equal(rogue.ws.readyState, rogue.ws.OPEN)
    rogue.ws.terminate()
    await goodLinkWorks()
  })
})

describe('relay mux against a peer that floods and never reads', function () {
  this.timeout(120_000)
  let server: Server
  let good: Mux
  let log: ReturnType<typeof recordingLogger>

  beforeEach(async () => {
    log = recordingLogger()
    server = await startServer({
      logger: log,
      onOpen: (s) => (typeof s.meta.connection === 'string' ? s.reject('UNKNOWN_CONNECTION', `unknown connection "${s.meta.connection}"`) : echo(s)),
    })
    good = (await dial(server)).client
  })
  afterEach(async () => {
    await server.close()
  })

  async function goodLinkWorks(text: string): Promise<void> {
    const s = good.open({})
    s.end(text)
    assert.equal((await readAll(s)).toString(), text)
  }

  it('closes the link of a peer that floods OPENs without reading, at the queue bound, and never grows', async () => {
    const rogue = await rawClient(server.url)
    const mux = server.muxes[server.muxes.length - 1]
    const closedMux = once(mux, 'close') as Promise<[HoopError]>
    let muxClosed = false
    void closedMux.then(() => (muxClosed = true))
    rogue.ws.pause() // never reads again: every RESET stays queued on the server
    const name = 'n'.repeat(1000)
    const base = memoryInUse()
    let peak = 0
    let sent = 0
    let healthyRoundTrips = 0
    // Without the bound this sends 150 MB of OPENs and the server queues as much in RESETs.
    for (let id = 1; sent < 150_000 && !muxClosed; id += 2) {
      send(rogue.ws, {type: 'open', streamId: id, meta: {connection: name}})
      sent++
      if (sent % 2000 === 0) {
        // Let the server read what was sent (the send callback fires once it is in the kernel).
        await new Promise<void>((resolve) => rogue.ws.send(encodeFrame({type: 'open', streamId: (id += 2), meta: {connection: 'x'}}), () => resolve()))
        peak = Math.max(peak, memoryInUse() - base)
        if (sent % 10_000 === 0) {
          await goodLinkWorks(`round trip ${sent}`)
          healthyRoundTrips++
        }
      }
    }
    const [err] = await closedMux
    assert.equal(err.code, 'PROTOCOL_ERROR')
    assert.match(err.message, /bytes queued for the peer, limit 16777216 \(the peer is not reading\)/)
    assert.ok(mux.peakQueuedBytes <= LINK_MAX_QUEUED, `peak queue ${mux.peakQueuedBytes} bytes`)
    assert.ok(mux.peakQueuedBytes > LINK_MAX_QUEUED - MAX_META_SIZE - HEADER_SIZE, 'the bound, not something else, closed the link')
    // Unbounded, the same flood measured +398 MB here (144 MiB queued).
    assert.ok(peak < 96 * MB, `heap + buffers grew by ${(peak / MB).toFixed(1)} MB during the flood`)
    assert.ok(log.lines.some((l) => l.level === 'warn' && /not reading; closing the link/.test(l.msg)), 'the closed link is logged')
    assert.ok(healthyRoundTrips >= 1, 'the healthy link was used during the flood')
    await goodLinkWorks('after the flood')
    rogue.ws.terminate()
    console.log(`      flood: ${sent} OPENs, server queue peak ${(mux.peakQueuedBytes / MB).toFixed(1)} MiB, heap+buffers peak +${(peak / MB).toFixed(1)} MB`)
  })
})
