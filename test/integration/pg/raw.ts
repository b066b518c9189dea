// A raw PostgreSQL protocol client for tests that need exact bytes on the wire (what a driver
// sends in one segment, how many ErrorResponses arrive): write bytes, read backend messages.
import * as net from 'node:net'
import {decodeErrorFields} from '../../../src/protocol/pg/messages.js'

export interface BackendMessage {
  type: string
  body: Buffer
}

export class RawClient {
  readonly messages: BackendMessage[] = []
  closed = false
  private buf = Buffer.alloc(0)
  private waiters = new Set<() => void>()

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      while (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1)) {
        const len = this.buf.readInt32BE(1)
        this.messages.push({type: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, 1 + len))})
        this.buf = this.buf.subarray(1 + len)
      }
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  static async connect(port: number): Promise<RawClient> {
    const s = net.connect(port, '127.0.0.1')
    s.setNoDelay(true)
    await new Promise((r) => s.once('connect', r))
    return new RawClient(s)
  }

  /** One write: everything in `parts` leaves in the same segment. */
  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts))
  }

  /** Resolves when `done(messages)` holds, or rejects when the connection closes first or after `ms`. */
  async until(done: (m: BackendMessage[]) => boolean, ms = 10_000): Promise<BackendMessage[]> {
    const deadline = Date.now() + ms
    while (!done(this.messages)) {
      if (this.closed) throw new Error(`closed before the expected messages; got ${this.types()}`)
      if (Date.now() > deadline) throw new Error(`timed out; got ${this.types()}`)
      await new Promise<void>((r) => {
        this.waiters.add(r)
        setTimeout(r, 100)
      })
    }
    return this.messages
  }

  /** Resolves when the server closed the connection. */
  async closedByServer(ms = 10_000): Promise<BackendMessage[]> {
    const deadline = Date.now() + ms
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`still open; got ${this.types()}`)
      await new Promise<void>((r) => {
        this.waiters.add(r)
        setTimeout(r, 100)
      })
    }
    return this.messages
  }

  types(): string {
    return this.messages.map((m) => m.type).join('')
  }

  /** The fields (C, M, S...) of each ErrorResponse received. */
  errors(): Record<string, string>[] {
    return this.messages.filter((m) => m.type === 'E').map((m) => decodeErrorFields({type: 0x45, bytes: Buffer.concat([Buffer.alloc(5), m.body]), bodyStart: 5}))
  }

  destroy(): void {
    this.socket.destroy()
  }

  private wake(): void {
    const ws = [...this.waiters]
    this.waiters.clear()
    for (const w of ws) w()
  }
}

export const count = (type: string, n = 1) => (m: BackendMessage[]) => m.filter((x) => x.type === type).length >= n
