// A forged package through the built CLI, as an auditor runs it: exit 19 and the entry named,
// never a stack trace (a non-JSON --previous used to end in an uncaught SyntaxError, exit 1).
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {exportEvidence} from '../../../src/audit/export.js'
import {AuditLog} from '../../../src/audit/log.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {sampleEvents, tempDir} from '../../unit/audit/_helpers.js'
import {readPackage, rootOf, writePackage} from '../../unit/audit/_tar.js'
import {built, hoop} from './_cli.js'

describe('hoop audit verify on forged packages (built CLI)', function () {
  before(function () {
    if (!built('audit/verify')) this.skip()
  })

  it('a symbolic link replacing a report, and a non-JSON --previous: exit 19, named', async () => {
    const t = tempDir()
    try {
      const store = new SqliteStore(t.dir)
      const log = AuditLog.open({db: store.db, dataDir: t.dir, checkpointEvery: {events: 4, ms: 0}})
      for (const e of sampleEvents()) await log.append(e)
      await log.close()
      const pkg = join(t.dir, 'evidence.tar.gz')
      await exportEvidence({db: store.db, dataDir: t.dir, out: pkg})
      store.close()
      const keyFile = join(t.dir, 'gw.pem')
      writeFileSync(keyFile, log.publicKeyPem())

      const entries = readPackage(pkg)
      const name = `${rootOf(entries)}/reports/approvals.csv`
      const forged = writePackage(join(t.dir, 'forged.tar.gz'), [...entries, {name, data: Buffer.alloc(0), type: '2', linkname: '/tmp/forged.csv'}])
      const v = hoop('audit', 'verify', forged, '--public-key', keyFile)
      assert.equal(v.code, 19, v.out + v.err)
      assert.ok(v.out.includes(`first bad record: tar entry "${name}": is a symbolic link (tar type '2') to "/tmp/forged.csv": only regular files are allowed`), v.out)

      const prev = join(t.dir, 'previous.json')
      writeFileSync(prev, 'not json\n')
      const p = hoop('audit', 'verify', pkg, '--public-key', keyFile, '--previous', prev, '--json')
      assert.equal(p.code, 19, p.out + p.err)
      assert.equal(JSON.parse(p.out).first.record, 'earlier tree head (--previous)')
    } finally {
      t.cleanup()
    }
  })
})
