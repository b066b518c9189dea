// Sinks are outside anchors too: once a sink has every event a signed tree head covers, it gets the
// head, so a JSONL sink's file is itself a witness `verify --anchor` accepts.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {createServer, type IncomingMessage} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import {readAnchorFiles} from '../../../src/audit/anchor-check.js'
import {AuditLog} from '../../../src/audit/log.js'
import {JsonlFileSink, WebhookSink} from '../../../src/audit/sinks.js'
import {VERIFY_LIMITS, verifyLive} from '../../../src/audit/verify.js'
import {openDb, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'

async function body(req: IncomingMessage): Promise<string> {
  let s = ''
  for await (const c of req) s += String(c)
  return s
}

describe('audit sinks: signed tree heads', () => {
  it('each sink gets each head after its events (webhook: marked by a header); the file sink is a witness', async () => {
    const t = tempDir()
    const heads: number[] = []
    let events = 0
    const server = createServer(async (req, res) => {
      const text = await body(req)
      if (req.headers['x-hoop-audit-tree-head']) {
        const line = JSON.parse(text) as {tree_head: {tree_size: number}}
        assert.equal(String(line.tree_head.tree_size), req.headers['x-hoop-audit-tree-head'])
        assert.ok(events >= line.tree_head.tree_size, 'a head arrives after the events it covers')
        heads.push(line.tree_head.tree_size)
      } else events += text.split('\n').filter(Boolean).length
      res.writeHead(204).end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const db = openDb(t.dir)
    try {
      const file = join(t.dir, 'siem.jsonl')
      const log = AuditLog.open({
        db,
        dataDir: t.dir,
        checkpointEvery: {events: 8, ms: 0},
        sinks: [new WebhookSink({url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`}), new JsonlFileSink(file)],
        sinkBackoff: {baseMs: 10, maxMs: 50, batchSize: 5},
      })
      for (const e of [...sampleEvents('ses_AAAAAAAAAAAA'), ...sampleEvents('ses_BBBBBBBBBBBB')]) await log.append(e)
      await log.close()
      assert.equal(events, 16)
      assert.equal(heads.at(-1), 16)
      const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as {seq?: number; tree_head?: {tree_size: number}})
      assert.equal(lines.filter((l) => l.seq).length, 16)
      assert.equal(lines.at(-1)!.tree_head?.tree_size, 16)
      const published = db.prepare("SELECT DISTINCT target FROM audit_anchors WHERE kind = 'sink' AND tree_size = 16").all() as {target: string}[]
      assert.equal(published.length, 2)
      // The sink's own file, events and all, as the auditor's anchor.
      const r = verifyLive(db, {publicKey: log.publicKeyPem(), anchors: await readAnchorFiles([file], VERIFY_LIMITS)})
      assert.equal(r.ok, true, JSON.stringify(r.failures))
      assert.equal(r.anchors![0].tree_size, 16)
      db.prepare('DELETE FROM audit_events WHERE seq > 12').run()
      db.prepare('DELETE FROM audit_checkpoints WHERE tree_size > 12').run()
      const cut = verifyLive(db, {publicKey: log.publicKeyPem(), anchors: await readAnchorFiles([file], VERIFY_LIMITS)})
      assert.equal(cut.first?.record, 'event seq 13')
    } finally {
      db.close()
      await new Promise((r) => server.close(r))
      t.cleanup()
    }
  })
})
