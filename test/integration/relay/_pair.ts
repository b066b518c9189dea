// Test helpers for the relay: a real ws server/client pair on 127.0.0.1:0 with a Mux on each end,
// a raw ws client for rogue-peer tests, deterministic data, and condition waits (no timing asserts).
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {Readable, Writable} from 'node:stream'
import WebSocket, {WebSocketServer} from 'ws'
import {MAX_FRAME_SIZE, decodeFrame, type Frame} from '../../../src/relay/frame.js'
import {Mux, type MuxOptions, type RelayStream} from '../../../src/relay/mux.js'
import type {Logger} from '../../../src/shared/log.js'

export interface Server {
  wss: WebSocketServer
  url: string
  /** Muxes for accepted links, in order. */
  muxes: Mux[]
  nextMux(): Promise<Mux>
  close(): Promise<void>
}

export async function startServer(opts: Partial<MuxOptions> = {}, wsOpts: {autoPong?: boolean} = {}): Promise<Server> {
  const wss = new WebSocketServer({host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE, ...wsOpts})
  await once(wss, 'listening')
  const muxes: Mux[] = []
  const waiters: Array<(m: Mux) => void> = []
  wss.on('connection', (ws) => {
    const mux = new Mux(ws, {side: 'acceptor', ...opts})
    muxes.push(mux)
    waiters.shift()?.(mux)
  })
  const {port} = wss.address() as {port: number}
  return {
    wss,
    url: `ws://127.0.0.1:${port}`,
    muxes,
    nextMux: () => new Promise((resolve) => waiters.push(resolve)),
    close: async () => {
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

/** A dialer Mux connected to `server`; resolves once both ends exist. */
export async function dial(server: Server, opts: Partial<MuxOptions> = {}): Promise<{client: Mux; server: Mux; ws: WebSocket}> {
  const serverMux = server.nextMux()
  const ws = new WebSocket(server.url, {perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE})
  // Created while CONNECTING on purpose: the mux queues frames until the socket opens.
  const client = new Mux(ws, {side: 'dialer', ...opts})
  const srv = await serverMux
  if (ws.readyState !== WebSocket.OPEN) await once(ws, 'open')
  return {client, server: srv, ws}
}

/** Accept every stream and echo it back (end follows end). */
export function echo(stream: RelayStream): void {
  stream.accept()
  stream.pipe(stream)
}

export async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Reads a stream to its end; returns the bytes. (Not for-await: that destroys a Duplex at the end.) */
export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    stream.on('data', (chunk: Buffer) => parts.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(parts)))
    stream.once('error', reject)
  })
}

/** A lazy source of `total` pseudo-random bytes in chunks of `chunk` (nothing is pre-generated). */
export function source(total: number, seed: number, chunk = 64 * 1024): {stream: Readable; produced: () => number; hash: () => string} {
  const block = randomBlock(1024 * 1024 + 7, seed)
  const h = createHash('sha256')
  let produced = 0
  let pos = 0
  const stream = new Readable({
    highWaterMark: chunk,
    read() {
      if (produced >= total) {
        this.push(null)
        return
      }
      const n = Math.min(chunk, total - produced)
      if (pos + n > block.length) pos = (pos * 31 + 17) % (block.length - n)
      // A fresh Buffer per chunk, as a socket would produce.
      const out = Buffer.from(block.subarray(pos, pos + n))
      pos += n
      produced += n
      h.update(out)
      this.push(out)
    },
  })
  return {stream, produced: () => produced, hash: () => h.digest('hex')}
}

export function hashSink(): {stream: Writable; received: () => number; hash: () => string} {
  const h = createHash('sha256')
  let received = 0
  const stream = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      received += chunk.length
      h.update(chunk)
      cb()
    },
  })
  return {stream, received: () => received, hash: () => h.digest('hex')}
}

export function randomBlock(size: number, seed: number): Buffer {
  // xorshift32: deterministic, fast, no crypto needed for test data.
  const buf = Buffer.allocUnsafe(size)
  let x = seed | 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    buf[i] = x & 0xff
  }
  return buf
}

/** A raw ws client that speaks frames by hand (for rogue-peer tests). */
export async function rawClient(url: string, opts: {autoPong?: boolean} = {}): Promise<{
  ws: WebSocket
  frames: Frame[]
  closed: Promise<{code: number}>
}> {
  const ws = new WebSocket(url, {perMessageDeflate: false, ...opts})
  const frames: Frame[] = []
  ws.on('message', (data: Buffer) => frames.push(decodeFrame(data)))
  ws.on('error', () => {})
  const closed = new Promise<{code: number}>((resolve) => ws.on('close', (code) => resolve({code})))
  await once(ws, 'open')
  return {ws, frames, closed}
}

/** A logger that records warnings and errors so tests can assert the rogue link was logged. */
export function recordingLogger(): Logger & {lines: Array<{level: string; msg: string; fields?: Record<string, unknown>}>} {
  const lines: Array<{level: string; msg: string; fields?: Record<string, unknown>}> = []
  const make = (): Logger => ({
    debug: () => {},
    info: (msg, fields) => lines.push({level: 'info', msg, fields}),
    warn: (msg, fields) => lines.push({level: 'warn', msg, fields}),
    error: (msg, fields) => lines.push({level: 'error', msg, fields}),
    child: () => make(),
  })
  return Object.assign(make(), {lines})
}
