// Result-set rows, text and binary protocol: walk the cells of one row payload and rebuild it with
// some cells replaced. Pure. The caller decides what to replace (masking lives in the engine).
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_row.html
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html
import {BINARY_DATETIME_TYPES, BINARY_FIXED_WIDTH, BINARY_LENENC_TYPES} from './constants.js'
import {lenencInt} from './messages.js'

/**
 * What to put in a cell: a Buffer (a new value), `null` (SQL NULL) or `undefined` (keep it).
 * `value` is the cell's bytes (text form in the text protocol, the value bytes in the binary
 * protocol), or null for a NULL cell.
 */
export type CellRewrite = (index: number, value: Buffer | null, payload: Buffer, start: number, end: number) => Buffer | null | undefined

/** Thrown when a row does not parse with the column count / types given. */
export class RowShapeError extends Error {}

function lenencAt(p: Buffer, off: number): {len: number; head: number} | null {
  if (off >= p.length) throw new RowShapeError('row truncated')
  const first = p[off]
  if (first < 0xfb) return {len: first, head: 1}
  if (first === 0xfb) return null
  if (first === 0xfc) {
    if (off + 3 > p.length) throw new RowShapeError('row truncated')
    return {len: p.readUInt16LE(off + 1), head: 3}
  }
  if (first === 0xfd) {
    if (off + 4 > p.length) throw new RowShapeError('row truncated')
    return {len: p.readUIntLE(off + 1, 3), head: 4}
  }
  if (first === 0xfe) {
    if (off + 9 > p.length) throw new RowShapeError('row truncated')
    const v = p.readBigUInt64LE(off + 1)
    if (v > BigInt(p.length)) throw new RowShapeError('cell length exceeds the row')
    return {len: Number(v), head: 9}
  }
  throw new RowShapeError('invalid length prefix 0xff')
}

/** Rewrites a text-protocol row of `columns` cells. Returns the same Buffer when nothing changed. */
export function rewriteTextRow(payload: Buffer, columns: number, rewrite: CellRewrite): Buffer {
  let off = 0
  // Edits as parallel arrays, made on the first one: most rows of most results have none.
  let starts: number[] | undefined
  let ends: number[] | undefined
  let values: (Buffer | null)[] | undefined
  for (let i = 0; i < columns; i++) {
    const start = off
    // The common one-byte length inline; lenencAt for the rest (and for a truncated row).
    const first = off < payload.length ? payload[off] : 0xff
    const le = first < 0xfb ? undefined : lenencAt(payload, off)
    let value: Buffer | null = null
    if (le === null) off += 1
    else {
      const head = le ? le.head : 1
      const vEnd = off + head + (le ? le.len : first)
      if (vEnd > payload.length) throw new RowShapeError('cell exceeds the row')
      value = payload.subarray(off + head, vEnd)
      off = vEnd
    }
    const r = rewrite(i, value, payload, start, off)
    if (r !== undefined) {
      ;(starts ??= []).push(start)
      ;(ends ??= []).push(off)
      ;(values ??= []).push(r)
    }
  }
  if (off !== payload.length) throw new RowShapeError(`row has ${payload.length - off} bytes after its ${columns} cells`)
  if (!starts || !ends || !values) return payload
  // One allocation for the new row, its length prefixes written in place.
  let size = payload.length
  for (let k = 0; k < starts.length; k++) size += (values[k] === null ? 1 : lenencSize(values[k]!.length) + values[k]!.length) - (ends[k] - starts[k])
  const out = Buffer.allocUnsafe(size)
  let src = 0
  let dst = 0
  for (let k = 0; k < starts.length; k++) {
    dst += payload.copy(out, dst, src, starts[k])
    const v = values[k]
    if (v === null) out[dst++] = 0xfb
    else {
      dst = writeLenenc(out, dst, v.length)
      dst += v.copy(out, dst)
    }
    src = ends[k]
  }
  payload.copy(out, dst, src)
  return out
}

