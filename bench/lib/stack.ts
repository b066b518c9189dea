// What the benchmark runs against: the tools (pgbench, socat, psql), the dedicated `hoop_bench`
// database with its tables, and the paths to it: (a) direct, (b) a chain of socat relays with the
// hoop path's hop count, and hoop connect -> gateway -> agent in the issue 15 decomposition: a
// `tcp` connection (the relay alone, no engine), a `postgres` connection under an allow-only rule,
// and one under the full policy (guardrails + mask), each through a gateway with the default
// durability (fsync) and one with `audit.durability: os`.
import {mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, readdirSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {freePort, must, type Proc, ROOT, sh, startHoop, startRelayChain} from './procs.js'

export const PG = {host: '127.0.0.1', port: 5432, user: 'postgres', database: 'hoop_bench'}
/** connect -> gateway -> agent: three relaying processes, as in the socat chain. */
export const HOPS = 3

export function conninfo(port: number, database = PG.database): string {
  return `host=127.0.0.1 port=${port} user=${PG.user} dbname=${database} sslmode=disable`
}

/** Finds pgbench, socat and psql; installs what is missing with apt (Debian). */
export async function ensureTools(log: (s: string) => void): Promise<{pgbench: string}> {
  const find = async () => {
    const r = await sh('command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1')
    return r.stdout.trim().split('\n')[0] ?? ''
  }
  let pgbench = await find()
  const missing: string[] = []
  if (!pgbench) missing.push('postgresql-client')
  if ((await sh('command -v socat')).code !== 0) missing.push('socat')
  if ((await sh('command -v psql')).code !== 0 && !missing.includes('postgresql-client')) missing.push('postgresql-client')
  if (missing.length) {
    log(`installing ${missing.join(', ')} with apt-get`)
    const sudo = process.getuid?.() === 0 ? '' : 'sudo '
    await must(`${sudo}apt-get install -y -qq ${missing.join(' ')} >/dev/null 2>&1 || (${sudo}apt-get update -qq && ${sudo}apt-get install -y -qq ${missing.join(' ')} >/dev/null)`, {timeoutMs: 600_000})
    pgbench = await find()
  }
  if (!pgbench) throw new Error('pgbench not found after installing postgresql-client')
  return {pgbench}
}

/** Builds dist/ when any source file is newer than the build (the CLI runs from dist). */
export async function ensureBuilt(log: (s: string) => void): Promise<void> {
  const newest = (dir: string): number => {
    let t = 0
    for (const e of readdirSync(dir, {withFileTypes: true})) {
      const p = join(dir, e.name)
      if (e.isDirectory()) t = Math.max(t, newest(p))
      else if (e.name.endsWith('.ts') || e.name.endsWith('.js')) t = Math.max(t, statSync(p).mtimeMs)
    }
    return t
  }
  let built = 0
  try {
    built = newest(join(ROOT, 'dist'))
  } catch {
    built = 0
  }
  if (built >= Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'commands')))) return
  log('building dist/ (sources changed)')
  await must('npx tsc -p tsconfig.build.json', {timeoutMs: 300_000})
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
const psqlOn = (port: number, db: string, sql: string) => must(`psql "${conninfo(port, db)}" -X -A -t -v ON_ERROR_STOP=1 -c ${shellQuote(sql.replace(/\s+/g, ' '))}`)

/**
 * The bench database: pgbench tables at `scale`, a `customers` table with PII columns, and
 * `bench_copy` with about `copyBytes` of COPY text output. Reused when already the right size.
 */
