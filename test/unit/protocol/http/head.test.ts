// HTTP head accumulation and parsing: split at every byte, bounds, and the smuggling-relevant
// ambiguities that must be errors rather than guesses.
import {strict as assert} from 'node:assert'
import {
  endToEndHeaders,
  HeadAccumulator,
  isHeadError,
  isTextType,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  type RequestHead,
  type ResponseHead,
} from '../../../../src/protocol/http/head.js'

const req = (lines: string[]) => Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')

function parseReq(buf: Buffer): RequestHead {
  const h = parseRequestHead(buf)
  if (isHeadError(h)) throw new Error(h.error)
  return h
}

describe('http head accumulator', () => {
  it('finds the end of a head split at every byte and returns the rest', () => {
    const msg = Buffer.concat([req(['GET /a?b=1 HTTP/1.1', 'Host: x', 'X-Long: ' + 'v'.repeat(50)]), Buffer.from('NEXT')])
    for (let cut = 1; cut < msg.length; cut++) {
      const acc = new HeadAccumulator()
      const first = acc.push(msg.subarray(0, cut))
      const r = first ?? acc.push(msg.subarray(cut))
      assert.ok(r && !isHeadError(r), `cut ${cut}`)
      // When the head ended inside the first piece, the second piece was never pushed.
      const rest = first ? r.rest.toString() + msg.subarray(cut).toString() : r.rest.toString()
      assert.equal(rest, 'NEXT', `cut ${cut}`)
      assert.equal(parseReq(r.head).target, '/a?b=1')
    }
  })

  it('skips empty lines before a request line', () => {
    const acc = new HeadAccumulator()
    const r = acc.push(Buffer.concat([Buffer.from('\r\n\r\n'), req(['GET / HTTP/1.1', 'Host: x'])]))
    assert.ok(r && !isHeadError(r))
    assert.equal(parseReq(r.head).method, 'GET')
  })

  it('refuses a head longer than the limit before it ends (431)', () => {
    const acc = new HeadAccumulator(1024)
    assert.equal(acc.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n')), undefined)
    const r = acc.push(Buffer.from('X: ' + 'a'.repeat(2000)))
    assert.ok(isHeadError(r))
    assert.equal(r.status, 431)
  })
})

describe('http request head parsing', () => {
  it('keeps header case and trims optional whitespace', () => {
    const h = parseReq(req(['POST /x HTTP/1.1', 'Host: api', 'X-Thing:   v  ', 'content-TYPE: application/json']))
    assert.deepEqual(h.headers, [
      {name: 'Host', value: 'api'},
      {name: 'X-Thing', value: 'v'},
      {name: 'content-TYPE', value: 'application/json'},
    ])
  })

  const bad: [string, Buffer, number][] = [
    ['garbage request line', req(['HELLO']), 400],
    ['space in target', Buffer.from('GET /a b HTTP/1.1\r\nHost: x\r\n\r\n'), 400],
    ['HTTP/2 text', req(['GET / HTTP/2.0', 'Host: x']), 505],
    ['missing Host on 1.1', req(['GET / HTTP/1.1']), 400],
    ['two Host headers', req(['GET / HTTP/1.1', 'Host: a', 'Host: b']), 400],
    ['obs-fold', req(['GET / HTTP/1.1', 'Host: a', 'X: a', ' b']), 400],
    ['bare LF inside', Buffer.from('GET / HTTP/1.1\nHost: a\r\n\r\n'), 400],
    ['space before colon', req(['GET / HTTP/1.1', 'Host : a']), 400],
    ['NUL in value', req(['GET / HTTP/1.1', 'Host: a\0b']), 400],
  ]
  for (const [name, buf, status] of bad) {
    it(`refuses ${name} with ${status}`, () => {
      const h = parseRequestHead(buf)
      assert.ok(isHeadError(h), name)
      assert.equal(h.status, status)
    })
  }

  it('accepts HTTP/1.0 without Host', () => {
    assert.equal(parseReq(req(['GET / HTTP/1.0'])).version, '1.0')
  })
})

describe('http body framing rules', () => {
  const framing = (lines: string[]) => requestFraming(parseReq(req(['POST / HTTP/1.1', 'Host: x', ...lines])))
  it('content-length, chunked, none', () => {
    assert.deepEqual(framing(['Content-Length: 12']), {kind: 'length', length: 12})
    assert.deepEqual(framing(['Content-Length: 0']), {kind: 'none'})
    assert.deepEqual(framing(['Transfer-Encoding: chunked']), {kind: 'chunked'})
    assert.deepEqual(framing([]), {kind: 'none'})
    assert.deepEqual(framing(['Content-Length: 5, 5']), {kind: 'length', length: 5})
  })
  it('refuses ambiguous requests (smuggling)', () => {
    for (const lines of [
      ['Content-Length: 5', 'Transfer-Encoding: chunked'],
      ['Content-Length: 5', 'Content-Length: 6'],
      ['Content-Length: -1'],
      ['Content-Length: 1e3'],
      ['Transfer-Encoding: gzip, chunked'],
      ['Transfer-Encoding: chunked, identity'],
    ]) {
      assert.ok(isHeadError(framing(lines)), lines.join(' | '))
    }
  })
  it('response rules: HEAD, 204, 304, chunked, close-delimited', () => {
    const resp = (status: number, lines: string[]): ResponseHead => {
      const h = parseResponseHead(req([`HTTP/1.1 ${status} X`, ...lines]))
      if (isHeadError(h)) throw new Error(h.error)
      return h
    }
    assert.deepEqual(responseFraming(resp(200, ['Content-Length: 9']), 'HEAD'), {kind: 'none'})
    assert.deepEqual(responseFraming(resp(204, []), 'GET'), {kind: 'none'})
    assert.deepEqual(responseFraming(resp(304, ['Content-Length: 9']), 'GET'), {kind: 'none'})
    assert.deepEqual(responseFraming(resp(200, ['Transfer-Encoding: chunked', 'Content-Length: 9']), 'GET'), {kind: 'chunked'})
    assert.deepEqual(responseFraming(resp(200, []), 'GET'), {kind: 'close'})
    assert.deepEqual(responseFraming(resp(200, ['Content-Length: 9']), 'GET'), {kind: 'length', length: 9})
  })
  it('parses a status line without a reason phrase', () => {
    const h = parseResponseHead(Buffer.from('HTTP/1.1 200\r\n\r\n'))
    assert.ok(!isHeadError(h))
    assert.equal(h.status, 200)
  })
})

describe('http header helpers', () => {
  it('endToEndHeaders drops hop-by-hop fields and those Connection names, keeping order and case', () => {
    const h = parseReq(
      req(['GET / HTTP/1.1', 'Host: x', 'Connection: keep-alive, X-Hop', 'Keep-Alive: timeout=5', 'X-Hop: 1', 'TE: trailers', 'Upgrade: h2c', 'Proxy-Authorization: Basic eA==', 'Accept: */*', 'x-Kept: 2']),
    )
    assert.deepEqual(endToEndHeaders(h.headers), [
      {name: 'Host', value: 'x'},
      {name: 'Accept', value: '*/*'},
      {name: 'x-Kept', value: '2'},
    ])
  })

  it('isTextType knows text, XML and line-oriented types, and not JSON or binary ones', () => {
    for (const t of ['text/plain', 'text/csv', 'application/xml', 'application/atom+xml', 'application/x-ndjson', 'application/x-www-form-urlencoded', 'application/yaml']) {
      assert.ok(isTextType(t), t)
    }
    for (const t of [undefined, 'application/json', 'application/octet-stream', 'image/png', 'application/xml-dtd']) assert.ok(!isTextType(t), String(t))
  })
})
