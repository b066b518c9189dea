// The detectors' byte prefilter (`candidates`) must never skip a value its detector would mask.
// The oracle is every enabled detector run on the decoded text with no prefilter at all (the
// detectors as they were before the prefilter, digit floors included); generated values mix
// the detectors' own shapes, near misses, separators, unicode and invalid UTF-8.
import {strict as assert} from 'node:assert'
import {candidates, entityBits, maskValue, mightContainPii} from '../../../src/masking/detectors.js'
import {prng as rng} from '../../../src/gateway/dev-seed.js'
import {generate, oracle} from '../../helpers/pii-values.js'
import {RowMasker} from '../../../src/masking/result.js'
import {ALL_ENTITIES, type MaskCounts, type MaskEntity} from '../../../src/masking/types.js'

function dataRow(cell: Buffer): Buffer {
  const out = Buffer.alloc(11 + cell.length)
  out[0] = 0x44
  out.writeInt32BE(out.length - 1, 1)
  out.writeInt16BE(1, 5)
  out.writeInt32BE(cell.length, 7)
  cell.copy(out, 11)
  return out
}

/** What the DataRow path sends for one text cell (the row's length words checked). */
function viaDataRow(cell: Buffer, entities: readonly MaskEntity[] = ALL_ENTITIES): {bytes: Buffer; counts: MaskCounts} {
  const counts: MaskCounts = {}
  const out = new RowMasker([{typeOid: 25, format: 0}], entities, counts).maskDataRow(dataRow(cell))
  assert.equal(out.readInt32BE(1), out.length - 1)
  assert.equal(out.readInt32BE(7), out.length - 11)
  return {bytes: out.subarray(11), counts}
}

function expectedCounts(found: Partial<Record<MaskEntity, number>> | undefined): MaskCounts {
  const c: MaskCounts = {}
  for (const [e, n] of Object.entries(found ?? {})) c[`entity:${e}`] = n
  return c
}

