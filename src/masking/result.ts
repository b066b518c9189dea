// Applies a mask to result data: DataRow messages (text and binary formats) and COPY TO rows
// (text, csv, binary). Pure functions over buffers. Unchanged rows come back as the same Buffer
// (no copy); changed rows are rebuilt with correct lengths.
// https://www.postgresql.org/docs/current/protocol-message-formats.html (DataRow, CopyData)
// https://www.postgresql.org/docs/current/sql-copy.html (file formats)
import {candidates, entityBits, maskCandidates, maskValue} from './detectors.js'
import {addCount, type MaskCounts, type MaskEntity} from './types.js'
import {maskWholeRow, type RowShape} from './whole-row.js'

const TEXT_TYPES = new Set([25, 1043, 1042, 19, 18, 705, 142])
const JSON_TYPE = 114
const JSONB_TYPE = 3802
/** Types whose text form cannot carry the entities we detect (saves decoding them). */
const NO_DETECT_TYPES = new Set([16, 21, 23, 26, 700, 701, 1082, 1083, 1114, 1184, 1186, 1266, 2950, 17])

const STARS = Buffer.from('****')
const JSON_STARS = Buffer.from('"****"')
const JSONB_STARS = Buffer.from('\x01"****"', 'latin1')

export interface ColumnInfo {
  typeOid: number
  format: number
  /** Report key when the whole column is masked (origin or taint), else undefined. */
  maskKey?: string
  /**
   * A whole-row value (text format, UTF-8) whose structure is known: only its masked fields are
   * masked. A cell that does not have this shape is masked whole, under `maskKey`.
   */
  row?: RowShape
}

const UTF8 = new TextDecoder('utf-8', {fatal: true})

/** Masks DataRow messages of one result set. */
export class RowMasker {
  private readonly entities: ReadonlySet<MaskEntity>
  /** `candidates` bits of the entities' detectors. */
  private readonly want: number
  private readonly detect: boolean
  readonly active: boolean
  // Per column, decided once per result set rather than per cell: the replacement of a masked
  // column, and where the detectors read a cell (SKIP: a type that cannot hold an entity).
  private readonly replacement: (Buffer | null)[]
  private readonly scanFrom: Int8Array
  // The current row's edits, reused from row to row (maskDataRow is synchronous): the offset of
  // the cell's length word, the cell's end and its new bytes (null: NULL).
  private readonly editAt: number[] = []
  private readonly editEnd: number[] = []
  private readonly editValue: (Buffer | null)[] = []

  constructor(
    private readonly columns: ColumnInfo[],
    entities: readonly MaskEntity[],
    private readonly counts: MaskCounts,
  ) {
    this.entities = new Set(entities)
    this.want = entityBits(this.entities)
    this.detect = this.entities.size > 0
    this.active = this.detect || columns.some((c) => c.maskKey)
    this.replacement = columns.map((c) => (c.maskKey ? maskedCell(c) : null))
    this.scanFrom = Int8Array.from(columns, scanOffset)
  }

  /**
   * Takes a whole DataRow message (type byte included) and returns it, or a rewritten copy.
   * A row whose shape does not parse is replaced by one with every cell NULL (fail closed).
   */
  maskDataRow(msg: Buffer): Buffer {
    if (!this.active) return msg
    const end = msg.length
    if (end < 7) return msg
    const n = msg.readInt16BE(5)
    let off = 7
    let edits = 0
    for (let i = 0; i < n; i++) {
      if (off + 4 > end) return nullRow(n)
      const len = readInt32(msg, off)
      const start = off + 4
      const cellEnd = len < 0 ? start : start + len
      if (cellEnd > end) return nullRow(n)
      off = cellEnd
      if (len < 0) continue
      const col = this.columns[i]
      if (col?.row) {
        const r = wholeRowCell(msg, start, cellEnd, col.row)
        if (r) {
          // The known shape held: only its masked fields changed; detectors still run over the rest.
          for (const k of r.maskedKeys) addCount(this.counts, k)
          const found = this.detect ? maskValue(r.text, this.entities) : undefined
          for (const [entity, count] of Object.entries(found?.found ?? {})) addCount(this.counts, `entity:${entity}`, count)
          const text = found?.text ?? (r.maskedKeys.length ? r.text : undefined)
          if (text !== undefined) edits = this.edit(edits, start - 4, cellEnd, Buffer.from(text, 'utf8'))
          continue
        }
      }
      if (col?.maskKey) {
        edits = this.edit(edits, start - 4, cellEnd, this.replacement[i])
        addCount(this.counts, col.maskKey)
        continue
      }
      if (!this.detect) continue
      // A column beyond the RowDescription's count is read as text (type 0).
      const from = i < this.scanFrom.length ? this.scanFrom[i] : 0
      if (from === SKIP) continue
      const textStart = start + from
      const bits = candidates(msg, textStart, cellEnd) & this.want
      if (bits === 0) continue
      const found = maskCandidates(msg.toString('utf8', textStart, cellEnd), bits)
      if (!found) continue
      for (const [entity, count] of Object.entries(found.found)) addCount(this.counts, `entity:${entity}`, count)
      const prefix = textStart > start ? msg.subarray(start, textStart) : undefined
      const body = Buffer.from(found.text, 'utf8')
      edits = this.edit(edits, start - 4, cellEnd, prefix ? Buffer.concat([prefix, body]) : body)
    }
    if (edits === 0) return msg
    return this.rebuild(msg, edits)
  }

