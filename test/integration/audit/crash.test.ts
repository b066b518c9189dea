// kill -9 of a process appending to the audit log: after reopening, the log verifies and every
// append that was acknowledged before the kill is present.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {AuditLog} from '../../../src/audit/log.js'
import {verifyLive} from '../../../src/audit/verify.js'
import {openDb, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'

const child = fileURLToPath(new URL('./_crash-child.ts', import.meta.url))

describe('audit log crash safety', () => {
  it('SIGKILL during a busy append loop loses nothing acknowledged and the log verifies', async () => {
    const t = tempDir()
    try {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, t.dir], {stdio: ['ignore', 'pipe', 'inherit']})
      let out = ''
      let acked = 0
      await new Promise<void>((resolve, reject) => {
        proc.on('error', reject)
        proc.on('exit', (code) => reject(new Error(`child exited early with ${code}`)))
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          const seqs = out.split('\n').filter(Boolean)
          acked = Number(seqs.at(-1))
          if (seqs.length >= 3000) resolve()
        })
      })
      proc.removeAllListeners('exit')
      const exited = new Promise((r) => proc.on('exit', r))
      proc.kill('SIGKILL')
      await exited
      // Anything printed before the kill was acknowledged (resolved) before it.
      const lines = out.split('\n').filter(Boolean).map(Number)
      acked = Math.max(...lines)
      const db = openDb(t.dir)
      const present = new Set((db.prepare('SELECT seq FROM audit_events').all() as {seq: number}[]).map((r) => r.seq))
      for (const s of lines) assert.ok(present.has(s), `acknowledged seq ${s} is present`)
      assert.ok(present.size >= acked)
      const r = verifyLive(db)
      assert.equal(r.ok, true, JSON.stringify(r.first))
      // The writer resumes the chain after the crash.
      const log = AuditLog.open({db, dataDir: t.dir})
      const next = await log.append(sampleEvents()[0])
      assert.equal(next.seq, present.size + 1)
      await log.close()
      assert.equal(verifyLive(db).ok, true)
      db.close()
    } finally {
      t.cleanup()
    }
  })
})
