// What the session recording keeps of a PostgreSQL exchange: one line per message, as the client
// saw it (after masking and refusal). Rows are shown for the first RECORDED_ROWS_PER_RESULT of
// each result only, cells cut to a bounded length; the rest is counted by the statement's result.
import type {Frame} from '../../protocol/pg/framer.js'
import {asFrame, B, decodeCommandTag, decodeErrorFields, decodeReadyForQuery, type ClientMessage, type FieldDescription} from '../../protocol/pg/messages.js'

/** Rows per result set kept in the session recording (the rest is counted, not stored). */
export const RECORDED_ROWS_PER_RESULT = 20
const MAX_RECORDED_CELL = 256

export function summarizeClient(m: ClientMessage): string {
  switch (m.kind) {
    case 'Query':
      return `Query ${m.sql}`
    case 'Parse':
      return `Parse ${m.name ? m.name + ' ' : ''}${m.sql}`
    case 'Bind':
      return `Bind ${m.portal}/${m.statement}`
    case 'Execute':
      return `Execute ${m.portal}`
    case 'Describe':
    case 'Close':
      return `${m.kind} ${m.target} ${m.name}`
    default:
      return m.kind
  }
}

export function summarizeServer(f: Frame): string {
  switch (f.type) {
    case B.CommandComplete:
      return `CommandComplete ${decodeCommandTag(f)}`
    case B.ReadyForQuery:
      return `ReadyForQuery ${decodeReadyForQuery(f)}`
    default:
      return `Message ${String.fromCharCode(f.type)}`
  }
}

/** A DataRow as the client got it (masked). */
export function summarizeRow(row: Buffer): string {
  return `DataRow ${JSON.stringify(dataRowCells(row))}`
}

export function summarizeRowDescription(fields: FieldDescription[]): string {
  return `RowDescription ${fields.map((x) => x.name).join(',')}`
}

/** An ErrorResponse as the client got it (a refusal, or the server's error). */
export function summarizeError(bytes: Buffer): string {
  return `ErrorResponse ${decodeErrorFields(asFrame(bytes)).M ?? ''}`
}

/** The cells of a DataRow as text for the recording: NULL as null, binary cells as hex, long cells cut. */
function dataRowCells(row: Buffer): Array<string | null> {
  const cells: Array<string | null> = []
  if (row.length < 7) return cells
  const n = row.readUInt16BE(5)
  let at = 7
  for (let i = 0; i < n && at + 4 <= row.length; i++) {
    const len = row.readInt32BE(at)
    at += 4
    if (len < 0) {
      cells.push(null)
      continue
    }
    const cell = row.subarray(at, Math.min(at + len, row.length))
    at += len
    const text = cell.toString('utf8')
    const printable = !/[\x00-\x08\x0e-\x1f]/.test(text)
    const shown = printable ? text : '\\x' + cell.toString('hex')
    cells.push(shown.length > MAX_RECORDED_CELL ? shown.slice(0, MAX_RECORDED_CELL) + '…' : shown)
  }
  return cells
}
