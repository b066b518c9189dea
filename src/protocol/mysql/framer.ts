// Incremental framer for the MySQL client/server protocol: bytes in, whole logical packets out.
// Pure (no sockets). A physical packet is a 3-byte little-endian length, a 1-byte sequence id and
// the payload; a payload of 0xFFFFFF bytes continues in the next physical packet. The framer
// checks each declared length against the maximum *before* buffering it, so a peer cannot make
// us allocate more than the limit; and it is linear: a packet that arrives in many small pieces
// is copied into one buffer as they come, never re-joined piece by piece.
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

/** A declared length above the limit: `seq` is the sequence id of the physical packet that declared it. */
export type FramerError = {kind: 'length'; declared: number; limit: number; seq: number}

/** First allocation for a physical packet that spans pieces; it doubles up to the packet's size. */
const ASSEMBLY_START = 64 * 1024

export class PacketFramer {
  /** Header bytes of the next packet when fewer than 4 have arrived. */
  private readonly head = Buffer.alloc(4)
  private headLen = 0
  /** A physical packet spanning pieces, copied together as it arrives: `asmNeed` bytes, `asmLen` so far. */
  private asm: Buffer | undefined
  private asmLen = 0
  private asmNeed = 0
  /** Continuation packets of a logical packet of 16 MiB or more, until its last piece. */
  private parts: Buffer[] = []
  private partsLength = 0
  private firstSeq = 0
  private failed: FramerError | undefined
  /**
   * Bytes copied to join pieces over the framer's life. A physical packet that spans pieces is
   * copied into one buffer that doubles as it fills, and a logical packet of 16 MiB or more is
   * joined once, so this stays linear in the input however small the pieces are (tests check it).
   */
  copied = 0

  constructor(private readonly maxPayload: number) {}

  /** Bytes held: header bytes, the packet being assembled, and the parts of an unfinished logical packet. */
  get buffered(): number {
    return this.headLen + (this.asm?.length ?? 0) + this.partsLength
  }

  /** Takes the bytes not yet framed (used when the stream changes hands, e.g. to TLS). */
  takeLeftover(): Buffer | undefined {
    let left: Buffer | undefined
    if (this.asm) left = Buffer.from(this.asm.subarray(0, this.asmLen))
    else if (this.headLen) left = Buffer.from(this.head.subarray(0, this.headLen))
    this.asm = undefined
    this.asmLen = 0
    this.headLen = 0
    return left
  }

  /** Feeds bytes; calls `onPacket` for each complete logical packet. Returns an error, for good, on an oversized one. */
  push(chunk: Buffer, onPacket: (p: Packet) => void): FramerError | undefined {
    if (this.failed) return this.failed
    let off = 0
    const len = chunk.length
    for (;;) {
      if (this.asm) {
        off = this.assemble(chunk, off)
        if (this.asmLen < this.asmNeed) return undefined
        const raw = this.asm.subarray(0, this.asmNeed)
        this.asm = undefined
        this.deliver(raw, onPacket)
        continue
      }
      if (this.headLen > 0) {
        const k = Math.min(4 - this.headLen, len - off)
        chunk.copy(this.head, this.headLen, off, off + k)
        this.headLen += k
        off += k
        if (this.headLen < 4) return undefined
        this.headLen = 0
        const declared = this.head.readUIntLE(0, 3)
        if (this.tooLong(declared, this.head[3])) return this.failed
        this.head.copy(this.startAssembly(declared), 0)
        this.asmLen = 4
        continue
      }
      const left = len - off
      if (left === 0) return undefined
      if (left < 4) {
        chunk.copy(this.head, 0, off, len)
        this.headLen = left
        return undefined
      }
      const declared = chunk.readUIntLE(off, 3)
      if (this.tooLong(declared, chunk[off + 3])) return this.failed
      if (left >= 4 + declared) {
        // The whole physical packet is in this piece: a view, no copy.
        this.deliver(chunk.subarray(off, off + 4 + declared), onPacket)
        off += 4 + declared
        continue
      }
      this.startAssembly(declared)
    }
  }

  /** Checks a declared length (plus what a continued packet already holds) against the limit, before buffering. */
  private tooLong(declared: number, seq: number): boolean {
    if (this.partsLength + declared <= this.maxPayload) return false
    this.failed = {kind: 'length', declared: this.partsLength + declared, limit: this.maxPayload, seq}
    this.asm = undefined
    this.asmLen = 0
    this.parts = []
    this.partsLength = 0
    return true
  }

  /** A physical packet of `declared` payload bytes spans pieces: its assembly buffer. */
  private startAssembly(declared: number): Buffer {
    this.asmNeed = 4 + declared
    this.asmLen = 0
    return (this.asm = Buffer.allocUnsafe(Math.min(this.asmNeed, ASSEMBLY_START)))
  }

  /** Copies what `chunk` holds of the packet being assembled; returns the new offset in `chunk`. */
  private assemble(chunk: Buffer, off: number): number {
    const k = Math.min(this.asmNeed - this.asmLen, chunk.length - off)
    let asm = this.asm as Buffer
    if (this.asmLen + k > asm.length) {
      // Double, or go straight to the whole packet when the next doubling would pass it: the
      // copies made by growing then add up to less than the packet itself.
      let cap = Math.max(this.asmLen + k, asm.length * 2)
      if (cap * 2 > this.asmNeed) cap = this.asmNeed
      const grown = Buffer.allocUnsafe(cap)
      asm.copy(grown, 0, 0, this.asmLen)
      this.copied += this.asmLen
      this.asm = asm = grown
    }
    chunk.copy(asm, this.asmLen, off, off + k)
    this.asmLen += k
    this.copied += k
    return off + k
  }

  /** One whole physical packet: a logical packet, or a part of one when its payload is 0xFFFFFF bytes. */
  private deliver(raw: Buffer, onPacket: (p: Packet) => void): void {
    const seq = raw[3]
    const payload = raw.subarray(4)
    if (payload.length === MAX_PHYSICAL) {
      if (this.parts.length === 0) this.firstSeq = seq
      this.parts.push(payload)
      this.partsLength += payload.length
    } else if (this.parts.length) {
      this.parts.push(payload)
      const whole = Buffer.concat(this.parts, this.partsLength + payload.length)
      this.copied += whole.length
      this.parts = []
      this.partsLength = 0
      onPacket({seq: this.firstSeq, lastSeq: seq, payload: whole})
    } else onPacket({seq, lastSeq: seq, payload, raw})
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
