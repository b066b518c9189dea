// `hoop audit hold`, `hoop audit erase` and `hoop audit verify` on a data dir, as an operator and an
// auditor run them: the erasure is recorded and named, a held connection's payloads are kept.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {AuditLog} from '../../../src/audit/log.js'
import {bob, openDb, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'
import {built, hoop} from './_cli.js'

describe('hoop audit erase / hold (built CLI)', function () {
  before(function () {
    if (!built('audit/erase')) this.skip()
  })

  it('erase a session (held connection kept), then verify --live and the package name the erasure', async () => {
    const t = tempDir()
    try {
      const db = openDb(t.dir)
      const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
      for (const e of [...sampleEvents('ses_AAAAAAAAAAAA'), ...sampleEvents('ses_BBBBBBBBBBBB', bob, 'billing-db')]) await log.append(e)
      await log.close()
      db.close()

      const held = JSON.parse(hoop('audit', 'hold', '--connection', 'prod-db', '--reason', 'litigation', '--data-dir', t.dir, '--json').out) as {action: string; holds: unknown[]}
      assert.equal(held.action, 'place')
      assert.equal(held.holds.length, 1)
      const kept = JSON.parse(hoop('audit', 'erase', '--session', 'ses_AAAAAAAAAAAA', '--reason', 'request', '--data-dir', t.dir, '--json').out) as {removed: number; held: number}
      assert.deepEqual([kept.removed, kept.held], [0, 4])
      const r = hoop('audit', 'erase', '--session', 'ses_BBBBBBBBBBBB', '--reason', 'GDPR request #12', '--data-dir', t.dir, '--json')
      assert.equal(r.code, 0, r.err)
      assert.equal((JSON.parse(r.out) as {removed: number}).removed, 4)
      assert.notEqual(hoop('audit', 'erase', '--reason', 'x', '--data-dir', t.dir).code, 0)

      // The gateway (here: the log opened on the data dir) appends the pending erasure event.
      const db2 = openDb(t.dir)
      const log2 = AuditLog.open({db: db2, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
      await log2.absorbPendingNow()
      await log2.close()
      db2.close()

      const v = hoop('audit', 'verify', '--live', '--data-dir', t.dir)
      assert.equal(v.code, 0, v.out + v.err)
      assert.match(v.out, /payload erased on \d{4}-\d\d-\d\d \(event seq \d+\), session ses_BBBBBBBBBBBB: GDPR request #12/)
      const out = join(t.dir, 'p.tar.gz')
      assert.equal(hoop('audit', 'export', '--out', out, '--data-dir', t.dir).code, 0)
      const p = hoop('audit', 'verify', out, '--json')
      assert.equal(p.code, 0, p.out)
      assert.equal((JSON.parse(p.out) as {payloads: {erased: number}}).payloads.erased, 4)
    } finally {
      t.cleanup()
    }
  })
})
