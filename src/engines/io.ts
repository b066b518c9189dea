// Stream plumbing shared by the engines: one pull reader, one output batcher, one drain wait.
//
// Reading only when the engine asks gives natural backpressure: bytes stay in the socket (and the
// relay's window stays closed) until the engine wants the next message. The reader frames with
// any codec's framer (PostgreSQL messages, MySQL packets) or hands raw chunks over (HTTP).
import type {Readable, Writable} from 'node:stream'

/** What a codec's framer offers: feed bytes, get whole messages, or a length error for good. */
export interface StreamFramer<F, E> {
  push(chunk: Buffer, emit: (item: F) => void): E | undefined
  /** Bytes received but not yet framed, handed over when the stream is wrapped (TLS). */
  takeLeftover?(): Buffer | undefined
}

/** Raw chunks, unframed (HTTP parses its own heads and bodies). */
export class ChunkFramer implements StreamFramer<Buffer, never> {
  push(chunk: Buffer, emit: (item: Buffer) => void): undefined {
    if (chunk.length) emit(chunk)
    return undefined
  }
}

export type Pulled<F, E> = {items: F[]} | {error: E} | {end: true}

/** At most this many items are framed per `next()`, so one read cannot grow the queue without bound. */
const MAX_BATCH = 4096

export class PullReader<F, E = never, Fr extends StreamFramer<F, E> = StreamFramer<F, E>> {
  private queue: F[] = []
  private failure: E | undefined
  private ended = false
  private waiter: (() => void) | undefined
  /** Bytes read from the stream so far. */
  bytesRead = 0
  /** The error that ended the stream, if it did not end cleanly. */
  streamError: Error | undefined
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

  constructor(
    readonly stream: Readable,
    readonly framer: Fr,
  ) {
    stream.on('readable', this.wake)
    stream.on('end', this.onEnd)
    stream.on('close', this.onEnd)
    stream.on('error', this.onError)
  }

  /** Every item available now (at least one), a framing error, or the end of the stream. */
  async next(): Promise<Pulled<F, E>> {
    for (;;) {
      if (this.queue.length) {
        const items = this.queue
        this.queue = []
        return {items}
      }
      if (this.failure !== undefined) return {error: this.failure}
      this.fill(MAX_BATCH)
      if (this.queue.length || this.failure !== undefined) continue
      if (this.isEnded) return {end: true}
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  /** One item at a time (handshakes, request/response protocols). */
  async one(): Promise<F | {error: E} | {end: true}> {
    for (;;) {
      const first = this.queue.shift()
      if (first !== undefined) return first
      if (this.failure !== undefined) return {error: this.failure}
      this.fill(1)
      if (this.queue.length || this.failure !== undefined) continue
      if (this.isEnded) return {end: true}
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  /** The next item, or null at the end: for framers that cannot fail (raw chunks). */
  async read(): Promise<F | null> {
    const r = await this.one()
    return isPulledEnd(r) || isPulledError(r) ? null : r
  }

  /** Puts an item back in front (a parser read past what it needed); empty chunks are dropped. */
  unshift(item: F): void {
    if (Buffer.isBuffer(item) && item.length === 0) return
    this.queue.unshift(item)
  }

  /** True when a whole item is already buffered (lets callers batch writes). */
  get hasBuffered(): boolean {
    return this.queue.length > 0
  }

  get isEnded(): boolean {
    return this.ended || this.stream.destroyed
  }

  takeLeftover(): Buffer | undefined {
    return this.framer.takeLeftover?.()
  }

  detach(): void {
    this.stream.off('readable', this.wake)
    this.stream.off('end', this.onEnd)
    this.stream.off('close', this.onEnd)
    this.stream.off('error', this.onError)
    this.wake()
  }

  private fill(atLeast: number): void {
    let chunk: Buffer | string | null
    while (this.failure === undefined && this.queue.length < atLeast && (chunk = this.stream.read() as Buffer | string | null) !== null) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      this.bytesRead += b.length
      this.failure = this.framer.push(b, (f) => this.queue.push(f))
    }
  }
}

// The items a reader yields (frames, packets, Buffers) never have an `error` or `end` key, so a
// key test tells them from the reader's own results without allocating (`read()` runs per chunk).
export function isPulledError<F, E>(r: F | {error: E} | {end: true}): r is {error: E} {
  return typeof r === 'object' && r !== null && 'error' in r
}

export function isPulledEnd<F, E>(r: F | {error: E} | {end: true}): r is {end: true} {
  return typeof r === 'object' && r !== null && 'end' in r
}

/**
 * Output batching towards one peer: adjacent slices of one input chunk are merged back into one
 * write. The open run is kept as offsets and becomes a Buffer view only when it ends, so a chunk
 * of a thousand DataRow/CopyData messages costs one view, not one per message.
 */
export class OutputBatch {
  private parts: Buffer[] = []
  private run: Buffer | undefined
  private runStart = 0
  private runEnd = 0
  /** Bytes pushed over the batch's life. */
  bytes = 0
  /** Bytes pushed and not yet flushed. */
  pending = 0

  push(b: Buffer): void {
    this.bytes += b.length
    this.pending += b.length
    if (this.run !== undefined && this.run.buffer === b.buffer && this.runEnd === b.byteOffset) {
      this.runEnd += b.length
      return
    }
    this.endRun()
    this.run = b
    this.runStart = b.byteOffset
    this.runEnd = b.byteOffset + b.length
  }

  private endRun(): void {
    const r = this.run
    if (r === undefined) return
    this.run = undefined
    this.parts.push(this.runEnd - this.runStart === r.length ? r : Buffer.from(r.buffer, this.runStart, this.runEnd - this.runStart))
  }

  /** Drops what is queued and not flushed: a response withheld because its audit record failed. */
  discard(): void {
    this.run = undefined
    this.parts = []
    this.bytes -= this.pending
    this.pending = 0
  }

  /** Writes everything; resolves when the destination can take more (backpressure). */
  async flush(dest: Writable): Promise<void> {
    this.endRun()
    const parts = this.parts
    this.parts = []
    this.pending = 0
    if (parts.length === 0 || dest.destroyed || dest.writableEnded) return
    let ok = true
    if (parts.length === 1) ok = dest.write(parts[0])
    else {
      dest.cork()
      for (const p of parts) ok = dest.write(p)
      dest.uncork()
    }
    if (!ok && !dest.destroyed) await waitDrain(dest)
  }
}

/**
 * Waits for a Writable to take more data: resolves on 'drain', or when the stream closes or fails
 * (the caller notices those itself), so an engine never hangs on a dead peer.
 */
export function waitDrain(dest: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      dest.off('drain', done)
      dest.off('close', done)
      dest.off('error', done)
      resolve()
    }
    dest.on('drain', done)
    dest.on('close', done)
    dest.on('error', done)
  })
}
