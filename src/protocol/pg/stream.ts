// Pull-based framed reading over a Readable. Not a codec (it touches a stream), but it holds no
// socket logic of its own: the engine hands it any Readable (net.Socket, TLSSocket, a relay stream).
// Reading only when asked gives natural backpressure: bytes stay in the socket until we want them.
import type {Readable} from 'node:stream'
import {Framer, type Frame, type FramerError} from './framer.js'

export type ReadResult = {frames: Frame[]} | {error: FramerError} | {end: true}

export class FrameReader {
  private queue: Frame[] = []
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
  private readonly onError = (err: Error) => {
    this.streamError ??= err
    this.onEnd()
  }
  /** The error that ended the stream, if it did not end cleanly. */
  streamError: Error | undefined

  constructor(
    private readonly stream: Readable,
    readonly framer: Framer,
  ) {
    stream.on('readable', this.wake)
    stream.on('end', this.onEnd)
    stream.on('close', this.onEnd)
    stream.on('error', this.onError)
  }

  /** Every complete frame available now (at least one), a framing error, or the end of the stream. */
  async next(): Promise<ReadResult> {
    for (;;) {
      if (this.queue.length) {
        const frames = this.queue
        this.queue = []
        return {frames}
      }
      if (this.failure) return {error: this.failure}
      let chunk: Buffer | null
      while (!this.failure && (chunk = this.stream.read() as Buffer | null) !== null) {
        this.failure = this.framer.push(chunk, (f) => this.queue.push(f))
        if (this.queue.length > 4096) break
      }
      if (this.queue.length || this.failure) continue
      if (this.ended || this.stream.destroyed) return {end: true}
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  /** One frame at a time (startup and authentication phases). */
  async one(): Promise<Frame | FramerError | undefined> {
    if (this.queue.length) return this.queue.shift()
    const r = await this.next()
    if ('end' in r) return undefined
    if ('error' in r) return r.error
    const [first, ...rest] = r.frames
    this.queue = rest
    return first
  }

  detach(): void {
    this.stream.off('readable', this.wake)
    this.stream.off('end', this.onEnd)
    this.stream.off('close', this.onEnd)
    this.stream.off('error', this.onError)
  }
}

export function isFramerError(x: Frame | FramerError | undefined): x is FramerError {
  return x !== undefined && 'kind' in x
}
