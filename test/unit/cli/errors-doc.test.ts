// Every error code the CLI can exit with is documented in docs/errors.md with its exit code.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {ERROR_CODES} from '../../../src/shared/errors.js'
import {ROOT} from '../../helpers/cli.js'

describe('docs/errors.md', () => {
  it('documents every error code on the row of its exit code', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8')
    for (const [code, {exit}] of Object.entries(ERROR_CODES)) {
      const row = doc.split('\n').find((l) => l.includes('`' + code + '`'))
      assert.ok(row, `${code} is not documented`)
      assert.ok(row.startsWith(`| ${exit} |`), `${code} documented with the wrong exit code: ${row}`)
    }
  })
})
