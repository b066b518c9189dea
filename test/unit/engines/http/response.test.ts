// How the HTTP engine picks a response's way to the client (pass, dechunk, json, text), when that
// closes the client connection, and what a mask plan compiles to.
import {strict as assert} from 'node:assert'
import type {Framing} from '../../../../src/protocol/http/head.js'
import {closesClient, compileMask, masksAnything, responseMode} from '../../../../src/engines/http/response.js'

const length: Framing = {kind: 'length', length: 10}
const chunked: Framing = {kind: 'chunked'}
const close: Framing = {kind: 'close'}
const none: Framing = {kind: 'none'}

describe('http response mode', () => {
  it('passes everything through when nothing is masked, dechunking only for HTTP/1.0 clients', () => {
    assert.equal(responseMode(length, 'application/json', false, '1.1'), 'pass')
    assert.equal(responseMode(chunked, 'text/plain', false, '1.1'), 'pass')
    assert.equal(responseMode(chunked, 'text/plain', false, '1.0'), 'dechunk')
    assert.equal(responseMode(close, undefined, false, '1.0'), 'pass')
  })

  it('masks JSON as JSON, text and untyped bodies as text, and passes binary and empty bodies', () => {
    assert.equal(responseMode(length, 'application/json', true, '1.1'), 'json')
    assert.equal(responseMode(chunked, 'application/problem+json', true, '1.0'), 'json')
    assert.equal(responseMode(length, 'text/csv', true, '1.1'), 'text')
    assert.equal(responseMode(close, undefined, true, '1.1'), 'text')
    assert.equal(responseMode(length, 'image/png', true, '1.1'), 'pass')
    assert.equal(responseMode(chunked, 'image/png', true, '1.0'), 'dechunk')
    assert.equal(responseMode(none, 'application/json', true, '1.1'), 'pass')
  })

  it('closes the client when its body is delimited by the close, or when it asked to', () => {
    assert.equal(closesClient(true, 'pass', length, '1.1'), false)
    assert.equal(closesClient(false, 'pass', length, '1.1'), true)
    assert.equal(closesClient(true, 'pass', close, '1.1'), true)
    assert.equal(closesClient(true, 'dechunk', chunked, '1.0'), true)
    assert.equal(closesClient(true, 'text', close, '1.1'), false)
    assert.equal(closesClient(true, 'text', length, '1.0'), true)
    assert.equal(closesClient(true, 'json', close, '1.0'), false)
  })
})

describe('http mask plan', () => {
  it('compiles JSON paths from both jsonPaths and columns', () => {
    const m = compileMask({columns: ['$.a'], jsonPaths: ['$.b[*].c'], entities: [], ruleIds: ['r']})
    assert.ok(!('error' in m))
    assert.equal(m.paths.length, 2)
    assert.ok(masksAnything(m))
    assert.deepEqual(m.counts, {})
  })

  it('names the path it cannot compile', () => {
    const m = compileMask({columns: ['$.ok', '$.a['], entities: [], ruleIds: []})
    assert.ok('error' in m)
    assert.match(m.error, /"\$\.a\["/)
  })

  it('masks nothing without paths or entities', () => {
    const m = compileMask({columns: [], entities: [], ruleIds: []})
    assert.ok(!('error' in m) && !masksAnything(m))
  })
})
