import assert from 'node:assert/strict'
import {hash} from 'node:crypto'
import {canonicalize, canonicalizeWith} from '../../../src/audit/canonical.js'
import {events, PAYLOAD_FIELDS, type AuditEvent} from '../../../src/audit/events.js'
import {encodeEvent} from '../../../src/audit/payloads.js'
import {alice} from './_helpers.js'
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

  it('encodes every UTF-16 code unit as JSON.stringify does, plain strings included, and refuses each lone surrogate', () => {
    for (let c = 0; c <= 0xffff; c++) {
      const s = `a${String.fromCharCode(c)}b`
      if (c >= 0xd800 && c <= 0xdfff) assert.throws(() => canonicalize(s), /lone surrogate/, `U+${c.toString(16)}`)
      else assert.equal(canonicalize(s), JSON.stringify(s), `U+${c.toString(16)}`)
    }
    assert.equal(canonicalize('\ud83d\ude00 and "\\"'), JSON.stringify('\ud83d\ude00 and "\\"'))
  })

  it('omits undefined members, refuses non-plain objects', () => {
    assert.equal(canonicalize({a: undefined, b: 2}), '{"b":2}')
    assert.throws(() => canonicalize({d: new Date(0)}), /Date/)
    assert.throws(() => canonicalize({f: () => 1}), /function/)
  })
})

describe('audit event encoding without copies (canonicalizeWith, encodeEvent)', () => {
  it('gives the bytes of canonicalize of the merged object, the data members omitted as a copy without them', () => {
    class Data {
      x = 1
      text = 'dropped'
    }
    const cases: [Record<string, unknown>, Record<string, unknown>, string[] | undefined][] = [
      [{kind: 'k', time: 't', data: {b: 1, a: 'x', text: 'SELECT 1'}}, {v: 2, seq: 3, prev_hash: 'p', payload_hash: 'h'}, ['text']],
      [{kind: 'k', data: {text: undefined, z: null}}, {v: 2, payload_hash: undefined}, ['text']],
      [{v: 1, seq: 99, payload_hash: 'old', data: {}}, {v: 2, seq: 3, payload_hash: undefined}, undefined],
      [{'\u20ac': 1, '1': 2, '10': 3, '9': 4, data: {nested: {b: [1, {d: 2, c: undefined}], a: -0}}}, {seq: 1}, ['a', 'b']],
      [{data: new Data()}, {v: 2}, ['text']],
      [{}, {}, undefined],
    ]
    for (const [obj, extra, omit] of cases) {
      const data = obj.data as Record<string, unknown> | undefined
      const copy = omit && data ? Object.fromEntries(Object.entries({...data}).filter(([k]) => !omit.includes(k))) : data
      const merged = data === undefined ? {...obj, ...extra} : {...obj, data: copy, ...extra}
      assert.equal(canonicalizeWith(obj, extra, omit), canonicalize(merged), JSON.stringify([obj, extra, omit]))
    }
    assert.throws(() => canonicalizeWith({data: new Data()}, {}), /Data object/, 'a data object kept whole is still refused when not plain')
    assert.throws(() => canonicalizeWith({a: 'x\ud800'}, {}), /lone surrogate/)
  })

  it('encodeEvent: the hashed body is the event without its payload fields, with v, seq, prev_hash and the payload hash', () => {
    const all: AuditEvent[] = [
      events.statement({session: 's1', identity: alice, connection: 'c', statementId: 'st', text: 'SELECT "é" FROM t', decision: 'allow'}),
      events.statementResult({session: 's1', identity: alice, connection: 'c', statementId: 'st', rows: 1, bytes: 2, durationMs: 3}),
      events.statementResult({session: 's1', identity: alice, connection: 'c', statementId: 'st', rows: 0, bytes: 0, durationMs: 3, error: 'boom'}),
      events.sessionStart({session: 's1', identity: alice, connection: 'c', agent: 'a'}),
    ]
    for (const e of all) {
      const enc = encodeEvent(e, 7, 'ab'.repeat(32))
      const names = PAYLOAD_FIELDS[e.kind] ?? []
      const data = Object.fromEntries(Object.entries(e.data).filter(([k]) => enc.payload === undefined || !names.includes(k)))
      const payloadHash = enc.payload === undefined ? undefined : hash('sha256', enc.payload, 'hex')
      assert.equal(enc.body, canonicalize({...e, data, v: 2, seq: 7, prev_hash: 'ab'.repeat(32), payload_hash: payloadHash}), e.kind)
      if (enc.payload !== undefined) {
        const p = JSON.parse(enc.payload) as {nonce: string; fields: Record<string, unknown>}
        assert.equal(canonicalize(p), enc.payload)
        assert.deepEqual(p.fields, Object.fromEntries(names.filter((n) => e.data[n] !== undefined).map((n) => [n, e.data[n]])))
        assert.match(p.nonce, /^[0-9a-f]{32}$/)
      }
      assert.equal(enc.hash, hash('sha256', enc.body, 'hex'))
      assert.deepEqual(enc.leaf, hash('sha256', Buffer.concat([Buffer.from([0]), Buffer.from(enc.body)]), 'buffer'))
    }
  })
})

describe('audit CSV', () => {
  it('quotes commas, quotes and newlines and parses back', () => {
    const cells = ['plain', 'a,b', 'say "hi"', 'two\nlines', 'cr\r\nlf', '', ' lead']
    const text = csvLine(cells) + csvLine(['x', 1, true, null, undefined, 'y', 'z'])
    assert.deepEqual(parseCsv(text), [cells, ['x', '1', 'true', '', '', 'y', 'z']])
  })
})
