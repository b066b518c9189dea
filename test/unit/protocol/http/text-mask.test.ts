// Line-by-line masking of text bodies: exact bytes when nothing is found, bounded lines.
import {strict as assert} from 'node:assert'
import {LineMasker} from '../../../../src/protocol/http/text-mask.js'
import {maskValue} from '../../../../src/masking/detectors.js'

const entities = new Set(['email'] as const)
const masker = (max?: number) => new LineMasker((l) => maskValue(l, entities)?.text, max)

describe('text masking', () => {
  it('masks entities split across chunks at every byte', () => {
    const text = 'hello\nmail bob@example.com now\nbye'
    for (let cut = 1; cut < text.length; cut++) {
      const m = masker()
      const out = Buffer.concat([...m.push(Buffer.from(text.slice(0, cut))), ...m.push(Buffer.from(text.slice(cut))), ...m.end()]).toString()
      assert.equal(out, 'hello\nmail ****@**** now\nbye', `cut ${cut}`)
    }
  })
  it('keeps non-UTF-8 bytes of untouched lines exactly', () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x0a])
    const m = masker()
    assert.deepEqual(Buffer.concat([...m.push(bytes), ...m.end()]), bytes)
  })
  it('cuts over-long lines on a character boundary', () => {
    const m = masker(10)
    const out = m.push(Buffer.from('ééééééééé'))
    assert.ok(out.length >= 1)
    for (const b of out) assert.ok(!b.toString('utf8').includes('\ufffd'))
    assert.equal(Buffer.concat([...out, ...m.end()]).toString('utf8'), 'ééééééééé')
  })
})