export async function ensureDatabase(o: {pgbench: string; scale: number; copyBytes: number; log: (s: string) => void}): Promise<{copyTable: string; copyRows: number}> {
  const exists = await psqlOn(5432, 'postgres', `SELECT 1 FROM pg_database WHERE datname = '${PG.database}'`)
  if (exists.stdout.trim() !== '1') {
    o.log(`creating database ${PG.database}`)
    await must(`createdb -h 127.0.0.1 -U postgres ${PG.database}`)
  }
  const scale = await sh(`psql "${conninfo(5432)}" -X -A -t -c "SELECT count(*) FROM pgbench_branches"`)
  if (scale.code !== 0 || Number(scale.stdout.trim()) !== o.scale) {
    o.log(`pgbench -i -s ${o.scale}`)
    await must(`${o.pgbench} -i -q -s ${o.scale} "${conninfo(5432)}"`, {timeoutMs: 900_000})
  }
  const customers = await sh(`psql "${conninfo(5432)}" -X -A -t -c "SELECT count(*) FROM customers"`)
  if (customers.code !== 0 || Number(customers.stdout.trim()) !== 10000) {
    o.log('creating customers (PII columns)')
    await psqlOn(
      5432,
      PG.database,
      `DROP TABLE IF EXISTS customers; CREATE TABLE customers (id int PRIMARY KEY, name text, email text, phone text, card_number text, ssn text, note text);
       INSERT INTO customers SELECT g, 'Customer ' || g, 'user' || g || '@example.com', '+1 415 555 ' || lpad((g % 10000)::text, 4, '0'),
         '4111 1111 1111 1111', lpad((g % 1000)::text, 3, '0') || '-12-3456', 'order ' || g || ' shipped on time' FROM generate_series(1, 10000) g; ANALYZE customers;`,
    )
  }
  // hoop's event triggers (docs/sql/catalog-notify.sql), so that the gateway caches its catalog
  // look-ups as a deployment that installed them does; HOOP_BENCH_CATALOG_CACHE=off removes them.
  const triggers = await psqlOn(5432, PG.database, "SELECT count(*) FROM pg_event_trigger WHERE evtname IN ('hoop_catalog_ddl', 'hoop_catalog_drop')")
  const wantTriggers = process.env.HOOP_BENCH_CATALOG_CACHE !== 'off'
  if (wantTriggers && triggers.stdout.trim() !== '2') {
    o.log('installing the catalog-change event triggers (docs/sql/catalog-notify.sql)')
    await psqlOn(5432, PG.database, 'DROP EVENT TRIGGER IF EXISTS hoop_catalog_ddl; DROP EVENT TRIGGER IF EXISTS hoop_catalog_drop; DROP FUNCTION IF EXISTS public.hoop_catalog_changed()')
    await must(`psql "${conninfo(5432)}" -X -q -v ON_ERROR_STOP=1 -f ${shellQuote(join(ROOT, 'docs', 'sql', 'catalog-notify.sql'))}`)
  } else if (!wantTriggers && triggers.stdout.trim() !== '0') {
    o.log('removing the catalog-change event triggers (HOOP_BENCH_CATALOG_CACHE=off)')
    await psqlOn(5432, PG.database, 'DROP EVENT TRIGGER IF EXISTS hoop_catalog_ddl; DROP EVENT TRIGGER IF EXISTS hoop_catalog_drop; DROP FUNCTION IF EXISTS public.hoop_catalog_changed()')
  }
  // One text row of bench_copy is 8 (id) + 1 + 200 (payload) + 1 bytes on average.
  const rowBytes = 210
  const copyRows = Math.ceil(o.copyBytes / rowBytes)
  // One table per size, so quick and full runs do not rebuild each other's table.
  const copyTable = copyTableName(o.copyBytes)
  const have = await sh(`psql "${conninfo(5432)}" -X -A -t -c "SELECT count(*) FROM ${copyTable}"`)
  if (have.code !== 0 || Number(have.stdout.trim()) !== copyRows) {
    o.log(`creating ${copyTable} (${copyRows} rows, ~${Math.round(o.copyBytes / 1e6)} MB of COPY text)`)
    await psqlOn(
      5432,
      PG.database,
      `DROP TABLE IF EXISTS ${copyTable}; CREATE TABLE ${copyTable} (id bigint, payload text);
       INSERT INTO ${copyTable} SELECT g, rpad(md5(g::text), 200, md5((g+1)::text)) FROM generate_series(10000001, ${10000000 + copyRows}) g; ANALYZE ${copyTable};`,
    )
  }
  return {copyTable, copyRows}
}

export function copyTableName(bytes: number): string {
  return `bench_copy_${Math.round(bytes / 1e6)}mb`
}

