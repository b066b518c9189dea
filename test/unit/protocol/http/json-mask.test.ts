// JSON masking by path and by value masker, without re-serialising what is left alone.
import {strict as assert} from 'node:assert'
import {compileJsonPath, type JsonPath, maskJson, pathMatches} from '../../../../src/protocol/http/json-mask.js'
import {maskValue} from '../../../../src/masking/detectors.js'
import type {MaskEntity} from '../../../../src/masking/types.js'

const paths = (...texts: string[]): JsonPath[] =>
  texts.map((t) => {
    const p = compileJsonPath(t)
    if (typeof p === 'string') throw new Error(p)
    return p
  })

function mask(text: string, ps: string[], entities: MaskEntity[] = []) {
  const set = new Set(entities)
  const r = maskJson(text, paths(...ps), entities.length ? (s) => maskValue(s, set)?.text : undefined)
  if ('error' in r) throw new Error(r.error)
  return r
}

describe('json paths', () => {
  it('compiles the supported forms', () => {
    const segs = (t: string) => (compileJsonPath(t) as JsonPath).segments
    assert.deepEqual(segs('$.a.b'), [{kind: 'key', name: 'a'}, {kind: 'key', name: 'b'}])
    assert.deepEqual(segs("$.items[*]['card no']"), [{kind: 'key', name: 'items'}, {kind: 'any'}, {kind: 'key', name: 'card no'}])
    assert.deepEqual(segs('$.a[2]'), [{kind: 'key', name: 'a'}, {kind: 'index', index: 2}])
    assert.deepEqual(segs('email'), [{kind: 'descend'}, {kind: 'key', name: 'email'}])
    for (const bad of ['$', '$.a..', '$.a[?(@.x)]', '$.a[', '$x', '']) assert.equal(typeof compileJsonPath(bad), 'string', bad)
  })
  it('matches locations', () => {
    const p = (compileJsonPath('$..card.number') as JsonPath).segments
    assert.ok(pathMatches(p, ['card', 'number']))
    assert.ok(pathMatches(p, ['a', 0, 'card', 'number']))
    assert.ok(!pathMatches(p, ['card', 'number', 'x']))
  })
})

describe('json masking', () => {
  it('masks nested fields and fields inside arrays, counting per path', () => {
    const doc = '{"customer": {"email": "a@b.co", "name": "Ann"}, "items": [{"card": "4111", "sku": 1}, {"card": "5555", "sku": 2}], "id": 12345678901234567890}'
    const r = mask(doc, ['$.customer.email', '$.items[*].card'])
    assert.equal(r.text, '{"customer": {"email": "****", "name": "Ann"}, "items": [{"card": "****", "sku": 1}, {"card": "****", "sku": 2}], "id": 12345678901234567890}')
    assert.deepEqual(r.fields, {'$.customer.email': 1, '$.items[*].card': 2})
  })
  it('masks a whole object or array named by a path', () => {
    const r = mask('{"a":{"b":[1,{"c":"x"}]},"d":1}', ['$.a.b'])
    assert.equal(r.text, '{"a":{"b":"****"},"d":1}')
  })
  it('runs the detectors on every string and long number, and not on masked values', () => {
    const doc = JSON.stringify({note: 'write to jane.doe@example.com please', list: ['call +1 415 555 0100'], card: 4111111111111111, keep: 'plain text here'})
    const r = mask(doc, [], ['email', 'phone', 'card'])
    const out = JSON.parse(r.text) as Record<string, unknown>
    assert.equal(out.note, 'write to ****@**** please')
    assert.match((out.list as string[])[0], /\*\*\*/)
    assert.equal(out.card, '************1111')
    assert.equal(out.keep, 'plain text here')
    assert.equal(r.values, 3)
  })
  it('decodes escapes in keys and values', () => {
    const r = mask('{"e\\u006dail":"x\\u0040example.com and a@b.org"}', ['$.email'])
    assert.equal(r.text, '{"e\\u006dail":"****"}')
  })
  it('reports malformed JSON instead of guessing', () => {
    for (const bad of ['{"a":', '{"a" 1}', '[1,]', '{"a":1} x', '']) {
      assert.ok('error' in maskJson(bad, paths('$.a')), bad)
    }
  })
  it('bounds nesting depth', () => {
    const deep = '['.repeat(600) + ']'.repeat(600)
    const r = maskJson(deep, [])
    assert.ok('error' in r && /nesting/.test(r.error))
  })
})
