// The relay frame codec: round trips, every decode error, truncated and split input.
import {strict as assert} from 'node:assert'
import {HoopError} from '../../../src/shared/errors.js'
import {
  HEADER_SIZE,
  MAX_DATA_PAYLOAD,
  MAX_FRAME_SIZE,
  MAX_META_SIZE,
  RELAY_VERSION,
  decodeFrame,
  encodeFrame,
  type Frame,
} from '../../../src/relay/frame.js'

/** header(type, id) + payload: build frames by parts, not hex blobs. */
function raw(type: number, streamId: number, payload: Buffer | string = Buffer.alloc(0), version = RELAY_VERSION): Buffer {
  const h = Buffer.alloc(HEADER_SIZE)
  h[0] = version
  h[1] = type
  h.writeUInt32BE(streamId, 2)
  return Buffer.concat([h, Buffer.from(payload)])
}

function decodeFails(buf: Buffer, re: RegExp): void {
  assert.throws(
    () => decodeFrame(buf),
    (e: unknown) => e instanceof HoopError && e.code === 'PROTOCOL_ERROR' && re.test(e.message),
    `expected PROTOCOL_ERROR matching ${re}`,
  )
}

const samples: Frame[] = [
  {type: 'open', streamId: 1, meta: {connection: 'db', host: '10.0.0.5', port: 5432, sessionId: 'ses_abc', nested: {ü: [1, null]}}},
  {type: 'open-ok', streamId: 2},
  {type: 'data', streamId: 3, data: Buffer.from([0, 1, 2, 255])},
  {type: 'data', streamId: 0xffffffff, data: Buffer.alloc(MAX_DATA_PAYLOAD, 9)},
  {type: 'data', streamId: 5, data: Buffer.alloc(0)},
  {type: 'window', streamId: 4, increment: 1},
  {type: 'window', streamId: 4, increment: 0xffffffff},
  {type: 'end', streamId: 7},
  {type: 'reset', streamId: 9, code: 'ACCESS_DENIED', message: 'nope'},
  {type: 'goaway', code: 'GATEWAY_SHUTDOWN', message: 'restarting'},
]

