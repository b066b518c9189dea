// Body framing decoder: chunked split at every byte, exact wire bytes, rest after the body, and
// malformed chunk syntax as errors.
import {strict as assert} from 'node:assert'
import {BodyDecoder, encodeChunk, LAST_CHUNK, MAX_CHUNK_LINE} from '../../../../src/protocol/http/body.js'
import type {Framing} from '../../../../src/protocol/http/head.js'

interface Collected {
  raw: string
  payload: string
  rest: string
  done: boolean
  error?: string
}

function feed(framing: Framing, pieces: Buffer[]): Collected {
  const d = new BodyDecoder(framing)
  const out: Collected = {raw: '', payload: '', rest: '', done: false}
  for (const p of pieces) {
    if (out.done) {
      out.rest += p.toString('latin1')
      continue
    }
    const st = d.push(p)
    if ('error' in st) return {...out, error: st.error}
    out.raw += st.raw.toString('latin1')
    out.payload += Buffer.concat(st.payload).toString('latin1')
    out.rest += st.rest.toString('latin1')
    out.done = st.done
  }
  return out
}

const chunked = (...parts: string[]) => Buffer.concat([...parts.map((p) => encodeChunk(Buffer.from(p))), LAST_CHUNK])

describe('http body decoder', () => {
  it('decodes chunked bodies split at every byte, keeping wire bytes and the rest', () => {
    const body = Buffer.concat([Buffer.from('5;ext=1\r\nhello\r\n'), chunked(' world', '!'), Buffer.from('GET /next')])
    const wire = body.subarray(0, body.length - 'GET /next'.length).toString('latin1')
    for (let cut = 1; cut < body.length; cut++) {
      const r = feed({kind: 'chunked'}, [body.subarray(0, cut), body.subarray(cut)])
      assert.equal(r.error, undefined, `cut ${cut}`)
      assert.equal(r.payload, 'hello world!', `cut ${cut}`)
      assert.equal(r.raw, wire, `cut ${cut}`)
      assert.equal(r.rest, 'GET /next', `cut ${cut}`)
      assert.ok(r.done)
    }
  })

  it('decodes byte by byte with trailers', () => {
    const body = Buffer.from('3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nZ')
    const r = feed({kind: 'chunked'}, [...body].map((b) => Buffer.from([b])))
    assert.equal(r.payload, 'abc')
    assert.equal(r.rest, 'Z')
    assert.ok(r.done)
  })

  it('content-length stops at the declared length', () => {
    const r = feed({kind: 'length', length: 4}, [Buffer.from('ab'), Buffer.from('cdEF')])
    assert.deepEqual({payload: r.payload, rest: r.rest, done: r.done}, {payload: 'abcd', rest: 'EF', done: true})
  })

  it('until-close ends only at end of stream; others fail there', () => {
    const c = new BodyDecoder({kind: 'close'})
    c.push(Buffer.from('x'))
    assert.deepEqual(c.end(), {done: true})
    const l = new BodyDecoder({kind: 'length', length: 3})
    l.push(Buffer.from('x'))
    assert.ok('error' in l.end())
  })

  const bad: [string, string][] = [
    ['non-hex size', 'zz\r\nabc\r\n0\r\n\r\n'],
    ['negative size', '-1\r\n'],
    ['size too large', 'fffffffffffffff\r\n'],
    ['bare LF after size', '3\nabc\r\n0\r\n\r\n'],
    ['missing CRLF after data', '3\r\nabcd\r\n0\r\n\r\n'],
    ['empty size line', '\r\n'],
    ['oversized size line', '1;' + 'x'.repeat(MAX_CHUNK_LINE + 10)],
  ]
  for (const [name, text] of bad) {
    it(`refuses ${name}`, () => {
      const r = feed({kind: 'chunked'}, [Buffer.from(text)])
      assert.ok(r.error, name)
    })
  }
})
