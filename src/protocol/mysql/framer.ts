// Incremental framer for the MySQL client/server protocol: bytes in, whole logical packets out.
// Pure (no sockets). A physical packet is a 3-byte little-endian length, a 1-byte sequence id and
// the payload; a payload of 0xFFFFFF bytes continues in the next physical packet. The framer
// checks each declared length against the maximum *before* buffering it, so a peer cannot make
// us allocate more than the limit.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html
import {MAX_PHYSICAL} from './constants.js'

export interface Packet {
  /** Sequence id of the first physical packet. */
  seq: number
  /** Sequence id of the last physical packet (differs from `seq` only for payloads >= 16 MiB). */
  lastSeq: number
  payload: Buffer
  /** The exact wire bytes when the packet was one physical packet (forwarded as is when unchanged). */
  raw?: Buffer
}

export type FramerError = {kind: 'length'; declared: number; limit: number}

export class PacketFramer {
  private pending: Buffer | undefined
  private parts: Buffer[] = []
  private partsLength = 0
  private firstSeq = 0
  private failed: FramerError | undefined

  constructor(private readonly maxPayload: number) {}

  get buffered(): number {
    return (this.pending?.length ?? 0) + this.partsLength
  }

  /** Takes the bytes not yet framed (used when the stream changes hands, e.g. to TLS). */
  takeLeftover(): Buffer | undefined {
    const p = this.pending
    this.pending = undefined
    return p
  }

  /** Feeds bytes; calls `onPacket` for each complete logical packet. Returns an error, for good, on an oversized one. */
  push(chunk: Buffer, onPacket: (p: Packet) => void): FramerError | undefined {
    if (this.failed) return this.failed
    let buf = chunk
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }
    let off = 0
    const len = buf.length
    while (len - off >= 4) {
      const declared = buf.readUIntLE(off, 3)
      if (this.partsLength + declared > this.maxPayload) {
        this.failed = {kind: 'length', declared: this.partsLength + declared, limit: this.maxPayload}
        return this.failed
      }
      if (len - off < 4 + declared) break
      const seq = buf[off + 3]
      const payload = buf.subarray(off + 4, off + 4 + declared)
      if (declared === MAX_PHYSICAL) {
        if (this.parts.length === 0) this.firstSeq = seq
        this.parts.push(Buffer.from(payload))
        this.partsLength += declared
      } else if (this.parts.length) {
        this.parts.push(payload)
        const whole = Buffer.concat(this.parts)
        onPacket({seq: this.firstSeq, lastSeq: seq, payload: whole})
        this.parts = []
        this.partsLength = 0
      } else {
        onPacket({seq, lastSeq: seq, payload, raw: buf.subarray(off, off + 4 + declared)})
      }
      off += 4 + declared
    }
    if (off < len) this.pending = off === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(off))
    return undefined
  }
}

/**
 * Encodes a logical payload as one or more physical packets starting at `seq`. Returns the bytes
 * and the sequence id that follows.
 */
export function encodePacket(payload: Buffer, seq: number): {bytes: Buffer; nextSeq: number} {
  if (payload.length < MAX_PHYSICAL) {
    const out = Buffer.allocUnsafe(4 + payload.length)
    out.writeUIntLE(payload.length, 0, 3)
    out[3] = seq & 0xff
    payload.copy(out, 4)
    return {bytes: out, nextSeq: (seq + 1) & 0xff}
  }
  const parts: Buffer[] = []
  let off = 0
  let s = seq
  for (;;) {
    const n = Math.min(MAX_PHYSICAL, payload.length - off)
    const head = Buffer.allocUnsafe(4)
    head.writeUIntLE(n, 0, 3)
    head[3] = s & 0xff
    parts.push(head, payload.subarray(off, off + n))
    s = (s + 1) & 0xff
    off += n
    if (n < MAX_PHYSICAL) break
  }
  return {bytes: Buffer.concat(parts), nextSeq: s}
}
