import assert from 'node:assert/strict'
import {findLeaks} from '../../helpers/leak-oracle.js'

describe('leak oracle (test helper)', () => {
  const secret = 'alice.smith@example.com'
  it('finds a secret and its simple transforms anywhere in the bytes', () => {
    const bytes = Buffer.concat([
      Buffer.from([0x44, 0, 0, 0, 9]),
      Buffer.from(`x${secret.toUpperCase()}y`),
      Buffer.from(Buffer.from(secret).toString('base64')),
      Buffer.from([...secret].reverse().join('')),
      Buffer.from('alice.smith'),
    ])
    const kinds = findLeaks(bytes, [secret]).map((l) => l.transform)
    for (const k of ['upper', 'base64', 'reversed', 'localPart']) assert.ok(kinds.includes(k), `${k} not found in ${kinds.join(',')}`)
  })

  it('finds nothing in masked output', () => {
    assert.deepEqual(findLeaks(Buffer.from('D\0\0\0\x0b\0\x01\0\0\0\x04****'), [secret]), [])
  })
})
