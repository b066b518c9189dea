// Whole-row values masked field by field: only the masked fields change, the rest stays byte for
// byte; anything not of exactly the expected shape is refused (the caller masks it whole).
import {strict as assert} from 'node:assert'
import {maskWholeRow, type RowShape} from '../../../src/masking/whole-row.js'

const names = ['id', 'email', 'note']
const masked = new Map([['email', 'column:public.c.email']])
const json: RowShape = {form: 'json', names, masked}
const composite: RowShape = {form: 'composite', names, masked}

describe('whole-row masking', () => {
  it('masks a JSON field and keeps every other byte (row_to_json and jsonb spacing, nested values)', () => {
    assert.deepEqual(maskWholeRow('{"id":1,"email":"a@b.c","note":"x"}', json), {text: '{"id":1,"email":"****","note":"x"}', maskedKeys: ['column:public.c.email']})
    assert.equal(maskWholeRow('{"id": 1, "note": {"a": [1, "}\\"", {"b": null}]}, "email": "a\\"@b"}', json)?.text, '{"id": 1, "note": {"a": [1, "}\\"", {"b": null}]}, "email": "****"}')
    assert.equal(maskWholeRow('{"id":1,\n "email":"a@b",\n "note":-1.5e3}', json)?.text, '{"id":1,\n "email":"****",\n "note":-1.5e3}')
  })

  it('leaves a NULL field and a value with nothing masked unchanged', () => {
    assert.deepEqual(maskWholeRow('{"id":1,"email":null,"note":"x"}', json), {text: '{"id":1,"email":null,"note":"x"}', maskedKeys: []})
  })

  it('reads escaped keys as the names they spell', () => {
    assert.equal(maskWholeRow('{"id":1,"em\\u0061il":"a@b","note":"x"}', json)?.text, '{"id":1,"em\\u0061il":"****","note":"x"}')
  })

  for (const [why, text] of [
    ['a key the catalog does not list', '{"id":1,"email":"a","note":"x","extra":2}'],
    ['a missing key', '{"id":1,"note":"x"}'],
    ['a duplicate key', '{"id":1,"email":"a","note":"x","email":"b"}'],
    ['trailing text', '{"id":1,"email":"a","note":"x"} {"email":"b"}'],
    ['an unterminated string', '{"id":1,"email":"a'],
    ['a bad literal', '{"id":1,"email":nope,"note":"x"}'],
    ['mismatched brackets', '{"id":[1},"email":"a","note":"x"}'],
    ['not an object', '[1,"a","x"]'],
  ] as const) {
    it(`refuses JSON with ${why}`, () => assert.equal(maskWholeRow(text, json), undefined))
  }

  it('masks a composite field by position, with PostgreSQL quoting around it', () => {
    assert.equal(maskWholeRow('(1,a@b.c,plain)', composite)?.text, '(1,****,plain)')
    assert.equal(maskWholeRow('(1,"a,b ""q"" \\\\ (x)","with, comma")', composite)?.text, '(1,****,"with, comma")')
    assert.equal(maskWholeRow('("1,2",a,)', composite)?.text, '("1,2",****,)')
    assert.equal(maskWholeRow('(1,"",x)', composite)?.text, '(1,****,x)')
  })

  it('leaves a NULL composite field', () => {
    assert.deepEqual(maskWholeRow('(1,,x)', composite), {text: '(1,,x)', maskedKeys: []})
  })

  for (const [why, text] of [
    ['too few fields', '(1,a)'],
    ['too many fields', '(1,a,b,c)'],
    ['an unterminated quote', '(1,"a,b)'],
    ['no parentheses', '1,a,b'],
    ['text after the row', '(1,a,b)x'],
  ] as const) {
    it(`refuses a composite with ${why}`, () => assert.equal(maskWholeRow(text, composite), undefined))
  }
})
