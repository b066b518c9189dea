// rewriteTextRow rebuilds a row in one buffer with its length prefixes written in place: every
// prefix size (1, 3 and 4 bytes, cells of 0-250, 251-65535 and 65536+ bytes, before and after),
// NULL in and out, against encodeTextRow of the expected cells.
import {strict as assert} from 'node:assert'
import {prng} from '../../../../src/gateway/dev-seed.js'
import {encodeTextRow, rewriteTextRow, RowShapeError} from '../../../../src/protocol/mysql/rows.js'

describe('mysql text rows: rewrite byte for byte', () => {
  it('matches encodeTextRow of the rewritten cells over 3,000 random rows', () => {
    const r = prng(3306)
    const sizes = [0, 1, 4, 250, 251, 252, 300, 65535, 65536, 70000]
    const cell = (): Buffer | null => (r() < 0.15 ? null : Buffer.alloc(r() < 0.7 ? Math.floor(r() * 60) : sizes[Math.floor(r() * sizes.length)], 97 + Math.floor(r() * 26)))
    for (let row = 0; row < 3000; row++) {
      const cells = Array.from({length: 1 + Math.floor(r() * 8)}, cell)
      const news = cells.map(() => (r() < 0.5 ? undefined : cell()))
      const payload = encodeTextRow(cells)
      const copy = Buffer.from(payload)
      const seen: (Buffer | null)[] = []
      const out = rewriteTextRow(payload, cells.length, (i, value) => {
        seen.push(value)
        return news[i]
      })
      assert.deepEqual(seen, cells, 'each cell is handed over as it is')
      const expected = encodeTextRow(cells.map((c, i) => (news[i] === undefined ? c : news[i]!)))
      assert.ok(out.equals(expected), `row ${row}`)
      assert.ok(payload.equals(copy), 'the input row is not written to')
      if (news.every((n) => n === undefined)) assert.equal(out, payload)
    }
  })

  it('a truncated length prefix or cell is a RowShapeError', () => {
    const row = encodeTextRow(['a', Buffer.alloc(300, 98)])
    for (const cut of [1, 2, 3, 4, 100, row.length - 1]) assert.throws(() => rewriteTextRow(row.subarray(0, cut), 2, () => undefined), RowShapeError, `cut at ${cut}`)
  })
})