  private edit(k: number, at: number, end: number, value: Buffer | null): number {
    this.editAt[k] = at
    this.editEnd[k] = end
    this.editValue[k] = value
    return k + 1
  }

  /** A copy of `msg` with its first `edits` edits applied and its length word set. */
  private rebuild(msg: Buffer, edits: number): Buffer {
    let size = msg.length
    for (let k = 0; k < edits; k++) size += 4 + (this.editValue[k]?.length ?? 0) - (this.editEnd[k] - this.editAt[k])
    const out = Buffer.allocUnsafe(size)
    let src = 0
    let dst = 0
    for (let k = 0; k < edits; k++) {
      dst = copyBytes(msg, src, this.editAt[k], out, dst)
      const value = this.editValue[k]
      dst = writeInt32(out, dst, value ? value.length : -1)
      if (value) dst = copyBytes(value, 0, value.length, out, dst)
      src = this.editEnd[k]
      this.editValue[k] = null // the row's values are not kept past it
    }
    copyBytes(msg, src, msg.length, out, dst)
    writeInt32(out, 1, size - 1)
    return out
  }
}

/** Where the detectors start reading a cell of this column, or SKIP. */
const SKIP = -1
function scanOffset(col: ColumnInfo): number {
  if (col.format === 1) {
    // Binary: only text and JSON are text; binary jsonb starts with its version byte.
    if (col.typeOid === JSONB_TYPE) return 1
    return TEXT_TYPES.has(col.typeOid) || col.typeOid === JSON_TYPE ? 0 : SKIP
  }
  return NO_DETECT_TYPES.has(col.typeOid) ? SKIP : 0
}

/**
 * `src[start, end)` into `dst` at `at`; returns the offset after it. Most pieces of a masked row
 * are short (a length word, "****", a few cells), where Buffer#copy's call costs more than the loop.
 */
function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  if (end - start > 96) return at + src.copy(dst, at, start, end)
  for (let i = start; i < end; i++) dst[at++] = src[i]
  return at
}

/** Buffer#readInt32BE without its bounds check (the caller checked) and its call. */
function readInt32(b: Buffer, at: number): number {
  return (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]
}

function writeInt32(out: Buffer, at: number, v: number): number {
  out[at] = v >>> 24
  out[at + 1] = v >>> 16
  out[at + 2] = v >>> 8
  out[at + 3] = v
  return at + 4
}

/** A whole-row cell with its masked fields masked; undefined when it is not valid UTF-8 of the expected shape. */
function wholeRowCell(msg: Buffer, start: number, end: number, shape: RowShape): ReturnType<typeof maskWholeRow> {
  let text: string
  try {
    text = UTF8.decode(msg.subarray(start, end))
  } catch {
    return undefined
  }
  return maskWholeRow(text, shape)
}

function maskedCell(col: ColumnInfo): Buffer | null {
  if (col.typeOid === JSON_TYPE) return JSON_STARS
  if (col.typeOid === JSONB_TYPE) return col.format === 1 ? JSONB_STARS : JSON_STARS
  if (TEXT_TYPES.has(col.typeOid)) return STARS
  // Other types (numbers, dates, arrays, binary values): NULL never breaks a client's parser.
  return null
}

function nullRow(n: number): Buffer {
  const out = Buffer.alloc(7 + 4 * Math.max(0, n), 0xff)
  out[0] = 0x44
  out.writeInt32BE(out.length - 1, 1)
  out.writeInt16BE(Math.max(0, n), 5)
  return out
}

