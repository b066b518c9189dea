// What the HTTP engine records of an exchange: credential headers redacted, body previews bounded,
// binary bodies by size only.
import {strict as assert} from 'node:assert'
import {ExchangeRecorder, Preview} from '../../../../src/engines/http/recording.js'

function recorder(redact?: string[]) {
  const lines: {direction: string; text: string}[] = []
  const gate = {recording: true, record: (direction: 'client' | 'server', text: string) => void lines.push({direction, text})}
  return {rec: new ExchangeRecorder(gate, redact, 8), lines}
}

describe('http recording', () => {
  it('keeps the first bytes of a text body and says how much there was', () => {
    const p = new Preview(4, 'text/plain')
    p.add(Buffer.from('abc'))
    p.add(Buffer.from('defg'))
    assert.equal(p.text(), 'abcd\n[... truncated, 7 bytes in all]')
  })

  it('records a binary body by type and size only', () => {
    const p = new Preview(4, 'image/png')
    p.add(Buffer.alloc(10))
    assert.equal(p.text(), '[image/png body, 10 bytes]')
    assert.equal(new Preview(4, undefined).text(), '')
  })

  it('redacts credentials always and the connection\'s extra headers, case-insensitively', () => {
    const {rec, lines} = recorder(['X-Api-Key'])
    const head = {
      method: 'POST',
      target: '/a',
      version: '1.1' as const,
      headers: [
        {name: 'Authorization', value: 'Bearer s3cret'},
        {name: 'x-api-key', value: 'k'},
        {name: 'Content-Type', value: 'application/json'},
      ],
    }
    rec.request('POST /a', head, Buffer.from('{"a":1}'), false)
    rec.request('POST /a', head, undefined, true)
    assert.equal(lines[0].text, 'POST /a HTTP/1.1\nAuthorization: [redacted]\nx-api-key: [redacted]\nContent-Type: application/json\n\n{"a":1}')
    assert.ok(lines[1].text.endsWith('\n\n[request body streamed, not recorded]'))
    assert.ok(lines.every((l) => l.direction === 'client'))
  })
})
