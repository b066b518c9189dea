// A small, strict DER (ITU-T X.690) reader and writer: enough ASN.1 for RFC 3161 timestamp
// requests, responses and tokens (CMS SignedData, RFC 5652). Definite lengths only, single-byte
// tags only, lengths checked against the bytes that are there before anything is sliced; any
// malformed input is a DerError, never an out-of-range read.

export class DerError extends Error {
  override readonly name = 'DerError'
}

/** One TLV: `tag` is the identifier octet; the value is buf[valueStart, end). */
export interface Node {
  tag: number
  buf: Buffer
  start: number
  valueStart: number
  end: number
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  GENERALIZED_TIME: 0x18,
} as const

/** Context-specific tag [n], constructed (EXPLICIT or IMPLICIT over a constructed type). */
export function ctx(n: number): number {
  return 0xa0 | n
}

/** Reads the TLV at `pos`, which must end by `limit`. */
export function readNode(buf: Buffer, pos = 0, limit = buf.length): Node {
  if (pos + 2 > limit) throw new DerError(`truncated DER at offset ${pos}`)
  const tag = buf[pos]
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte DER tag at offset ${pos} is not supported`)
  let len = buf[pos + 1]
  let valueStart = pos + 2
  if (len === 0x80) throw new DerError(`indefinite length at offset ${pos} is not DER`)
  if (len > 0x80) {
    const n = len & 0x7f
    if (n > 4) throw new DerError(`DER length of ${n} bytes at offset ${pos} is too long`)
    if (valueStart + n > limit) throw new DerError(`truncated DER length at offset ${pos}`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + buf[valueStart + i]
    valueStart += n
  }
  const end = valueStart + len
  if (end > limit) throw new DerError(`DER value at offset ${pos} declares ${len} bytes; only ${limit - valueStart} are there`)
  return {tag, buf, start: pos, valueStart, end}
}

/** Parses a whole buffer as exactly one TLV. */
export function parseDer(buf: Buffer): Node {
  const n = readNode(buf, 0, buf.length)
  if (n.end !== buf.length) throw new DerError(`${buf.length - n.end} bytes after the DER value`)
  return n
}

export function value(n: Node): Buffer {
  return n.buf.subarray(n.valueStart, n.end)
}

/** The whole TLV, header included (what signatures and hashes are computed over). */
export function raw(n: Node): Buffer {
  return n.buf.subarray(n.start, n.end)
}

export function children(n: Node): Node[] {
  if ((n.tag & 0x20) === 0) throw new DerError(`DER tag 0x${n.tag.toString(16)} is not constructed`)
  const out: Node[] = []
  let pos = n.valueStart
  while (pos < n.end) {
    const c = readNode(n.buf, pos, n.end)
    out.push(c)
    pos = c.end
  }
  return out
}

/** Checks the tag and returns the node. */
export function expect(n: Node | undefined, tag: number, what: string): Node {
  if (!n) throw new DerError(`${what} is missing`)
  if (n.tag !== tag) throw new DerError(`${what} has DER tag 0x${n.tag.toString(16)}, expected 0x${tag.toString(16)}`)
  return n
}

export function readOid(n: Node): string {
  expect(n, TAG.OID, 'object identifier')
  const b = value(n)
  if (b.length === 0) throw new DerError('empty object identifier')
  const parts: number[] = []
  let v = 0
  for (let i = 0; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f)
    if (v > Number.MAX_SAFE_INTEGER) throw new DerError('object identifier arc too large')
    if ((b[i] & 0x80) === 0) {
      parts.push(v)
      v = 0
    } else if (i === b.length - 1) throw new DerError('truncated object identifier')
  }
  const first = parts[0] < 40 ? 0 : parts[0] < 80 ? 1 : 2
  return [first, parts[0] - first * 40, ...parts.slice(1)].join('.')
}

/** An INTEGER as a bigint (two's complement). */
export function readInt(n: Node): bigint {
  expect(n, TAG.INTEGER, 'integer')
  const b = value(n)
  if (b.length === 0) throw new DerError('empty integer')
  let v = 0n
  for (const x of b) v = (v << 8n) | BigInt(x)
  if (b[0] & 0x80) v -= 1n << BigInt(b.length * 8)
  return v
}

/** GeneralizedTime (YYYYMMDDHHMMSS[.f...]Z) as an ISO 8601 string. */
export function readGeneralizedTime(n: Node): string {
  expect(n, TAG.GENERALIZED_TIME, 'GeneralizedTime')
  const s = value(n).toString('latin1')
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/.exec(s)
  if (!m) throw new DerError(`GeneralizedTime ${JSON.stringify(s.slice(0, 40))} is not UTC (YYYYMMDDHHMMSS[.f]Z)`)
  const ms = m[7] ? m[7].padEnd(3, '0').slice(0, 3) : '000'
  const iso = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${ms}Z`
  if (Number.isNaN(Date.parse(iso))) throw new DerError(`GeneralizedTime ${s} is not a valid time`)
  return iso
}

// ---------------------------------------------------------------------------------------------
// Writing.

function lengthBytes(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len])
  const bytes: number[] = []
  for (let l = len; l > 0; l = Math.floor(l / 256)) bytes.unshift(l & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents)
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body])
}

export function seq(...items: Buffer[]): Buffer {
  return tlv(TAG.SEQUENCE, ...items)
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number)
  const out: number[] = []
  const push = (v: number) => {
    const bytes = [v & 0x7f]
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift(0x80 | (v & 0x7f))
    out.push(...bytes)
  }
  push(arcs[0] * 40 + arcs[1])
  for (const a of arcs.slice(2)) push(a)
  return tlv(TAG.OID, Buffer.from(out))
}

/** A non-negative INTEGER from its big-endian magnitude. */
export function uint(magnitude: Buffer): Buffer {
  let b = magnitude
  while (b.length > 1 && b[0] === 0 && (b[1] & 0x80) === 0) b = b.subarray(1)
  if (b.length === 0) b = Buffer.from([0])
  if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b])
  return tlv(TAG.INTEGER, b)
}

export function octets(b: Buffer): Buffer {
  return tlv(TAG.OCTET_STRING, b)
}

export function bool(v: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0]))
}

export function nul(): Buffer {
  return tlv(TAG.NULL)
}
