import {strict as assert} from 'node:assert'
import {asFrame, decodeErrorFields, encodeCancelRequest, encodeQuery, encodeSSLRequest, encodeStartup, GSSENC_REQUEST_CODE} from '../../../../src/protocol/pg/messages.js'
import {encodeHoopFatal, sqlStateOf, StartupRefusal, type RefusalStep} from '../../../../src/protocol/pg/refusal.js'

const ERROR = encodeHoopFatal('AGENT_OFFLINE', 'agent "a" serving connection "c" is offline')

function gssencRequest(): Buffer {
  const b = Buffer.alloc(8)
  b.writeInt32BE(8)
  b.writeInt32BE(GSSENC_REQUEST_CODE, 4)
  return b
}

/** Feeds `chunks`; returns everything written and the last state. */
function play(chunks: Buffer[]): {written: Buffer; state: RefusalStep['state']} {
  const r = new StartupRefusal(ERROR)
  const out: Buffer[] = []
  let state: RefusalStep['state'] = 'reading'
  for (const c of chunks) {
    const step = r.push(c)
    out.push(...step.write)
    state = step.state
  }
  return {written: Buffer.concat(out), state}
}

describe('pg startup refusal', () => {
  it('answers GSSENC and SSL requests with N, then the StartupMessage with the FATAL, whatever the split', () => {
    const stream = Buffer.concat([gssencRequest(), encodeSSLRequest(), encodeStartup({user: 'u'}), encodeQuery('select 1')])
    const expected = Buffer.concat([Buffer.from('NN'), ERROR])
    for (let i = 0; i <= stream.length; i++) {
      const {written, state} = play([stream.subarray(0, i), stream.subarray(i)])
      assert.ok(written.equals(expected), `split at ${i}`)
      assert.equal(state, 'answered', `split at ${i}`)
    }
  })

  it('says nothing to a CancelRequest, and closes on bytes that are not a PostgreSQL startup', () => {
    assert.deepEqual(play([encodeCancelRequest(1, Buffer.alloc(4))]), {written: Buffer.alloc(0), state: 'answered'})
    assert.equal(play([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]).state, 'foreign')
    assert.equal(play([encodeStartup({user: 'u'}, 2 << 16)]).state, 'foreign')
    assert.equal(play([Buffer.from([0, 0, 0])]).state, 'reading')
  })

  it('encodes the reason with the hoop code, a fitting SQLSTATE and the hint', () => {
    const f = decodeErrorFields(asFrame(ERROR))
    assert.equal(f.S, 'FATAL')
    assert.equal(f.C, '08001')
    assert.equal(f.M, 'hoop: agent "a" serving connection "c" is offline [AGENT_OFFLINE]')
    assert.match(f.H, /hoop agent/)
    assert.equal(sqlStateOf('ACCESS_DENIED'), '28000')
    assert.equal(sqlStateOf('TOKEN_REJECTED'), '28000')
    assert.equal(sqlStateOf('GATEWAY_UNREACHABLE'), '08001')
  })
})
