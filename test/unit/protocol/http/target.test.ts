// Request-target normalisation: what policy judges is what upstream serves.
import {strict as assert} from 'node:assert'
import {parseTarget, redactTarget, removeDotSegments} from '../../../../src/protocol/http/target.js'

describe('http request targets', () => {
  const path = (t: string) => {
    const r = parseTarget('GET', t)
    if (typeof r === 'string') throw new Error(r)
    return r
  }
  it('removes dot segments and decodes unreserved escapes', () => {
    assert.equal(path('/a/../admin').path, '/admin')
    assert.equal(path('/%61dmin/./x').path, '/admin/x')
    assert.equal(path('/a/%2e%2e/admin').path, '/admin')
    assert.equal(path('/../../etc').path, '/etc')
    assert.equal(removeDotSegments('/a/b/..'), '/a/')
  })
  it('keeps reserved escapes encoded (upper-cased)', () => {
    assert.equal(path('/a%2fb').path, '/a%2Fb')
  })
  it('parses the query and forwards the normalised target', () => {
    const t = path('/x/../items?id=1&id=2&q=a+b')
    assert.deepEqual({...t.query}, {id: ['1', '2'], q: ['a b']})
    assert.equal(t.target, '/items?id=1&id=2&q=a+b')
  })
  it('accepts absolute-form and rejects the rest', () => {
    assert.equal(path('http://h:1/p?x').target, '/p?x')
    assert.equal(typeof parseTarget('GET', 'h:443'), 'string')
    assert.equal(typeof parseTarget('GET', '*'), 'string')
    assert.equal(typeof parseTarget('OPTIONS', '*'), 'object')
    assert.equal(typeof parseTarget('GET', '/a%zz'), 'string')
  })
  it('redacts secret-looking query values for logs', () => {
    assert.equal(redactTarget(path('/p?access_token=abc&page=2&api-key=k')), '/p?access_token=[redacted]&page=2&api-key=[redacted]')
  })
})
