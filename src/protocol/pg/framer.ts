// Incremental framer for the PostgreSQL wire protocol: bytes in, whole messages out. Pure (no
// sockets). It keeps leftover bytes between pushes and checks every declared length against the
// maximum *before* buffering the body, so a hostile peer cannot make us allocate a huge buffer.
// https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS

/** One framed message. `type` is the wire letter's char code, or 0 for a startup-format message. */
export interface Frame {
  type: number
  /** The whole message including the type byte (if any) and the length word. */
  bytes: Buffer
  /** Offset of the body inside `bytes` (after type and length). */
  bodyStart: number
}

export type FramerError = {kind: 'length'; declared: number; limit: number}

export type FramerEvent = {frame: Frame} | {error: FramerError}

/**
 * `startup` mode reads messages without a type byte (StartupMessage, SSLRequest, CancelRequest...);
 * call `setMode('regular')` once the startup exchange is over.
 */
export class Framer {
  private pending: Buffer | undefined
  private failed: FramerError | undefined

  constructor(
    private mode: 'startup' | 'regular',
    private readonly maxBytes: number,
  ) {}

  setMode(mode: 'startup' | 'regular'): void {
    this.mode = mode
  }

  get buffered(): number {
    return this.pending?.length ?? 0
  }

  /** Takes any bytes kept so far and forgets them (used when a stream changes hands, e.g. TLS). */
  takeLeftover(): Buffer | undefined {
    const p = this.pending
    this.pending = undefined
    return p
  }

  /**
   * Feeds bytes and calls `onFrame` for each complete message, in order. Returns an error (and
   * stops framing for good) when a declared length is out of bounds.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): FramerError | undefined {
    if (this.failed) return this.failed
    let buf = chunk
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }
    let off = 0
    const len = buf.length
    while (off < len) {
      const head = this.mode === 'regular' ? 1 : 0
      if (len - off < head + 4) break
      const declared = buf.readInt32BE(off + head)
      // The length word counts itself; a startup message also needs its 4-byte code.
      const min = this.mode === 'regular' ? 4 : 8
      if (declared < min || declared > this.maxBytes) {
        this.failed = {kind: 'length', declared, limit: this.maxBytes}
        return this.failed
      }
      const total = head + declared
      if (len - off < total) break
      onFrame({type: head ? buf[off] : 0, bytes: buf.subarray(off, off + total), bodyStart: head + 4})
      off += total
    }
    if (off < len) this.pending = off === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(off))
    return undefined
  }
}
