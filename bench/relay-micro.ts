// What each relay layer costs per message, in one process: a 100-byte ping-pong over loopback,
// CPU per round trip (two messages, each sent and received once) for
//   net    two net sockets (the floor: Node's socket streams and the kernel's loopback TCP),
//   ws     a WebSocket pair (ws, deflate off, zero mask as on loopback links),
//   wsraw  the same pair, each side writing one pre-framed buffer straight to the socket (no ws Sender),
//   data   a Mux stream over that pair, echoed by a 'data' listener (the relay as hoop uses it),
//   pipe   the same, echoed by stream.pipe(stream).
// Usage: node --import tsx bench/relay-micro.ts [ROOT=.] [MODE=data] [ROUND_TRIPS=50000]
// ROOT is a checkout whose src/relay is measured, so two builds can be compared side by side.
import {connect as netConnect, createServer} from 'node:net'
import {join, resolve} from 'node:path'
import {WebSocket, WebSocketServer} from 'ws'

const root = resolve(process.argv[2] ?? '.')
const mode = process.argv[3] ?? 'data'
const N = Number(process.argv[4] ?? 50_000)
const WARM_UP = 2000
const {Mux} = (await import(join(root, 'src/relay/mux.ts'))) as typeof import('../src/relay/mux.js')
const {MAX_FRAME_SIZE} = (await import(join(root, 'src/relay/frame.ts'))) as typeof import('../src/relay/frame.js')
const msg = Buffer.alloc(100, 7)

let cpu0 = process.cpuUsage()
let t0 = 0
let count = 0
let finish!: () => void
const finished = new Promise<void>((r) => (finish = r))
/** Counts one round trip; after the warm-up, starts the clock; returns false once N were measured. */
function next(): boolean {
  count++
  if (count === WARM_UP) {
    cpu0 = process.cpuUsage()
    t0 = performance.now()
  }
  if (count === WARM_UP + N) {
    finish()
    return false
  }
  return true
}

async function wsPair(): Promise<{client: WebSocket; server: WebSocket}> {
  const wss = new WebSocketServer({host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE})
  await new Promise((r) => wss.once('listening', r))
  const accepted = new Promise<WebSocket>((r) => wss.once('connection', r))
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as {port: number}).port}/`, {perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE, generateMask: (m: Buffer) => m.fill(0)})
  await new Promise((r) => client.once('open', r))
  return {client, server: await accepted}
}

/** One binary WebSocket frame of msg, as ws would write it (client side: mask bit and a zero key). */
function framed(masked: boolean): Buffer {
  const head = masked ? 6 : 2
  const b = Buffer.alloc(head + msg.length)
  b[0] = 0x82
  b[1] = (masked ? 0x80 : 0) | msg.length
  msg.copy(b, head)
  return b
}

if (mode === 'net') {
  const server = createServer({noDelay: true}, (c) => c.on('data', (d) => c.write(d)))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const c = netConnect({port: (server.address() as {port: number}).port, host: '127.0.0.1', noDelay: true})
  c.on('data', () => next() && c.write(msg))
  c.write(msg)
} else if (mode === 'ws' || mode === 'wsraw') {
  const {client, server} = await wsPair()
  if (mode === 'ws') {
    server.on('message', (d: Buffer) => server.send(d, {binary: true}))
    client.on('message', () => next() && client.send(msg, {binary: true}))
    client.send(msg, {binary: true})
  } else {
    const sock = (ws: WebSocket) => (ws as unknown as {_socket: {write(b: Buffer): boolean}})._socket
    server.on('message', () => sock(server).write(framed(false)))
    client.on('message', () => next() && sock(client).write(framed(true)))
    sock(client).write(framed(true))
  }
} else if (mode === 'data' || mode === 'pipe') {
  const {client, server} = await wsPair()
  const a = new Mux(client, {side: 'dialer', heartbeatMs: 0})
  new Mux(server, {
    side: 'acceptor',
    heartbeatMs: 0,
    onOpen: (s) => {
      s.accept()
      if (mode === 'pipe') s.pipe(s)
      else s.on('data', (d: Buffer) => s.write(d))
    },
  })
  const s = a.open({})
  s.on('data', () => next() && s.write(msg))
  await new Promise((r) => s.once('ready', r))
  s.write(msg)
} else {
  throw new Error(`unknown mode ${mode}: net, ws, wsraw, data or pipe`)
}

await finished
const c = process.cpuUsage(cpu0)
const wall = performance.now() - t0
console.log(`${mode.padEnd(5)} ${root}: ${((wall * 1000) / N).toFixed(1)} µs per round trip, CPU ${((c.user + c.system) / N).toFixed(1)} µs (user ${(c.user / N).toFixed(1)}, system ${(c.system / N).toFixed(1)})`)
process.exit(0)