describe('detector prefilter (candidates)', () => {
  it('masks exactly what the unfiltered detectors mask, over 40,000 generated values', () => {
    const r = rng(15)
    const seen = new Map<string, number>()
    for (let i = 0; i < 40_000; i++) {
      const s = generate(r)
      const want = oracle(s)
      for (const e of Object.keys(want?.found ?? {})) seen.set(e, (seen.get(e) ?? 0) + 1)
      assert.deepEqual(maskValue(s, new Set(ALL_ENTITIES)), want, JSON.stringify(s))
      // A cell's bytes decode to well-formed text (a lone surrogate the edits made becomes U+FFFD).
      const bytes = Buffer.from(s, 'utf8')
      const text = bytes.toString('utf8')
      const wantText = oracle(text)
      if (wantText) assert.ok(candidates(bytes, 0, bytes.length) !== 0, JSON.stringify(s))
      const row = viaDataRow(bytes)
      assert.equal(row.bytes.toString('utf8'), wantText ? wantText.text : text, JSON.stringify(s))
      assert.deepEqual(row.counts, expectedCounts(wantText?.found), JSON.stringify(s))
    }
    // The generator reaches every detector, or this test proves nothing.
    for (const e of ALL_ENTITIES) assert.ok((seen.get(e) ?? 0) >= 100, `${e} found in only ${seen.get(e) ?? 0} values`)
  })

  it('each detector alone: the prefilter keeps what that detector masks', () => {
    const r = rng(16)
    for (const entity of ALL_ENTITIES) {
      const set = new Set<MaskEntity>([entity])
      for (let i = 0; i < 4_000; i++) {
        const s = generate(r)
        const want = oracle(s, entityBits(set))
        assert.deepEqual(maskValue(s, set), want, `${entity}: ${JSON.stringify(s)}`)
        const text = Buffer.from(s, 'utf8').toString('utf8')
        const wantText = oracle(text, entityBits(set))
        assert.equal(viaDataRow(Buffer.from(text, 'utf8'), [entity]).bytes.toString('utf8'), wantText ? wantText.text : text, `${entity}: ${JSON.stringify(s)}`)
      }
    }
  })

  it('invalid UTF-8 around an entity: the cell is scanned as its decoded text is', () => {
    const r = rng(17)
    const junk = [0x80, 0xbf, 0xc3, 0xe2, 0x82, 0xf0, 0x9f, 0xff, 0xfe, 0xed, 0xa0]
    for (let i = 0; i < 10_000; i++) {
      const parts: Buffer[] = []
      const n = 1 + Math.floor(r() * 5)
      for (let k = 0; k < n; k++) {
        parts.push(r() < 0.5 ? Buffer.from(generate(r), 'utf8') : Buffer.from(Array.from({length: 1 + Math.floor(r() * 3)}, () => junk[Math.floor(r() * junk.length)])))
      }
      const cell = Buffer.concat(parts)
      const text = cell.toString('utf8')
      const want = oracle(text)
      const row = viaDataRow(cell)
      // Unchanged cells go out byte for byte (not re-encoded); changed ones as the masked text.
      if (want) assert.equal(row.bytes.toString('utf8'), want.text, JSON.stringify(text))
      else assert.ok(row.bytes.equals(cell), JSON.stringify(text))
    }
  })

  it('regressions: an ASIA key and a 6-byte email alone in a cell were skipped by the old prefilter', () => {
    for (const [cell, masked] of [
      ['ASIABCDEFGHJKLMNOPQR', '[api_key]'],
      ['key ASIABCDEFGHJKLMNOPQR', 'key [api_key]'],
      ['a@b.io', '****@****'],
      ['x@y.abc', '****@****'],
    ]) {
      assert.equal(viaDataRow(Buffer.from(cell)).bytes.toString(), masked, cell)
      assert.ok(mightContainPii(Buffer.from(cell), 0, cell.length), cell)
    }
  })

  it('keeps the IBAN detector\'s floor of 4 digits in the value', () => {
    // Valid IBANs (mod 97) with 3 and 4 digits: the detector has always skipped the first.
    const iban = (cc: string, bban: string) => {
      const num = (bban + cc + '00').replace(/[A-Z]/g, (ch) => String(ch.charCodeAt(0) - 55))
      let rem = 0
      for (const d of num) rem = (rem * 10 + Number(d)) % 97
      return cc + String(98 - rem).padStart(2, '0') + bban
    }
    const four = iban('GB', 'WESTABCDEFGH12')
    const three = iban('GB', 'WESTABCDEFGHI1')
    assert.equal(four.replace(/\D/g, '').length, 4)
    assert.equal(three.replace(/\D/g, '').length, 3)
    assert.deepEqual(maskValue(`pay ${four} now`, new Set(['iban']))?.found, {iban: 1})
    assert.equal(viaDataRow(Buffer.from(`pay ${four} now`)).counts['entity:iban'], 1)
    assert.equal(maskValue(`pay ${three} now`, new Set(['iban'])), undefined)
    assert.equal(oracle(`pay ${three} now`), undefined)
  })

  it('keeps the phone detector\'s floor of 8 digits', () => {
    assert.deepEqual(maskValue('call +49 1234 56 now', new Set(['phone']))?.found, {phone: 1})
    assert.equal(viaDataRow(Buffer.from('call +49 1234 56 now')).counts['entity:phone'], 1)
    assert.equal(maskValue('call +49 1234 5 now', new Set(['phone'])), undefined)
    assert.equal(oracle('call +49 1234 5 now'), undefined)
  })

  it('long values, around the 4,096-character scratch buffer: the end of the value is scanned', () => {
    // 3-byte characters fill the scratch buffer's worst case; an email at the very end must be seen.
    for (const fill of [4089, 4090, 4091, 4096, 4097, 4100, 4200, 20_000]) {
      const text = '中'.repeat(fill) + 'a@b.io'
      assert.equal(maskValue(text, new Set(['email']))?.text, '中'.repeat(fill) + '****@****', `${fill}`)
      assert.equal(maskValue('x'.repeat(fill) + ' 4111 1111 1111 1111', new Set(['card']))?.found.card, 1, `${fill}`)
    }
    // A short value after a long one reads none of the long one's bytes.
    assert.equal(maskValue('hello world', new Set(ALL_ENTITIES)), undefined)
  })

  it('reads only the bytes of its cell', () => {
    // A shape that only completes with the neighbouring bytes is not this cell's.
    const card = entityBits(new Set(['card']))
    const b = Buffer.from('xxxxeyJxx 4111 1111 1111 1')
    assert.equal(candidates(b, 0, 6), 0)
    assert.notEqual(candidates(b, 0, 7), 0)
    assert.equal(candidates(b, 9, b.length - 1) & card, 0)
    assert.notEqual(candidates(b, 9, b.length) & card, 0)
  })
})
