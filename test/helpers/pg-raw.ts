// A raw PostgreSQL protocol client for adversarial tests: it sends messages built with the codec's
// encoders and keeps every byte the server (or the gateway in front of it) sent back, so a test can
// search the bytes themselves (test/helpers/leak-oracle.ts) instead of trusting a driver's view.
import {connect, type Socket} from 'node:net'
import {Framer, type Frame} from '../../src/protocol/pg/framer.js'
import {B, encodeQuery, encodeStartup, encodeSync, encodeTerminate} from '../../src/protocol/pg/messages.js'

export interface RawExchange {
  /** Every byte received for this exchange, in order. */
  bytes: Buffer
  /** The same bytes as messages. */
  frames: Frame[]
}

export class PgRawClient {
  private readonly framer = new Framer('regular', 1 << 30)
  private frames: Frame[] = []
  private waiter: (() => void) | undefined
  private closed = false

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.framer.push(chunk, (f) => this.frames.push({...f, bytes: Buffer.from(f.bytes)}))
      this.waiter?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.waiter?.()
    })
    socket.on('error', () => {})
  }

  /** Connects and completes the startup (trust auth, or hoop's own AuthenticationOk). */
  static async open(port: number, params: Record<string, string> = {user: 'postgres', database: 'test'}): Promise<PgRawClient> {
    const socket = connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    const c = new PgRawClient(socket)
    socket.write(encodeStartup(params))
    const startup = await c.untilReady()
    const err = startup.frames.find((f) => f.type === B.ErrorResponse)
    if (err) throw new Error(`startup refused: ${err.bytes.toString('latin1')}`)
    return c
  }

  /** Sends a simple Query and returns everything received up to and including ReadyForQuery. */
  query(sql: string): Promise<RawExchange> {
    this.socket.write(encodeQuery(sql))
    return this.untilReady()
  }

  /** Sends raw messages (an extended-protocol pipeline; a Sync is appended) and collects the answer. */
  send(...messages: Buffer[]): Promise<RawExchange> {
    this.socket.write(Buffer.concat([...messages, encodeSync()]))
    return this.untilReady()
  }

  /** Waits up to `ms` for anything else the server sends unasked (notifications, notices). */
  async drain(ms: number): Promise<RawExchange> {
    await new Promise((r) => setTimeout(r, ms))
    return this.take(this.frames.length)
  }

  close(): void {
    if (!this.closed) this.socket.end(encodeTerminate())
    setTimeout(() => this.socket.destroy(), 200).unref()
  }

  private async untilReady(): Promise<RawExchange> {
    for (;;) {
      const i = this.frames.findIndex((f) => f.type === B.ReadyForQuery)
      if (i >= 0) return this.take(i + 1)
      if (this.closed) return this.take(this.frames.length)
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  private take(n: number): RawExchange {
    const frames = this.frames.splice(0, n)
    const bytes = Buffer.concat(frames.map((f) => f.bytes))
    return {bytes, frames}
  }
}