function lenencSize(n: number): number {
  return n < 0xfb ? 1 : n < 0x10000 ? 3 : n < 0x1000000 ? 4 : 9
}

/** `lenencInt(n)` written into `out` at `at`; returns the offset after it. */
function writeLenenc(out: Buffer, at: number, n: number): number {
  if (n < 0xfb) {
    out[at] = n
    return at + 1
  }
  const head = lenencInt(n)
  return at + head.copy(out, at)
}

/** Encodes a text-protocol row (tests and synthetic answers). */
export function encodeTextRow(values: (Buffer | string | null)[]): Buffer {
  return Buffer.concat(values.map((v) => (v === null ? Buffer.from([0xfb]) : Buffer.concat([lenencInt(Buffer.byteLength(v)), typeof v === 'string' ? Buffer.from(v) : v]))))
}

/**
 * Rewrites a binary-protocol row (0x00 header, NULL bitmap with offset 2, values by type).
 * A replacement Buffer is only valid for columns whose type is sent length-encoded; for other
 * types return null (the cell becomes NULL).
 */
export function rewriteBinaryRow(payload: Buffer, types: readonly number[], rewrite: CellRewrite): Buffer {
  const n = types.length
  const bitmapLen = Math.floor((n + 7 + 2) / 8)
  if (payload.length < 1 + bitmapLen || payload[0] !== 0x00) throw new RowShapeError('binary row header missing')
  const bitmap = payload.subarray(1, 1 + bitmapLen)
  let off = 1 + bitmapLen
  let edits: {i: number; start: number; end: number; value: Buffer | null}[] | undefined
  for (let i = 0; i < n; i++) {
    const bit = i + 2
    if (bitmap[bit >> 3] & (1 << (bit & 7))) continue
    const t = types[i]
    const start = off
    let value: Buffer
    if (BINARY_LENENC_TYPES.has(t)) {
      const le = lenencAt(payload, off)
      if (le === null) throw new RowShapeError('NULL marker inside a binary row')
      off += le.head + le.len
      value = payload.subarray(start + le.head, off)
    } else if (BINARY_DATETIME_TYPES.has(t)) {
      if (off >= payload.length) throw new RowShapeError('row truncated')
      off += 1 + payload[off]
      value = payload.subarray(start + 1, off)
    } else if (t in BINARY_FIXED_WIDTH) {
      off += BINARY_FIXED_WIDTH[t]
      value = payload.subarray(start, off)
    } else throw new RowShapeError(`unknown column type 0x${t.toString(16)}`)
    if (off > payload.length) throw new RowShapeError('cell exceeds the row')
    const r = rewrite(i, value, payload, start, off)
    if (r !== undefined) {
      if (r !== null && !BINARY_LENENC_TYPES.has(t)) throw new RowShapeError('only length-encoded cells can take a new value')
      ;(edits ??= []).push({i, start, end: off, value: r})
    }
  }
  if (off !== payload.length) throw new RowShapeError(`binary row has ${payload.length - off} bytes after its cells`)
  if (!edits) return payload
  const newBitmap = Buffer.from(bitmap)
  const parts: Buffer[] = [Buffer.from([0x00]), newBitmap]
  let src = 1 + bitmapLen
  for (const e of edits) {
    parts.push(payload.subarray(src, e.start))
    if (e.value === null) {
      const bit = e.i + 2
      newBitmap[bit >> 3] |= 1 << (bit & 7)
    } else parts.push(lenencInt(e.value.length), e.value)
    src = e.end
  }
  parts.push(payload.subarray(src))
  return Buffer.concat(parts)
}

/** A row with every cell NULL (what a row that does not parse becomes: fail closed). */
export function nullRow(columns: number, binary: boolean): Buffer {
  if (!binary) return Buffer.alloc(columns, 0xfb)
  const bitmapLen = Math.floor((columns + 7 + 2) / 8)
  const b = Buffer.alloc(1 + bitmapLen)
  for (let i = 0; i < columns; i++) b[1 + ((i + 2) >> 3)] |= 1 << ((i + 2) & 7)
  return b
}
