// `hoop audit verify --live --anchor` as an auditor runs it (the built CLI): the tail deleted with
// the checkpoints that cover it, and an event forged with the chain recomputed and every checkpoint
// deleted, both pass without an anchor and fail (exit 19, the record named) with the witness file.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {AuditLog} from '../../../src/audit/log.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {forge, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'
import {built, hoop} from './_cli.js'

describe('hoop audit verify --live --anchor (built CLI)', function () {
  this.timeout(60_000)
  before(function () {
    if (!built('audit/verify')) this.skip()
  })

  async function store(dir: string): Promise<{witness: string; key: string}> {
    const witness = join(dir, 'witness', 'w.jsonl')
    const s = new SqliteStore(dir)
    const log = AuditLog.open({db: s.db, dataDir: dir, checkpointEvery: {events: 8, ms: 0}, anchors: {witness}})
    for (let i = 0; i < 4; i++) for (const e of sampleEvents(`ses_${String(i).repeat(12)}`)) await log.append(e)
    await log.close()
    s.close()
    const key = join(dir, 'gw.pem')
    writeFileSync(key, log.publicKeyPem())
    return {witness, key}
  }

  it('the tail deleted with its checkpoints', async () => {
    const t = tempDir()
    try {
      const {witness, key} = await store(t.dir)
      const s = new SqliteStore(t.dir)
      s.db.prepare('DELETE FROM audit_events WHERE seq > 19').run()
      s.db.prepare('DELETE FROM audit_checkpoints WHERE tree_size > 19').run()
      s.close()
      const alone = hoop('audit', 'verify', '--live', '--data-dir', t.dir, '--public-key', key)
      assert.equal(alone.code, 0, 'nothing in the store says so: ' + alone.out + alone.err)
      const r = hoop('audit', 'verify', '--live', '--data-dir', t.dir, '--public-key', key, '--anchor', witness)
      assert.equal(r.code, 19, r.out + r.err)
      assert.match(r.out, /first bad record: event seq 20: missing: the tree head of size 32 .* but the store ends at seq 19: the store was rolled back or truncated/)
    } finally {
      t.cleanup()
    }
  })

  it('an event forged with the chain recomputed and every checkpoint deleted', async () => {
    const t = tempDir()
    try {
      const {witness, key} = await store(t.dir)
      const s = new SqliteStore(t.dir)
      forge(s.db, 21, (e) => {
        e.data.text = 'SELECT 1'
      })
      s.db.prepare('DELETE FROM audit_checkpoints').run()
      s.close()
      assert.equal(hoop('audit', 'verify', '--live', '--data-dir', t.dir, '--public-key', key).code, 0)
      const r = hoop('audit', 'verify', '--live', '--data-dir', t.dir, '--public-key', key, '--anchor', witness, '--json')
      assert.equal(r.code, 19, r.out + r.err)
      const out = JSON.parse(r.out) as {first: {record: string; reason: string}; anchors: {tree_size: number; result: string}[]}
      assert.equal(out.first.record, 'events seq 17..24')
      assert.match(out.first.reason, /rewritten/)
      assert.ok(out.anchors.some((a) => a.result === 'failed'))
    } finally {
      t.cleanup()
    }
  })
})
