// Incremental framer for the PostgreSQL wire protocol: bytes in, whole messages out. Pure (no
// sockets). It checks every declared length against the maximum *before* buffering the body, so
// a hostile peer cannot make us allocate a huge buffer, and it is linear in the bytes pushed: a
// message that spans chunks is kept as a list of the chunks and joined once, when it is whole
// (not re-concatenated on every push). Types named in `stream` (CopyData) are not buffered at all
// above a size: they are passed on in pieces as they arrive. Types named by `coalesce` (the
// server's CopyData) come out as runs: whole messages of that type, adjacent in one chunk, in one
// frame, so a COPY TO of millions of rows costs a length check per row, not an object per row.
// https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
import {CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE} from './messages.js'

/** One framed message, or one piece of a streamed message. `type` is the wire letter's char code, or 0 for a startup-format message. */
export interface Frame {
  type: number
  /** The whole message including the type byte (if any) and the length word; for a streamed piece, see `piece`. */
  bytes: Buffer
  /** Offset of the body inside `bytes` (after type and length). */
  bodyStart: number
  /**
   * Only on the pieces of a streamed message: `first` holds the type byte, the length word and the
   * body's first bytes; `middle` and `last` hold raw body bytes that continue it (`bodyStart` 0).
   */
  piece?: 'first' | 'middle' | 'last'
  /**
   * Only on a run of a coalesced type (see `Framer.coalesce`): `bytes` holds this many whole
   * messages of `type`, back to back, each length-checked like any message. Absent: one message.
   */
  count?: number
}

export type FramerError = {kind: 'length'; declared: number; limit: number}

/** Chunks smaller than this are copied into a tail buffer of TAIL_BYTES instead of kept by reference. */
const SMALL_CHUNK = 4096
const TAIL_BYTES = 64 * 1024

/** PostgreSQL refuses a startup packet longer than this (MAX_STARTUP_PACKET_LENGTH in pqcomm.h). */
export const MAX_STARTUP_PACKET = 10_000

export interface FramerOptions {
  /** Largest startup-format packet; default (and at most) MAX_STARTUP_PACKET. */
  maxStartup?: number
  /**
   * Message types passed on in pieces instead of buffered: a message of one of these types whose
   * declared length is above `above` and that is not whole in the bytes at hand is emitted as it
   * arrives. Such a message may declare up to `max` bytes (instead of the framer's maximum).
   */
  stream?: {types: readonly number[]; above: number; max: number}
}

/**
 * `startup` mode reads messages without a type byte (StartupMessage, SSLRequest, CancelRequest...)
 * and switches itself to `regular` right after a StartupMessage, so that bytes behind it in the
 * same chunk are framed as the regular messages they are.
 */
export class Framer {
  private failed: FramerError | undefined
  /** Fewer than a header's bytes of the next message (at most 4), copied. */
  private head: Buffer | undefined
  /** The chunks of a message whose header is known but whose body is not complete. */
  private parts: Buffer[] = []
  private have = 0
  /** Total bytes of the message being collected in `parts` (0: none). */
  private need = 0
  /** Where small chunks of that message are copied together (see `collect`). */
  private tail: Buffer | undefined
  private tailLen = 0
  /** Body bytes still to pass on of a streamed message (0: none), and its type. */
  private streamLeft = 0
  private streamType = 0
  /** Types whose adjacent whole messages are framed as one run (see `coalesce`); -1: none. */
  private runType = -1
  private readonly maxStartup: number

  constructor(
    private mode: 'startup' | 'regular',
    private readonly maxBytes: number,
    private readonly opts: FramerOptions = {},
  ) {
    this.maxStartup = Math.min(opts.maxStartup ?? MAX_STARTUP_PACKET, maxBytes, MAX_STARTUP_PACKET)
  }

  /**
   * From now on, whole messages of `type` that are adjacent in one pushed chunk come out as one
   * frame with `count` (a run). For a stream whose reader handles that type as a run: the
   * PostgreSQL engine's CopyData from the server (one message per row of a COPY TO).
   */
  coalesce(type: number): void {
    this.runType = type
  }

  /** Bytes received and held, not yet framed. */
  get buffered(): number {
    return (this.head?.length ?? 0) + this.have
  }

  /** Takes any bytes kept so far and forgets them (used when a stream changes hands, e.g. TLS). */
  takeLeftover(): Buffer | undefined {
    this.sealTail()
    const held = this.head ? [this.head, ...this.parts] : this.parts
    this.head = undefined
    this.parts = []
    this.have = 0
    this.need = 0
    return held.length ? Buffer.concat(held) : undefined
  }

