// The README's command reference is exactly what `npm run docs` generates from the manifest.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {type Manifest, renderCommandReference, withCommandReference} from '../../../src/client/command-reference.js'
import {ROOT} from '../../helpers/cli.js'

describe('README command reference', () => {
  it('matches oclif.manifest.json (run `npm run docs` when this fails)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as Manifest
    assert.equal(withCommandReference(readme, renderCommandReference(manifest)), readme)
  })

  it('lists every visible command once', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as Manifest
    const table = renderCommandReference(manifest)
    for (const c of Object.values(manifest.commands)) {
      if (c.hidden) continue
      assert.equal(table.split('\n').filter((l) => l.startsWith('| `hoop ' + c.id.replace(/:/g, ' '))).length >= 1, true, c.id)
    }
  })
})
