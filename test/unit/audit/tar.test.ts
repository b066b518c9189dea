// The ustar reader as a framer: the same entries whatever the chunking; refusals come from the header.
import assert from 'node:assert/strict'
import {BLOCK, TarError, TarParser, unsafeName} from '../../../src/audit/tar.js'
import {type Entry, tarBytes} from './_tar.js'

describe('audit tar reader', function () {
  it('TarParser gives the same entries for input split at every byte', () => {
    const small: Entry[] = [
      {name: 'r/manifest.json', data: Buffer.from('{"a":1}\n')},
      {name: 'r/empty', data: Buffer.alloc(0)},
      {name: 'r/block', data: Buffer.alloc(BLOCK, 7)},
      {name: 'r/x', data: Buffer.from('xyz')},
    ]
    const tar = Buffer.concat([tarBytes(small), Buffer.alloc(100)])
    const parse = (parts: Buffer[]) => {
      const got: [string, string][] = []
      const p = new TarParser((name) => {
        const chunks: Buffer[] = []
        return {data: (c) => chunks.push(Buffer.from(c)), end: () => got.push([name, Buffer.concat(chunks).toString('hex')])}
      })
      for (const c of parts) p.push(c)
      p.finish()
      return got
    }
    const whole = parse([tar])
    assert.deepEqual(whole.map(([n]) => n), small.map((e) => e.name))
    for (let i = 0; i <= tar.length; i++) assert.deepEqual(parse([tar.subarray(0, i), tar.subarray(i)]), whole, `split at ${i}`)
    assert.throws(() => parse([tar.subarray(0, tar.length - 1200)]), TarError)
  })

  it('refuses non-regular entries from the header, before asking for a handler', () => {
    let asked = 0
    const p = new TarParser(() => (asked++, {data() {}, end() {}}))
    assert.throws(() => p.push(tarBytes([{name: 'r/link', data: Buffer.alloc(0), type: '2', linkname: '../../etc/passwd'}])), /is a symbolic link \(tar type '2'\) to "..\/..\/etc\/passwd"/)
    assert.equal(asked, 0)
  })

  it('names that leave the archive directory', () => {
    assert.equal(unsafeName('root/reports/a.csv'), undefined)
    for (const bad of ['', '/abs', 'a/../b', '..', 'a//b', 'a/./b', 'a/', 'a\\b', 'caf\xe9']) assert.ok(unsafeName(bad), bad)
  })
})
