import {strict as assert} from 'node:assert'
import {Framer, type Frame} from '../../../../src/protocol/pg/framer.js'
import {
  asFrame,
  decodeClientMessage,
  decodeStartup,
  encodeBind,
  encodeDescribe,
  encodeExecute,
  encodeParse,
  encodeQuery,
  encodeSSLRequest,
  encodeStartup,
  encodeSync,
  encodeCancelRequest,
  message,
} from '../../../../src/protocol/pg/messages.js'

function frameAll(framer: Framer, chunks: Buffer[], onStartup?: () => void): Frame[] {
  const out: Frame[] = []
  for (const c of chunks) {
    const err = framer.push(c, (f) => {
      out.push({...f, bytes: Buffer.from(f.bytes)})
      if (f.type === 0 && out.length === 2) onStartup?.()
    })
    assert.equal(err, undefined)
  }
  return out
}

describe('pg framer', () => {
  const regular = Buffer.concat([encodeParse('s1', 'select $1', [23]), encodeBind('', 's1', ['42', null], [1]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync(), encodeQuery('select 1; select 2')])

  it('yields the same messages whatever the split point (regular messages)', () => {
    const whole = frameAll(new Framer('regular', 1 << 20), [regular])
    assert.deepEqual(whole.map((f) => String.fromCharCode(f.type)).join(''), 'PBDESQ')
    for (let i = 0; i <= regular.length; i++) {
      const split = frameAll(new Framer('regular', 1 << 20), [regular.subarray(0, i), regular.subarray(i)])
      assert.deepEqual(split.map((f) => f.bytes.toString('hex')), whole.map((f) => f.bytes.toString('hex')), `split at ${i}`)
    }
  })

  it('yields the same messages fed one byte at a time, across the startup -> regular switch', () => {
    const stream = Buffer.concat([encodeSSLRequest(), encodeStartup({user: 'u', database: 'd'}), regular])
    const framer = new Framer('startup', 1 << 20)
    const frames = frameAll(framer, [...stream].map((b) => Buffer.from([b])), () => framer.setMode('regular'))
    assert.equal(frames.length, 8)
    assert.equal(decodeStartup(frames[0]).kind, 'SSLRequest')
    const st = decodeStartup(frames[1])
    assert.ok(st.kind === 'Startup' && st.params.user === 'u' && st.params.database === 'd')
    assert.deepEqual(frames.slice(2).map((f) => decodeClientMessage(f).kind), ['Parse', 'Bind', 'Describe', 'Execute', 'Sync', 'Query'])
  })

  it('refuses a declared length above the limit from the header alone, without buffering the body', () => {
    const framer = new Framer('regular', 1024)
    const err = framer.push(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), () => assert.fail('no frame'))
    assert.deepEqual(err, {kind: 'length', declared: 0x7fffffff, limit: 1024})
    assert.equal(framer.buffered, 0)
    // and stays failed
    assert.ok(framer.push(encodeSync(), () => assert.fail('no frame')))
  })

  it('refuses a declared length below 4 (regular) or 8 (startup)', () => {
    assert.ok(new Framer('regular', 1024).push(Buffer.from([0x51, 0, 0, 0, 3]), () => {}))
    assert.ok(new Framer('startup', 1024).push(Buffer.from([0, 0, 0, 4]), () => {}))
  })
})

describe('pg frontend decoding', () => {
  it('decodes the extended-protocol messages', () => {
    const p = decodeClientMessage(asFrame(encodeParse('n', 'select $1', [25])))
    assert.deepEqual(p, {kind: 'Parse', name: 'n', sql: 'select $1', paramTypes: [25]})
    const b = decodeClientMessage(asFrame(encodeBind('p', 'n', ['x', null], [1, 0])))
    assert.deepEqual(b, {kind: 'Bind', portal: 'p', statement: 'n', resultFormats: [1, 0]})
    assert.deepEqual(decodeClientMessage(asFrame(encodeExecute('p', 5))), {kind: 'Execute', portal: 'p', maxRows: 5})
  })

  it('turns bad bodies into Malformed and unknown letters into Unknown, never throwing', () => {
    assert.equal(decodeClientMessage(asFrame(message(0x51, Buffer.from('no terminator')))).kind, 'Malformed')
    assert.equal(decodeClientMessage(asFrame(message(0x51, Buffer.from('a\0trailing')))).kind, 'Malformed')
    assert.equal(decodeClientMessage(asFrame(message(0x42, Buffer.from('p\0s\0\x7f')))).kind, 'Malformed')
    assert.equal(decodeClientMessage(asFrame(message(0x44, Buffer.from('Xname\0')))).kind, 'Malformed')
    assert.deepEqual(decodeClientMessage(asFrame(message(0x7a))), {kind: 'Unknown', type: 0x7a})
    // Every truncation of a valid Bind is refused as Malformed, not thrown.
    const bind = encodeBind('portal', 'stmt', ['abc', null, 'de'], [1])
    for (let i = 5; i < bind.length; i++) {
      const cut = Buffer.from(bind.subarray(0, i))
      cut.writeInt32BE(i - 1, 1)
      assert.equal(decodeClientMessage(asFrame(cut)).kind, 'Malformed', `cut at ${i}`)
    }
  })

  it('decodes CancelRequest and rejects a non-3 protocol', () => {
    const c = decodeStartup(asFrame(encodeCancelRequest(1234, Buffer.from([1, 2, 3, 4])), true))
    assert.ok(c.kind === 'CancelRequest' && c.pid === 1234 && c.key.equals(Buffer.from([1, 2, 3, 4])))
    assert.equal(decodeStartup(asFrame(encodeStartup({user: 'u'}, 2 << 16), true)).kind, 'Malformed')
  })
})
