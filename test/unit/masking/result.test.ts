import {strict as assert} from 'node:assert'
import {CopyMasker, RowMasker} from '../../../src/masking/result.js'
import {ALL_ENTITIES, type MaskCounts} from '../../../src/masking/types.js'

function dataRow(cells: (string | Buffer | null)[]): Buffer {
  const parts: Buffer[] = []
  const n = Buffer.alloc(2)
  n.writeInt16BE(cells.length)
  parts.push(n)
  for (const c of cells) {
    const len = Buffer.alloc(4)
    if (c === null) {
      len.writeInt32BE(-1)
      parts.push(len)
    } else {
      const b = typeof c === 'string' ? Buffer.from(c) : c
      len.writeInt32BE(b.length)
      parts.push(len, b)
    }
  }
  const body = Buffer.concat(parts)
  const head = Buffer.alloc(5)
  head[0] = 0x44
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

function cells(msg: Buffer): (string | null)[] {
  assert.equal(msg.readInt32BE(1), msg.length - 1, 'length word')
  const n = msg.readInt16BE(5)
  const out: (string | null)[] = []
  let off = 7
  for (let i = 0; i < n; i++) {
    const len = msg.readInt32BE(off)
    off += 4
    out.push(len < 0 ? null : msg.toString('utf8', off, off + len))
    off += Math.max(0, len)
  }
  assert.equal(off, msg.length)
  return out
}

describe('DataRow masking', () => {
  it('replaces masked columns with correct lengths and counts them', () => {
    const counts: MaskCounts = {}
    const m = new RowMasker([{typeOid: 23, format: 0}, {typeOid: 25, format: 0, maskKey: 'column:public.c.email'}, {typeOid: 114, format: 0, maskKey: 'derived:x'}, {typeOid: 23, format: 1, maskKey: 'column:public.c.n'}], [], counts)
    const out = m.maskDataRow(dataRow(['1', 'alice@example.com', '{"a":1}', Buffer.from([0, 0, 0, 5])]))
    assert.deepEqual(cells(out), ['1', '****', '"****"', null])
    assert.deepEqual(counts, {'column:public.c.email': 1, 'derived:x': 1, 'column:public.c.n': 1})
  })

  it('returns the very same buffer when nothing changes, and keeps NULLs', () => {
    const m = new RowMasker([{typeOid: 25, format: 0}, {typeOid: 25, format: 0}], ALL_ENTITIES, {})
    const row = dataRow(['hello', null])
    assert.equal(m.maskDataRow(row), row)
  })

  it('runs detectors on text cells and only replaces the match', () => {
    const counts: MaskCounts = {}
    const m = new RowMasker([{typeOid: 25, format: 0}, {typeOid: 1114, format: 0}], ALL_ENTITIES, counts)
    const out = cells(m.maskDataRow(dataRow(['mail bob@x.org now', '2024-01-01 10:00:00'])))
    assert.deepEqual(out, ['mail ****@**** now', '2024-01-01 10:00:00'])
    assert.equal(counts['entity:email'], 1)
  })

  it('replaces a row that does not parse with NULLs (fail closed)', () => {
    const m = new RowMasker([{typeOid: 25, format: 0, maskKey: 'k'}], [], {})
    const bad = dataRow(['abc'])
    bad.writeInt32BE(99, 7) // cell length beyond the message
    assert.deepEqual(cells(m.maskDataRow(bad)), [null])
  })

  it('throughput figure (no assertion on time)', function () {
    const m = new RowMasker([{typeOid: 23, format: 0}, {typeOid: 25, format: 0, maskKey: 'k'}, {typeOid: 25, format: 0}, {typeOid: 1043, format: 0}], ALL_ENTITIES, {})
    const rows = Array.from({length: 2000}, (_, i) => dataRow([String(i), `user${i}@example.com`, `some note number ${i} about an order that shipped`, i % 10 === 0 ? 'contact +1 415 555 2671' : 'plain text value']))
    const bytes = rows.reduce((s, r) => s + r.length, 0)
    const t0 = process.hrtime.bigint()
    let total = 0
    for (let k = 0; k < 50; k++) for (const r of rows) total += m.maskDataRow(r).length
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    console.log(`      masking throughput: ${((bytes * 50) / secs / 1e6).toFixed(0)} MB/s (column mask + all detectors)`)
    const pass = new RowMasker([{typeOid: 25, format: 0}], [], {})
    assert.equal(pass.active, false)
    assert.ok(total > 0)
  })
})

describe('COPY masking', () => {
  it('masks text and csv rows by position and with detectors', () => {
    const counts: MaskCounts = {}
    const t = new CopyMasker({format: 'text', delimiter: '\t', maskKeys: [undefined, 'column:c.email'], entities: ['card'], counts})
    assert.equal(t.maskPayload(Buffer.from('1\talice@x.org\tcard 4111111111111111\n')).toString(), '1\t****\tcard ************1111\n')
    assert.equal(t.maskPayload(Buffer.from('2\t\\N\tnone\n')).toString(), '2\t\\N\tnone\n')
    const c = new CopyMasker({format: 'csv', delimiter: ',', maskKeys: [undefined, 'k'], entities: [], counts})
    assert.equal(c.maskPayload(Buffer.from('1,"a,b@x.org",z\n')).toString(), '1,****,z\n')
  })

  it('masks binary COPY tuples by turning fields into NULL', () => {
    const sig = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)])
    const tuple = Buffer.concat([Buffer.from([0, 2]), Buffer.from([0, 0, 0, 1]), Buffer.from('7'), Buffer.from([0, 0, 0, 3]), Buffer.from('abc')])
    const m = new CopyMasker({format: 'binary', delimiter: '\t', maskKeys: [undefined, 'k'], entities: [], counts: {}})
    const out = m.maskPayload(Buffer.concat([sig, tuple]))
    assert.deepEqual(out.subarray(19), Buffer.concat([Buffer.from([0, 2]), Buffer.from([0, 0, 0, 1]), Buffer.from('7'), Buffer.from([0xff, 0xff, 0xff, 0xff])]))
  })
})