/**
 * One gateway's configuration. `pg` is under the full policy (guardrails + mask), `pgallow` under
 * the allow rule alone, `pgtcp` and `echo` are `tcp` connections. HOOP_BENCH_AUDIT_MODE=strict
 * runs it with `audit.mode: strict` (default: the gateway's, hold); HOOP_BENCH_RECORDING_CAP=0 takes
 * session recording out of the path (to decompose its cost).
 */
export function gatewayYaml(echoPort: number, durability: 'fsync' | 'os', recordingCap = process.env.HOOP_BENCH_RECORDING_CAP): string {
  const cap = recordingCap !== undefined && /^\d+$/.test(recordingCap) ? `, recordingCap: ${recordingCap}` : ''
  const mode = process.env.HOOP_BENCH_AUDIT_MODE === 'strict' ? ', mode: strict' : ''
  const pg = (name: string) => `  - name: ${name}
    type: postgres
    target: 127.0.0.1:5432
    agent: bench-agent
    database: ${PG.database}
    username: postgres
`
  return `audit: {durability: ${durability}${mode}${cap}}
connections:
${pg('pg')}${pg('pgallow')}  - name: pgtcp
    type: tcp
    target: 127.0.0.1:5432
    agent: bench-agent
  - name: echo
    type: tcp
    target: 127.0.0.1:${echoPort}
    agent: bench-agent
policy:
  version: 1
  rules:
    - id: bench-access
      subjects: {groups: [bench]}
      connections: [pg, pgallow, pgtcp, echo]
      effect: allow
    - id: no-drop
      connections: [pg]
      match: {kinds: [drop, truncate]}
      effect: block
      message: DROP and TRUNCATE are not allowed through the gateway
    - id: unbounded-writes
      connections: [pg]
      match: {kinds: [update, delete], where: absent}
      effect: block
    - id: no-server-side-programs
      connections: [pg]
      match: {copyProgram: true}
      effect: block
    - id: no-slow-or-file-functions
      connections: [pg]
      match: {functions: ["pg_sleep*", "pg_read_*", "dblink*", "lo_import", "lo_export"]}
      effect: block
    - id: pii
      connections: [pg]
      effect: mask
      mask:
        columns: ["public.customers.email", "public.customers.phone", "public.customers.card_number", "*.ssn"]
`
}

/** A TCP echo server (the 1,000-session case: PostgreSQL allows only max_connections). */
export async function startEcho(): Promise<{port: number; server: Server; sockets: Set<Socket>}> {
  const sockets = new Set<Socket>()
  const server = createServer({noDelay: true}, (s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.once('close', () => sockets.delete(s))
    s.pipe(s)
  })
  server.maxConnections = 100_000
  await new Promise<void>((r) => server.listen({port: 0, host: '127.0.0.1', backlog: 4096}, r))
  return {port: (server.address() as {port: number}).port, server, sockets}
}

/** The ports of every path, by name (see net-cases.ts `Path`). */
export interface Stack {
  directPort: number
  relayPort: number
  /** `postgres`, full policy, default durability (fsync). */
  hoopPort: number
  /** `tcp` connection (relay only, no engine), default durability gateway. */
  tcpPort: number
  /** `postgres`, allow-only, `durability: os` gateway. */
  allowOsPort: number
  /** `postgres`, full policy, `durability: os` gateway. */
  fullOsPort: number
  echoHoopPort: number
  echoPort: number
  /** The default-durability gateway (the 1,000-session case samples its RSS). */
  gateway: Proc
  /** The processes of the default-durability paths (its gateway and agent, `hoop connect` of `pg` (hoop) and `pgtcp` (tcp)) and the socat chain's listeners. */
  procs: {gateway: Proc; agent: Proc; connectHoop: Proc; connectTcp: Proc; relays: Proc[]}
  close(): Promise<void>
}

