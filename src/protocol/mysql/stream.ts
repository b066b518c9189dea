// Pull-based packet reading over a Readable (net.Socket, TLSSocket, a relay stream). Not a codec,
// but it holds no socket logic of its own. Reading only when asked gives natural backpressure:
// bytes stay in the socket until the engine wants the next packet.
import type {Readable} from 'node:stream'
import {PacketFramer, type FramerError, type Packet} from './framer.js'

export type PacketResult = Packet | {error: FramerError} | {end: true}

export class PacketReader {
  private queue: Packet[] = []
  private failure: FramerError | undefined
  private ended = false
  private waiter: (() => void) | undefined
  private readonly wake = () => {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }
  private readonly onEnd = () => {
    this.ended = true
    this.wake()
  }

  constructor(
    private readonly stream: Readable,
    readonly framer: PacketFramer,
  ) {
    stream.on('readable', this.wake)
    stream.on('end', this.onEnd)
    stream.on('close', this.onEnd)
    stream.on('error', this.onEnd)
  }

  /** True when a whole packet is already buffered (lets callers batch writes). */
  get hasBuffered(): boolean {
    return this.queue.length > 0
  }

  /** The next packet, a framing error, or the end of the stream. */
  async next(): Promise<PacketResult> {
    for (;;) {
      const p = this.queue.shift()
      if (p) return p
      if (this.failure) return {error: this.failure}
      let chunk: Buffer | null
      while (!this.failure && this.queue.length === 0 && (chunk = this.stream.read() as Buffer | null) !== null) {
        this.failure = this.framer.push(chunk, (f) => this.queue.push(f))
      }
      if (this.queue.length || this.failure) continue
      if (this.ended || this.stream.destroyed) return {end: true}
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  /** Bytes received but not yet framed, handed over when the stream is wrapped (TLS). */
  takeLeftover(): Buffer | undefined {
    return this.framer.takeLeftover()
  }

  get isEnded(): boolean {
    return this.ended || this.stream.destroyed
  }

  detach(): void {
    this.stream.off('readable', this.wake)
    this.stream.off('end', this.onEnd)
    this.stream.off('close', this.onEnd)
    this.stream.off('error', this.onEnd)
    this.wake()
  }
}

export function isPacket(r: PacketResult): r is Packet {
  return 'payload' in r
}
