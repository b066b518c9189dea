import assert from 'node:assert/strict'
import {canonicalize} from '../../../src/audit/canonical.js'
import {parseCsv, csvLine} from '../../../src/audit/csv.js'

describe('audit canonical JSON (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units and drops whitespace', () => {
    assert.equal(canonicalize({b: 1, a: [true, null, 'x'], c: {z: 1, y: {}}}), '{"a":[true,null,"x"],"b":1,"c":{"y":{},"z":1}}')
    // RFC 8785 §3.2.3 sorting example: code-unit order puts "\r" < "1" < "\u0080" < "ö" < "€" < "😀" < "ﬂ"
    const obj = {'\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis'}
    const text = canonicalize(obj)
    const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) => text.indexOf(JSON.stringify(k) + ':'))
    assert.ok(order.every((pos, i) => pos >= 0 && (i === 0 || pos > order[i - 1])), text)
  })

  it('serializes numbers in ECMAScript form (RFC 8785 appendix B vectors)', () => {
    const vectors: [number, string][] = [
      [0, '0'], [-0, '0'], [1e21, '1e+21'], [1e-7, '1e-7'], [123456789012345680000, '123456789012345680000'],
      [4.50, '4.5'], [2e-3, '0.002'], [0.000001, '0.000001'], [1.7976931348623157e308, '1.7976931348623157e+308'],
      [-1.7976931348623157e308, '-1.7976931348623157e+308'], [9007199254740992, '9007199254740992'], [5e-324, '5e-324'],
    ]
    for (const [n, s] of vectors) assert.equal(canonicalize(n), s, `number ${n}`)
    assert.throws(() => canonicalize(Number.NaN), /not a JSON number/)
    assert.throws(() => canonicalize(Infinity), /not a JSON number/)
  })

  it('escapes strings like JSON.stringify and refuses lone surrogates', () => {
    assert.equal(canonicalize('a"b\\c\n\u0001\u001f/é€'), '"a\\"b\\\\c\\n\\u0001\\u001f/é€"')
    assert.equal(canonicalize('😀'), '"😀"')
    assert.throws(() => canonicalize('x\ud800y'), /lone surrogate/)
  })

  it('omits undefined members, refuses non-plain objects', () => {
    assert.equal(canonicalize({a: undefined, b: 2}), '{"b":2}')
    assert.throws(() => canonicalize({d: new Date(0)}), /Date/)
    assert.throws(() => canonicalize({f: () => 1}), /function/)
  })
})

describe('audit CSV', () => {
  it('quotes commas, quotes and newlines and parses back', () => {
    const cells = ['plain', 'a,b', 'say "hi"', 'two\nlines', 'cr\r\nlf', '', ' lead']
    const text = csvLine(cells) + csvLine(['x', 1, true, null, undefined, 'y', 'z'])
    assert.deepEqual(parseCsv(text), [cells, ['x', '1', 'true', '', '', 'y', 'z']])
  })
})
