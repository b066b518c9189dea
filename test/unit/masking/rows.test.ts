// RowMasker's rebuilt rows, byte for byte, against a model of what each cell must become: random
// result shapes (masked columns of every replacement kind, detected text, types the detectors
// skip, binary jsonb, NULLs, cells around the 96-byte copy threshold) through one masker reused
// row after row, as a session uses it.
import {strict as assert} from 'node:assert'
import {prng} from '../../../src/gateway/dev-seed.js'
import {RowMasker, type ColumnInfo} from '../../../src/masking/result.js'
import {ALL_ENTITIES, type MaskCounts} from '../../../src/masking/types.js'
import {generate, oracle} from '../../helpers/pii-values.js'

const COLUMNS: ColumnInfo[] = [
  {typeOid: 25, format: 0},
  {typeOid: 1043, format: 0},
  {typeOid: 23, format: 0},
  {typeOid: 1114, format: 0},
  {typeOid: 114, format: 0},
  {typeOid: 3802, format: 1},
  {typeOid: 17, format: 1},
  {typeOid: 25, format: 0, maskKey: 'column:public.c.email'},
  {typeOid: 114, format: 0, maskKey: 'derived:x'},
  {typeOid: 3802, format: 1, maskKey: 'column:public.c.doc'},
  {typeOid: 23, format: 1, maskKey: 'column:public.c.n'},
]

function dataRow(cells: (Buffer | null)[]): Buffer {
  const size = 7 + cells.reduce((s, c) => s + 4 + (c?.length ?? 0), 0)
  const out = Buffer.alloc(size)
  out[0] = 0x44
  out.writeInt32BE(size - 1, 1)
  out.writeInt16BE(cells.length, 5)
  let off = 7
  for (const c of cells) {
    off = out.writeInt32BE(c ? c.length : -1, off)
    if (c) off += c.copy(out, off)
  }
  return out
}

/** What the client must receive for this cell of this column, and the counts it adds. */
function model(col: ColumnInfo, cell: Buffer | null, counts: MaskCounts): Buffer | null {
  if (cell === null) return null
  const add = (k: string, n = 1) => (counts[k] = (counts[k] ?? 0) + n)
  if (col.maskKey) {
    add(col.maskKey)
    if (col.typeOid === 114) return Buffer.from('"****"')
    if (col.typeOid === 3802) return Buffer.from(col.format === 1 ? '\x01"****"' : '"****"', 'latin1')
    if (col.typeOid === 25) return Buffer.from('****')
    return null
  }
  if ([23, 1114, 17].includes(col.typeOid)) return cell
  const prefix = col.typeOid === 3802 && col.format === 1 ? 1 : 0
  const found = oracle(cell.toString('utf8', prefix))
  if (!found) return cell
  for (const [e, n] of Object.entries(found.found)) add(`entity:${e}`, n)
  return Buffer.concat([cell.subarray(0, prefix), Buffer.from(found.text)])
}

describe('DataRow masking: rebuilt rows byte for byte', () => {
  it('matches the model over 20,000 random rows through one reused masker', () => {
    const r = prng(1515)
    for (let shape = 0; shape < 40; shape++) {
      const cols = Array.from({length: 1 + Math.floor(r() * 9)}, () => COLUMNS[Math.floor(r() * COLUMNS.length)])
      const counts: MaskCounts = {}
      const want: MaskCounts = {}
      const masker = new RowMasker(cols, ALL_ENTITIES, counts)
      for (let row = 0; row < 500; row++) {
        const cells = cols.map((c) => {
          if (r() < 0.15) return null
          const roll = r()
          // Plain filler of 0-200 bytes crosses the 96-byte copy threshold both ways.
          const text = roll < 0.4 ? generate(r) : 'x'.repeat(Math.floor(r() * 200))
          return c.typeOid === 3802 && c.format === 1 ? Buffer.concat([Buffer.from([1]), Buffer.from(text)]) : Buffer.from(text)
        })
        const msg = dataRow(cells)
        const copy = Buffer.from(msg)
        const expected = dataRow(cells.map((cell, i) => model(cols[i], cell, want)))
        const out = masker.maskDataRow(msg)
        assert.ok(out.equals(expected), `shape ${shape} row ${row}: ${JSON.stringify(cells.map((c) => c?.toString('latin1')))}`)
        assert.ok(msg.equals(copy), 'the input row is not written to')
        if (expected.equals(msg)) assert.equal(out, msg, 'an unchanged row is the same buffer')
      }
      assert.deepEqual(counts, want)
    }
  })

  it('a row after a masked one carries nothing of it', () => {
    const m = new RowMasker([{typeOid: 25, format: 0}, {typeOid: 25, format: 0}], ALL_ENTITIES, {})
    const first = m.maskDataRow(dataRow([Buffer.from('mail a@b.io'), Buffer.from('x'.repeat(40))]))
    assert.equal(first.toString('utf8', 11, 11 + first.readInt32BE(7)), 'mail ****@****')
    const plain = dataRow([Buffer.from('hello'), Buffer.from('world')])
    assert.equal(m.maskDataRow(plain), plain)
  })
})
