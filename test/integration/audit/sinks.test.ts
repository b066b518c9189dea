// Sinks against real parts: a local HTTP server that fails the first attempts, and a JSONL file.
import assert from 'node:assert/strict'
import {createServer, type IncomingMessage} from 'node:http'
import type {AddressInfo} from 'node:net'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {AuditLog} from '../../../src/audit/log.js'
import {JsonlFileSink, WebhookSink} from '../../../src/audit/sinks.js'
import {openDb, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = ''
    req.on('data', (d) => (s += d))
    req.on('end', () => resolve(s))
  })
}

describe('audit sinks', () => {
  it('webhook: retries with back-off until the SIEM accepts, then delivers every event once, in order; file sink mirrors the log', async () => {
    const t = tempDir()
    let attempts = 0
    const received: string[] = []
    const server = createServer(async (req, res) => {
      const text = await body(req)
      attempts++
      if (attempts <= 2) {
        res.writeHead(503).end('busy')
        return
      }
      assert.equal(req.headers['content-type'], 'application/x-ndjson')
      assert.equal(req.headers.authorization, 'Bearer siem-token')
      received.push(...text.split('\n').filter(Boolean))
      res.writeHead(204).end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`
    const db = openDb(t.dir)
    try {
      const file = join(t.dir, 'audit.jsonl')
      const log = AuditLog.open({
        db,
        dataDir: t.dir,
        sinks: [new WebhookSink({url, headers: {authorization: 'Bearer siem-token'}}), new JsonlFileSink(file)],
        sinkBackoff: {baseMs: 20, maxMs: 200, batchSize: 5},
      })
      const evs = [...sampleEvents(), ...sampleEvents('ses_BBBBBBBBBBBB')]
      for (const e of evs) await log.append(e)
      assert.equal(await log.drainSinks(10_000), true)
      assert.ok(attempts >= 3, 'failed attempts were retried')
      assert.deepEqual(received.map((l) => JSON.parse(l).seq), evs.map((_, i) => i + 1))
      assert.deepEqual(readFileSync(file, 'utf8').split('\n').filter(Boolean), received)
      const status = log.sinkStatus()
      assert.ok(status.every((s) => s.position === evs.length && s.attempts === 0))
      await log.close()
      // Cursors are durable: a reopened log does not resend.
      const before = received.length
      const log2 = AuditLog.open({db, dataDir: t.dir, sinks: [new WebhookSink({url, headers: {authorization: 'Bearer siem-token'}})]})
      await log2.append(sampleEvents()[0])
      await log2.drainSinks(5_000)
      assert.equal(received.length, before + 1)
      await log2.close()
    } finally {
      db.close()
      await new Promise((r) => server.close(r))
      t.cleanup()
    }
  })
})