async function startConnect(name: string, token: string, gateway: string, nodeArgs: string[] = []): Promise<{proc: Proc; port: number}> {
  const proc = startHoop(`connect-${name}`, ['connect', name, '--port', '0', '--json', '--gateway', gateway], {env: {HOOP_TOKEN: token}, nodeArgs})
  const m = await proc.waitFor(/\{"connection".*\}/)
  return {proc, port: (JSON.parse(m[0]) as {port: number}).port}
}

/** A gateway with its own data dir and agent; `connect(name)` opens `hoop connect name` through it. */
async function startGateway(dir: string, durability: 'fsync' | 'os', echoPort: number, nodeArgs: string[]) {
  const dataDir = join(dir, `data-${durability}`)
  mkdirSync(dataDir, {recursive: true})
  const secret = async (kind: string, name: string, group?: string) => {
    const r = await must(`node ${JSON.stringify(join(ROOT, 'bin', 'run.js'))} admin ${kind} create ${name} --data-dir ${JSON.stringify(dataDir)} --json${group ? ` --group ${group}` : ''}`)
    return (JSON.parse(r.stdout) as {token: string}).token
  }
  const agentToken = await secret('agents', 'bench-agent')
  const saToken = await secret('service-accounts', 'bench-client', 'bench')
  const configFile = join(dir, `gateway-${durability}.yaml`)
  writeFileSync(configFile, gatewayYaml(echoPort, durability))
  const gwPort = await freePort()
  const gateway = startHoop(`gateway-${durability}`, ['gateway', '--config', configFile, '--data-dir', dataDir, '--listen', `127.0.0.1:${gwPort}`, '--log-level', 'warn'], {nodeArgs})
  const procs: Proc[] = [gateway]
  await waitHttp(`http://127.0.0.1:${gwPort}/`, gateway)
  const url = `http://127.0.0.1:${gwPort}`
  const agent = startHoop(`agent-${durability}`, ['agent', '--gateway', url], {env: {HOOP_AGENT_TOKEN: agentToken}, nodeArgs})
  procs.push(agent)
  await agent.waitFor(/connected to gateway/)
  const connects = new Map<string, Proc>()
  return {
    gateway,
    agent,
    connects,
    async connect(name: string, profile = true): Promise<number> {
      const c = await startConnect(name, saToken, url, profile ? nodeArgs : [])
      procs.unshift(c.proc)
      connects.set(name, c.proc)
      return c.port
    },
    /** Connects first, then the agent, then the gateway. */
    async stop() {
      for (const p of procs) await p.stop()
    },
  }
}

/** Starts the socat chain and the hoop processes of every path (all under --cpu-prof when asked). */
export async function startStack(o: {cpuProfDir?: string; log: (s: string) => void}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-bench-'))
  const echo = await startEcho()
  const relay = await startRelayChain(HOPS, PG.port)
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : []
  // Started side by side: the bench's start-up is most of quick mode's fixed cost.
  const [fsync, os] = await Promise.all([startGateway(dir, 'fsync', echo.port, nodeArgs), startGateway(dir, 'os', echo.port, nodeArgs)])
  const [hoopPort, tcpPort, echoHoopPort, allowOsPort, fullOsPort] = await Promise.all([
    fsync.connect('pg'),
    fsync.connect('pgtcp'),
    fsync.connect('echo', false),
    os.connect('pgallow'),
    os.connect('pg'),
  ])
  return {
    directPort: PG.port,
    relayPort: relay.port,
    hoopPort,
    tcpPort,
    echoHoopPort,
    allowOsPort,
    fullOsPort,
    echoPort: echo.port,
    gateway: fsync.gateway,
    procs: {gateway: fsync.gateway, agent: fsync.agent, connectHoop: fsync.connects.get('pg')!, connectTcp: fsync.connects.get('pgtcp')!, relays: relay.procs},
    async close() {
      await fsync.stop()
      await os.stop()
      for (const p of relay.procs) await p.stop()
      for (const s of echo.sockets) s.destroy()
      echo.server.close()
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

async function waitHttp(url: string, proc: Proc): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (proc.child.exitCode !== null) throw new Error(`gateway exited: ${proc.tail()}`)
    try {
      await fetch(url)
      return
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error(`gateway did not answer at ${url}: ${proc.tail()}`)
}
