// CPU per GB of the PostgreSQL engine on the COPY TO path, in one process: the engine (gate,
// the bench's full policy with its mask rule, analysis, masking, the session recording on an
// in-memory SQLite store; no audit, no relay) between psql (its own process, output to
// /dev/null) and the bench database. Reports this process's CPU (user + sys) per GB of COPY text:
// the socket reads and writes are the same for every build, so a difference between two builds
// is the engine's. Without the relay and its three event loops, it is far less noisy than the
// network bench on a shared machine.
// Usage: node --import tsx bench/engine-copy-cpu.ts [ROOT=.] [TABLE=bench_copy_1000mb] [ROUNDS=3] [COPY-SQL]
// ROOT may be another checkout (same engine API) to compare builds side by side, or `pipe`: the
// same sockets piped to each other with no engine (the floor). COPY-SQL replaces
// `COPY TABLE TO STDOUT` (e.g. a query whose rows are masked).
import {execFile} from 'node:child_process'
import {readFileSync} from 'node:fs'
import * as net from 'node:net'
import {resolve} from 'node:path'
import {promisify} from 'node:util'
import Database from 'better-sqlite3'
import {BENCH_IDENTITY, engineAt} from './lib/engine-root.js'

const pipeOnly = process.argv[2] === 'pipe'
const root = resolve(pipeOnly ? '.' : (process.argv[2] ?? '.'))
const table = process.argv[3] ?? 'bench_copy_1000mb'
const rounds = Number(process.argv[4] ?? 3)
const sql = process.argv[5] ?? `COPY ${table} TO STDOUT`
const {src, gate, runPgSession, silentLogger, policy: benchPolicy} = await engineAt(root)
const {SessionRecorder} = await src('audit/recorder.ts')
const {pgAnalysis} = await src('gateway/sql-analysis.ts')

const policy = benchPolicy(
  `  - {id: no-server-side-programs, match: {copyProgram: true}, effect: block}
  - {id: pii, connections: [pg], effect: mask, mask: {columns: ["public.customers.email", "public.customers.phone", "public.customers.card_number", "*.ssn"]}}
`,
  'engine-copy-cpu.yaml',
)
const identity = BENCH_IDENTITY
const db = new Database(':memory:')
let sessions = 0

const server = net.createServer(async (client) => {
  if (pipeOnly) {
    const up = net.connect(5432, '127.0.0.1')
    client.pipe(up).pipe(client)
    return
  }
  const a = pgAnalysis()
  const recorder = new SessionRecorder({db, sessionId: `s${++sessions}`})
  const hooks = gate.policyHooks({session: 's', identity, connection: {name: 'pg', type: 'postgres'}, policy: () => policy, analyze: a.analyze, describe: (s: string) => s, logger: silentLogger, protocol: 'postgres', recorder, recordExchange: 'results'})
  const upstream = async () => net.connect(5432, '127.0.0.1')
  await runPgSession({client, openUpstream: upstream, target: {host: '127.0.0.1', tls: {mode: 'disable'}}, gate: new gate.StatementGate(hooks, silentLogger), logger: silentLogger, parses: a.parses, prepared: a.prepared})
  recorder.finish()
})
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
const port = (server.address() as net.AddressInfo).port
const psql = (q: string) => promisify(execFile)('sh', ['-c', `psql "host=127.0.0.1 port=${port} user=postgres dbname=hoop_bench sslmode=disable" -X -q -v ON_ERROR_STOP=1 -c "${q}" | wc -c`], {maxBuffer: 1 << 20})
await psql('SELECT 1') // warm-up: JIT, catalog
/** Read and write syscalls of this process so far (Linux /proc). */
const syscalls = () => {
  const io = readFileSync('/proc/self/io', 'utf8')
  return Number(/syscr: (\d+)/.exec(io)![1]) + Number(/syscw: (\d+)/.exec(io)![1])
}
for (let r = 0; r < rounds; r++) {
  const calls = syscalls()
  const cpu = process.cpuUsage()
  const wall = process.hrtime.bigint()
  const bytes = Number((await psql(sql)).stdout.trim())
  const d = process.cpuUsage(cpu)
  const s = Number(process.hrtime.bigint() - wall) / 1e9
  const gb = bytes / 1e9
  console.log(`${pipeOnly ? 'pipe' : root}: ${(bytes / 1e6).toFixed(0)} MB, ${((d.user + d.system) / 1e6 / gb).toFixed(2)} CPU s/GB (user ${(d.user / 1e6 / gb).toFixed(2)}), ${((syscalls() - calls) / gb / 1000).toFixed(0)}k read/write syscalls per GB, ${(bytes / 1e6 / s).toFixed(0)} MB/s wall`)
}
server.close()