  /**
   * Feeds bytes and calls `onFrame` for each complete message (or streamed piece), in order.
   * Returns an error (and stops framing for good) when a declared length is out of bounds.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): FramerError | undefined {
    if (this.failed) return this.failed
    let buf = chunk
    if (this.streamLeft > 0) {
      const n = Math.min(this.streamLeft, buf.length)
      this.streamLeft -= n
      onFrame({type: this.streamType, bytes: buf.subarray(0, n), bodyStart: 0, piece: this.streamLeft > 0 ? 'middle' : 'last'})
      buf = buf.subarray(n)
    } else if (this.need > 0) {
      const missing = this.need - this.have
      if (buf.length < missing) {
        this.collect(buf)
        return undefined
      }
      this.collect(buf.subarray(0, missing))
      this.sealTail()
      const whole = Buffer.concat(this.parts, this.need)
      this.parts = []
      this.have = 0
      this.need = 0
      this.emit(whole, onFrame)
      buf = buf.subarray(missing)
    } else if (this.head) {
      // At most 4 bytes held: joining them to the chunk copies each chunk at most once.
      buf = Buffer.concat([this.head, buf])
      this.head = undefined
    }
    return this.frame(buf, onFrame)
  }

  /** Frames `buf` from its start; keeps what is left (a partial header, a partial message) for the next push. */
  private frame(buf: Buffer, onFrame: (frame: Frame) => void): FramerError | undefined {
    let off = 0
    const len = buf.length
    while (off < len) {
      const headLen = this.mode === 'regular' ? 1 : 0
      if (len - off < headLen + 4) {
        this.head = Buffer.from(buf.subarray(off))
        break
      }
      const type = headLen ? buf[off] : 0
      const declared = buf.readInt32BE(off + headLen)
      const streamed = this.opts.stream?.types.includes(type) === true && headLen === 1
      // The length word counts itself; a startup message also needs its 4-byte code.
      const min = headLen ? 4 : 8
      const limit = !headLen ? this.maxStartup : streamed ? Math.max(this.maxBytes, this.opts.stream!.max) : this.maxBytes
      if (declared < min || declared > limit) {
        this.failed = {kind: 'length', declared, limit}
        return this.failed
      }
      const total = headLen + declared
      if (len - off >= total) {
        if (type === this.runType && headLen === 1) {
          off = this.run(buf, off, off + total, limit, onFrame)
          continue
        }
        this.emit(buf.subarray(off, off + total), onFrame)
        off += total
        continue
      }
      const rest = buf.subarray(off)
      if (streamed && declared > this.opts.stream!.above) {
        this.streamType = type
        this.streamLeft = total - rest.length
        onFrame({type, bytes: rest, bodyStart: 5, piece: 'first'})
      } else {
        this.need = total
        this.collect(rest)
      }
      break
    }
    return undefined
  }

  /**
   * Emits the whole message at [start, end) of the coalesced type together with the whole
   * messages of the same type right behind it in `buf`; returns where the run ends. A message
   * whose length is out of bounds, of another type or not whole ends the run: the main loop then
   * frames it (and fails on a bad length) as usual.
   */
  private run(buf: Buffer, start: number, end: number, limit: number, onFrame: (frame: Frame) => void): number {
    const type = this.runType
    const len = buf.length
    let count = 1
    while (len - end >= 5 && buf[end] === type) {
      const declared = buf.readInt32BE(end + 1)
      if (declared < 4 || declared > limit || len - end - 1 < declared) break
      end += 1 + declared
      count++
    }
    const bytes = buf.subarray(start, end)
    onFrame(count === 1 ? {type, bytes, bodyStart: 5} : {type, bytes, bodyStart: 5, count})
    return end
  }

  /**
   * Keeps one more chunk of the message being collected. Small chunks are copied into a shared
   * tail buffer, so a peer sending one byte at a time costs bytes, not one Buffer object per byte.
   */
  private collect(chunk: Buffer): void {
    if (chunk.length >= SMALL_CHUNK) {
      this.sealTail()
      this.parts.push(chunk)
    } else {
      if (this.tail === undefined || this.tail.length - this.tailLen < chunk.length) {
        this.sealTail()
        this.tail = Buffer.allocUnsafe(Math.min(TAIL_BYTES, this.need - this.have))
      }
      chunk.copy(this.tail, this.tailLen)
      this.tailLen += chunk.length
    }
    this.have += chunk.length
  }

  private sealTail(): void {
    if (this.tail === undefined) return
    this.parts.push(this.tail.subarray(0, this.tailLen))
    this.tail = undefined
    this.tailLen = 0
  }

  /** One whole message; a StartupMessage ends the startup mode (what follows has a type byte). */
  private emit(bytes: Buffer, onFrame: (frame: Frame) => void): void {
    if (this.mode === 'regular') {
      onFrame({type: bytes[0], bytes, bodyStart: 5})
      return
    }
    const code = bytes.readInt32BE(4)
    if (code !== SSL_REQUEST_CODE && code !== GSSENC_REQUEST_CODE && code !== CANCEL_REQUEST_CODE) this.mode = 'regular'
    onFrame({type: 0, bytes, bodyStart: 4})
  }
}