// ---------------------------------------------------------------------------------------------
// COPY TO STDOUT

export interface CopyMaskOptions {
  format: 'text' | 'csv' | 'binary'
  delimiter: string
  /** Report key per column position, for masked columns. */
  maskKeys: (string | undefined)[]
  entities: readonly MaskEntity[]
  counts: MaskCounts
}

const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

/** Masks the rows of COPY ... TO STDOUT, one CopyData payload at a time (PostgreSQL sends whole rows). */
export class CopyMasker {
  private readonly entities: ReadonlySet<MaskEntity>
  private readonly want: number
  readonly active: boolean

  constructor(private readonly o: CopyMaskOptions) {
    this.entities = new Set(o.entities)
    this.want = entityBits(this.entities)
    this.active = this.entities.size > 0 || o.maskKeys.some(Boolean)
  }

  /** Returns the payload (bytes after the CopyData header), masked. */
  maskPayload(payload: Buffer): Buffer {
    if (!this.active) return payload
    if (this.o.format === 'binary') return this.maskBinary(payload)
    const text = payload.toString('utf8')
    const lines = text.split('\n')
    let changed = false
    for (let l = 0; l < lines.length; l++) {
      if (lines[l] === '' || lines[l] === '\\.') continue
      const fields = this.o.format === 'csv' ? splitCsv(lines[l], this.o.delimiter) : lines[l].split(this.o.delimiter)
      let rowChanged = false
      for (let i = 0; i < fields.length; i++) {
        const f = fields[i]
        const key = this.o.maskKeys[i]
        const isNull = this.o.format === 'csv' ? f === '' : f === '\\N'
        if (isNull) continue
        if (key) {
          fields[i] = '****'
          addCount(this.o.counts, key)
          rowChanged = true
          continue
        }
        if (this.entities.size === 0) continue
        const found = maskValue(f, this.entities)
        if (!found) continue
        for (const [entity, count] of Object.entries(found.found)) addCount(this.o.counts, `entity:${entity}`, count)
        fields[i] = found.text
        rowChanged = true
      }
      if (rowChanged) {
        lines[l] = fields.join(this.o.delimiter)
        changed = true
      }
    }
    return changed ? Buffer.from(lines.join('\n'), 'utf8') : payload
  }

  private maskBinary(payload: Buffer): Buffer {
    let off = 0
    const parts: Buffer[] = []
    if (payload.subarray(0, 11).equals(BINARY_SIGNATURE)) {
      if (payload.length < 19) return payload
      const ext = payload.readInt32BE(15)
      off = 19 + Math.max(0, ext)
      parts.push(payload.subarray(0, off))
    }
    let changed = false
    while (off + 2 <= payload.length) {
      const n = payload.readInt16BE(off)
      if (n < 0) {
        parts.push(payload.subarray(off, off + 2))
        off += 2
        continue
      }
      const rowStart = off
      off += 2
      const row: Buffer[] = [payload.subarray(rowStart, off)]
      for (let i = 0; i < n; i++) {
        if (off + 4 > payload.length) return Buffer.alloc(0) // unparsable: drop rather than leak
        const len = payload.readInt32BE(off)
        const end = len < 0 ? off + 4 : off + 4 + len
        if (end > payload.length) return Buffer.alloc(0)
        let nullIt = false
        const key = this.o.maskKeys[i]
        if (len >= 0 && key) {
          nullIt = true
          addCount(this.o.counts, key)
        } else if (len >= 0 && this.want !== 0) {
          const bits = candidates(payload, off + 4, end) & this.want
          const found = bits === 0 ? undefined : maskCandidates(payload.toString('utf8', off + 4, end), bits)
          if (found) {
            nullIt = true
            for (const [entity, count] of Object.entries(found.found)) addCount(this.o.counts, `entity:${entity}`, count)
          }
        }
        if (nullIt) {
          row.push(Buffer.from([0xff, 0xff, 0xff, 0xff]))
          changed = true
        } else row.push(payload.subarray(off, end))
        off = end
      }
      parts.push(...row)
    }
    if (off < payload.length) parts.push(payload.subarray(off))
    return changed ? Buffer.concat(parts) : payload
  }
}

/** Splits one CSV line into raw fields (quotes kept), honouring quoted delimiters. */
function splitCsv(line: string, delim: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]
    if (ch === '"') quoted = !quoted
    if (ch === delim && !quoted) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  out.push(cur)
  return out
}
