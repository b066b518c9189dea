// CPU per statement of the PostgreSQL engine's enforced path, in one process: the engine (gate,
// policy with the bench's guardrails and mask rule, analysis, masking; no audit, no relay) between
// a pg client and the bench database, sending pgbench -S's statement (simple protocol, a new aid
// each time). Reports this process's CPU (user + sys) per statement: the client's share is the same
// for every build, so a difference between two builds is the engine's.
// Usage: node --import tsx bench/engine-cpu.ts [ROOT=.] [N=5000]   (after `npm run bench` made hoop_bench)
// ROOT may be another checkout (same engine API) to compare builds side by side.
import {existsSync} from 'node:fs'
import * as net from 'node:net'
import {resolve} from 'node:path'
import pg from 'pg'
import {BENCH_IDENTITY, engineAt} from './lib/engine-root.js'

const root = resolve(process.argv[2] ?? '.')
const n = Number(process.argv[3] ?? 5000)
const {src, gate, runPgSession, silentLogger, policy: benchPolicy} = await engineAt(root)

const policy = benchPolicy(
  `  - {id: no-drop, match: {kinds: [drop, truncate]}, effect: block}
  - {id: unbounded-writes, match: {kinds: [update, delete], where: absent}, effect: block}
  - {id: no-server-side-programs, match: {copyProgram: true}, effect: block}
  - {id: no-slow-or-file-functions, match: {functions: ["pg_sleep*", "pg_read_*", "dblink*", "lo_import", "lo_export"]}, effect: block}
  - {id: pii, connections: [pg], effect: mask, mask: {columns: ["public.customers.email", "public.customers.phone", "public.customers.card_number", "*.ssn"]}}
`,
  'engine-cpu.yaml',
)
const identity = BENCH_IDENTITY

/** The analysers' session wiring: the gateway's own (sql-analysis.ts), or, in a checkout before it, what sessions.ts did. */
async function wiring(): Promise<{analyze: (sql: string) => unknown; engine: object}> {
  if (existsSync(`${root}/src/gateway/sql-analysis.ts`)) {
    const a = (await src('gateway/sql-analysis.ts')).pgAnalysis()
    return {analyze: a.analyze, engine: {parses: a.parses, prepared: a.prepared}}
  }
  const {analyzePostgres} = await src('sql/pg-analyze.ts')
  const prepared = new Map()
  return {analyze: (sql) => analyzePostgres(sql, {prepared}), engine: {}}
}

const server = net.createServer(async (client) => {
  const w = await wiring()
  const hooks = gate.policyHooks({session: 's', identity, connection: {name: 'pg', type: 'postgres'}, policy: () => policy, analyze: w.analyze, describe: (s: string) => s, logger: silentLogger, protocol: 'postgres'})
  const upstream = async () => net.connect(5432, '127.0.0.1')
  await runPgSession({client, openUpstream: upstream, target: {host: '127.0.0.1', tls: {mode: 'disable'}}, gate: new gate.StatementGate(hooks, silentLogger), logger: silentLogger, ...w.engine})
})
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
const c = new pg.Client({host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, user: 'postgres', database: 'hoop_bench'})
await c.connect()
const statement = (i: number) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${1 + ((i * 7919) % 100_000)};`
for (let i = 0; i < 500; i++) await c.query(statement(i)) // warm-up: JIT, catalog
const cpu = process.cpuUsage()
const wall = process.hrtime.bigint()
for (let i = 0; i < n; i++) await c.query(statement(i))
const d = process.cpuUsage(cpu)
const us = Number(process.hrtime.bigint() - wall) / 1000
console.log(`${root}: ${((d.user + d.system) / n).toFixed(1)} µs CPU per statement (user ${(d.user / n).toFixed(1)}), ${(us / n).toFixed(0)} µs wall`)
await c.end()
server.close()
