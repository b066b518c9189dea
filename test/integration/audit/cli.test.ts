// Export -> verify round trip through the built CLI (`node bin/run.js ...`), as an auditor runs it.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {AuditLog} from '../../../src/audit/log.js'
import {SessionRecorder} from '../../../src/audit/recorder.js'
import {readTarGz, TarGzWriter} from '../../../src/audit/tar.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {alice, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'
import {built, hoop} from './_cli.js'

describe('hoop audit / sessions commands (built CLI)', function () {
  before(function () {
    if (!built('audit/export')) this.skip()
  })

  it('export, key, verify (ok and tampered), verify --live, sessions list/show', async () => {
    const t = tempDir()
    try {
      const store = new SqliteStore(t.dir)
      const log = AuditLog.open({db: store.db, dataDir: t.dir, checkpointEvery: {events: 4, ms: 0}})
      for (const e of sampleEvents()) await log.append(e)
      await store.startSession({id: 'ses_AAAAAAAAAAAA', subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: new Date().toISOString()})
      const rec = new SessionRecorder({db: store.db, sessionId: 'ses_AAAAAAAAAAAA', connection: 'prod-db'})
      rec.record('client', 'statement', 'SELECT 1')
      rec.finish()
      await log.close()
      store.close()

      const pkg = join(t.dir, 'evidence.tar.gz')
      const ex = hoop('audit', 'export', '--data-dir', t.dir, '--out', pkg, '--json')
      assert.equal(ex.code, 0, ex.err)
      assert.equal(JSON.parse(ex.out).events, 8)

      const key = hoop('audit', 'key', '--data-dir', t.dir)
      assert.equal(key.code, 0, key.err)
      assert.match(key.out, /BEGIN PUBLIC KEY/)
      const keyFile = join(t.dir, 'gw.pem')
      writeFileSync(keyFile, key.out)

      const ok = hoop('audit', 'verify', pkg, '--public-key', keyFile)
      assert.equal(ok.code, 0, ok.out + ok.err)
      assert.match(ok.out, /^OK package .* verifies: 8 events/m)

      // Edit one event in the package.
      const files: [string, Buffer][] = []
      await readTarGz(pkg, () => {
        const parts: Buffer[] = []
        return {data: (c) => parts.push(Buffer.from(c)), end: () => files.push(['', Buffer.concat(parts)])}
      })
      const names: string[] = []
      await readTarGz(pkg, (n) => (names.push(n), {data() {}, end() {}}))
      const bad = join(t.dir, 'bad.tar.gz')
      const tar = new TarGzWriter(bad)
      for (let i = 0; i < names.length; i++) {
        const data = names[i].endsWith('/events.jsonl') ? Buffer.from(files[i][1].toString().replace('DROP TABLE users', 'SELECT 1')) : files[i][1]
        await tar.addBuffer(names[i], data)
      }
      await tar.finish()
      const fail = hoop('audit', 'verify', bad, '--public-key', keyFile)
      assert.equal(fail.code, 19, fail.out + fail.err)
      assert.match(fail.out + fail.err, /first bad record: event seq 7:/)
      const failJson = hoop('audit', 'verify', bad, '--public-key', keyFile, '--json')
      assert.equal(failJson.code, 19, failJson.out + failJson.err)
      assert.equal(JSON.parse(failJson.out).first.record, 'event seq 7')

      const live = hoop('audit', 'verify', '--live', '--data-dir', t.dir, '--public-key', keyFile, '--json')
      assert.equal(live.code, 0, live.out + live.err)
      assert.equal(JSON.parse(live.out).events, 8)

      const list = hoop('sessions', 'list', '--data-dir', t.dir, '--json')
      assert.equal(list.code, 0, list.err)
      assert.equal(JSON.parse(list.out)[0].recording.chunks, 1)
      const show = hoop('sessions', 'show', 'ses_AAAAAAAAAAAA', '--data-dir', t.dir)
      assert.equal(show.code, 0, show.err)
      assert.match(show.out, /> statement\n {4}SELECT 1/)
    } finally {
      t.cleanup()
    }
  })
})
