// CPU per recorded chunk of the SQLite session recorder (src/audit/recorder.ts + recording-writer.ts),
// in process: SESSIONS sessions each recording a 60 B query and a 140 B result per turn (a `tcp`
// session under pgbench -S), the queue written every BATCH chunks (what BATCH_MS gives at ~10k
// chunks/s), and how long those writes hold the thread (on the gateway: its event loop).
// NOCKPT=1 turns SQLite's WAL auto-checkpoint off, to tell checkpoints from plain WAL writes.
// Usage: node --import tsx bench/recording-cpu.ts [ROOT=.] [CHUNKS=200000]
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

const root = resolve(process.argv[2] ?? '.')
const chunks = Number(process.argv[3] ?? 200_000)
const SESSIONS = 8
const BATCH = Number(process.env.BATCH ?? 100)
const {SqliteStore} = (await import(join(root, 'src/store/sqlite.ts'))) as typeof import('../src/store/sqlite.js')
const {SessionRecorder, flushRecordings} = (await import(join(root, 'src/audit/index.ts'))) as typeof import('../src/audit/index.js')
const dir = mkdtempSync(join(tmpdir(), 'hoop-rec-cpu-'))
const store = new SqliteStore(dir)
const db = store.db
if (process.env.NOCKPT) db.pragma('wal_autocheckpoint = 0')
const query = Buffer.alloc(60, 0x51)
const result = Buffer.alloc(140, 0x54)
const recs = Array.from({length: SESSIONS}, (_, i) => new SessionRecorder({db, sessionId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, connection: 'bench', connectionType: 'tcp'}))
let flushMs = 0
const slow: number[] = []
const c0 = process.cpuUsage()
const t0 = performance.now()
for (let n = 0; n < chunks; n += 2) {
  const r = recs[(n / 2) % SESSIONS]
  r.record('client', 'bytes', query)
  r.record('server', 'bytes', result)
  if (n % BATCH === 0) {
    const f0 = performance.now()
    flushRecordings(db)
    const f = performance.now() - f0
    flushMs += f
    if (f > 1) slow.push(f)
  }
}
const sums = recs.map((r) => r.finish())
const c = process.cpuUsage(c0)
console.log(`${root.split('/').pop()}: ${chunks} chunks, ${((c.user + c.system) / chunks).toFixed(2)} µs CPU per chunk (user ${(c.user / chunks).toFixed(2)}, sys ${(c.system / chunks).toFixed(2)}), ${((performance.now() - t0) * 1000 / chunks).toFixed(2)} µs wall; stored ${sums.reduce((a, s) => a + s.chunks, 0)}`)
console.log(`  flushes: ${flushMs.toFixed(0)} ms in all, ${slow.length} over 1 ms (${slow.reduce((a, b) => a + b, 0).toFixed(0)} ms, max ${Math.max(0, ...slow).toFixed(1)} ms)`)
await store.close()
rmSync(dir, {recursive: true, force: true})