describe('relay frame codec', () => {
  it('round-trips every frame type', () => {
    for (const f of samples) {
      const buf = encodeFrame(f)
      assert.ok(buf.length <= MAX_FRAME_SIZE)
      assert.deepEqual(decodeFrame(buf), f)
    }
  })

  it('lays out the header as version | type | stream id (u32 BE)', () => {
    assert.deepEqual([...encodeFrame({type: 'end', streamId: 0x01020304})], [1, 5, 1, 2, 3, 4])
    assert.deepEqual([...encodeFrame({type: 'window', streamId: 2, increment: 258})], [1, 4, 0, 0, 0, 2, 0, 0, 1, 2])
    assert.deepEqual([...encodeFrame({type: 'goaway', code: 'A', message: ''}).subarray(0, 6)], [1, 7, 0, 0, 0, 0])
  })

  it('decodes DATA as a view, without copying', () => {
    const buf = encodeFrame({type: 'data', streamId: 1, data: Buffer.from('abc')})
    const f = decodeFrame(buf)
    assert.ok(f.type === 'data')
    assert.equal(f.data.buffer, buf.buffer)
    assert.equal(f.data.byteOffset, buf.byteOffset + HEADER_SIZE)
  })

  it('rejects a header shorter than 6 bytes, at every length', () => {
    const full = encodeFrame({type: 'end', streamId: 1})
    for (let n = 0; n < HEADER_SIZE; n++) decodeFails(full.subarray(0, n), /shorter than the 6-byte header/)
  })

  it('rejects every truncation or split of a frame that is not itself a valid frame', () => {
    for (const f of samples) {
      const buf = encodeFrame(f)
      for (let n = 0; n < buf.length; n++) {
        // A prefix is a different message; it must either throw PROTOCOL_ERROR or be a valid shorter DATA frame.
        const head = buf.subarray(0, n)
        try {
          const g = decodeFrame(head)
          assert.ok(g.type === 'data' && f.type === 'data', `prefix ${n} of ${f.type} decoded as ${g.type}`)
        } catch (e) {
          assert.ok(e instanceof HoopError && e.code === 'PROTOCOL_ERROR', `prefix ${n} of ${f.type}: ${String(e)}`)
        }
      }
    }
  })

  it('rejects an unknown version and an unknown type', () => {
    decodeFails(raw(5, 1, '', 2), /version 2 is not supported \(expected 1\)/)
    decodeFails(raw(5, 1, '', 0), /version 0/)
    decodeFails(raw(0, 1), /type 0 is unknown/)
    decodeFails(raw(8, 1), /type 8 is unknown/)
  })

  it('rejects stream id 0 for stream frames and a non-zero id for GOAWAY', () => {
    decodeFails(raw(3, 0, 'x'), /stream id 0, which is reserved/)
    decodeFails(raw(7, 1, JSON.stringify({code: 'A', message: 'b'})), /GOAWAY must use stream id 0, got 1/)
  })

  it('rejects oversize payloads', () => {
    decodeFails(raw(3, 1, Buffer.alloc(MAX_DATA_PAYLOAD + 1)), /DATA payload is 65537 bytes, exceeds limit 65536/)
    const bigMeta = JSON.stringify({x: 'a'.repeat(MAX_META_SIZE)})
    decodeFails(raw(1, 1, bigMeta), /OPEN payload is \d+ bytes, exceeds limit 16384/)
    decodeFails(raw(6, 1, bigMeta), /RESET payload is \d+ bytes, exceeds limit 16384/)
  })

  it('rejects bad JSON and JSON of the wrong shape', () => {
    decodeFails(raw(1, 1, '{"a":'), /OPEN payload is not valid JSON/)
    decodeFails(raw(1, 1, '[1,2]'), /OPEN payload must be a JSON object/)
    decodeFails(raw(1, 1, 'null'), /OPEN payload must be a JSON object/)
    decodeFails(raw(1, 1, ''), /not valid JSON/)
    decodeFails(raw(6, 1, '"x"'), /RESET payload must be a JSON object/)
    decodeFails(raw(6, 1, '{"code":1,"message":"m"}'), /string fields code and message/)
    decodeFails(raw(7, 0, '{"code":"A"}'), /GOAWAY payload must have string fields/)
    decodeFails(raw(7, 0, 'not json'), /GOAWAY payload is not valid JSON/)
  })

  it('rejects WINDOW 0 and a WINDOW payload that is not 4 bytes', () => {
    decodeFails(raw(4, 1, Buffer.alloc(4)), /increment must be greater than 0/)
    decodeFails(raw(4, 1, Buffer.alloc(3, 1)), /WINDOW payload must be 4 bytes, got 3/)
    decodeFails(raw(4, 1, Buffer.alloc(5, 1)), /got 5/)
  })

  it('rejects a payload on OPEN_OK and END', () => {
    decodeFails(raw(2, 1, 'x'), /OPEN_OK frame must have an empty payload, got 1 bytes/)
    decodeFails(raw(5, 1, 'xy'), /END frame must have an empty payload, got 2 bytes/)
  })

  it('refuses to encode frames that break a limit', () => {
    const invalid = (f: Frame, re: RegExp) =>
      assert.throws(() => encodeFrame(f), (e: unknown) => e instanceof HoopError && e.code === 'INVALID_INPUT' && re.test(e.message))
    invalid({type: 'data', streamId: 1, data: Buffer.alloc(MAX_DATA_PAYLOAD + 1)}, /exceeds limit 65536/)
    invalid({type: 'open', streamId: 1, meta: {x: 'y'.repeat(MAX_META_SIZE)}}, /exceeds limit 16384/)
    invalid({type: 'window', streamId: 1, increment: 0}, /increment 0/)
    invalid({type: 'end', streamId: 0}, /stream id 0/)
    invalid({type: 'end', streamId: 2 ** 32}, /stream id/)
    invalid({type: 'open', streamId: 1, meta: [] as unknown as Record<string, unknown>}, /must be a JSON object/)
  })

  it('MAX_FRAME_SIZE covers the largest DATA frame', () => {
    assert.ok(MAX_FRAME_SIZE >= HEADER_SIZE + MAX_DATA_PAYLOAD)
    assert.ok(MAX_FRAME_SIZE >= HEADER_SIZE + MAX_META_SIZE)
  })
})
