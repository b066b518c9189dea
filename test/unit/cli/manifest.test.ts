// The committed oclif.manifest.json must describe exactly the commands in commands/ (compiled to
// dist/commands by `npm run build`): ids, summaries, flags and args. Regenerate with
// `npm run build && npx oclif manifest` when this fails.
import assert from 'node:assert/strict'
import {readFileSync, readdirSync, statSync} from 'node:fs'
import {join, relative, sep} from 'node:path'
import {pathToFileURL} from 'node:url'
import {ROOT} from '../../helpers/cli.js'

interface ManifestCommand {
  summary?: string
  flags: Record<string, unknown>
  args: Record<string, unknown>
}

function compiledCommands(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return compiledCommands(p)
    return name.endsWith('.js') ? [p] : []
  })
}

describe('oclif manifest', () => {
  it('is fresh: every command, flag and arg in commands/ is in the committed manifest', async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, ManifestCommand>}
    const distDir = join(ROOT, 'dist', 'commands')
    const sources = readdirSync(join(ROOT, 'commands'), {recursive: true}).filter((f) => String(f).endsWith('.ts'))
    const files = compiledCommands(distDir)
    assert.equal(files.length, sources.length, 'dist/commands is out of date: run `npm run build`')
    const ids: string[] = []
    for (const file of files) {
      const id = relative(distDir, file).replace(/\.js$/, '').split(sep).join(':')
      ids.push(id)
      const mod = (await import(pathToFileURL(file).href)) as {default: {summary?: string; flags?: Record<string, unknown>; baseFlags?: Record<string, unknown>; args?: Record<string, unknown>}}
      const entry = manifest.commands[id]
      assert.ok(entry, `command "${id}" is missing from oclif.manifest.json`)
      assert.equal(entry.summary, mod.default.summary, `summary of "${id}" is stale`)
      const flags = Object.keys({...mod.default.baseFlags, ...mod.default.flags}).sort()
      assert.deepEqual(Object.keys(entry.flags).filter((f) => f !== 'json').sort(), flags.filter((f) => f !== 'json'), `flags of "${id}" are stale`)
      assert.deepEqual(Object.keys(entry.args).sort(), Object.keys(mod.default.args ?? {}).sort(), `args of "${id}" are stale`)
    }
    assert.deepEqual(Object.keys(manifest.commands).sort(), ids.sort(), 'manifest lists commands that no longer exist')
  })
})
