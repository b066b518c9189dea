// The cases that move bytes through real processes. Every case runs each path in turn, round
// after round (direct, relay chain, hoop in a rotating order), so drift on a shared machine hits
// all three alike; figures are medians over the rounds and targets are ratios of the same run.
import {connect as netConnect, type Socket} from 'node:net'
import pg from 'pg'
import {errorMessage} from '../../src/shared/errors.js'
import {cpuSecondsOf, sh} from './procs.js'
import {type CaseResult, judge, median, percentile} from './report.js'
import {conninfo, PG, type Stack} from './stack.js'

/**
 * hoop = `postgres`, full policy, default durability; tcp = a `tcp` connection (relay only);
 * allow-os / full-os = `postgres` under the allow rule alone / the full policy, `durability: os`.
 */
export type Path = 'direct' | 'relay' | 'hoop' | 'tcp' | 'allow-os' | 'full-os'
const PATHS: Path[] = ['direct', 'relay', 'hoop']

export function portOf(stack: Stack, p: Path): number {
  const ports: Record<Path, number> = {direct: stack.directPort, relay: stack.relayPort, hoop: stack.hoopPort, tcp: stack.tcpPort, 'allow-os': stack.allowOsPort, 'full-os': stack.fullOsPort}
  return ports[p]
}

const emptySamples = <T>(): Record<Path, T[]> => ({direct: [], relay: [], hoop: [], tcp: [], 'allow-os': [], 'full-os': []})

/** Rotates the order each round so no path always runs first (cold caches) or last. */
function order(round: number, paths: Path[] = PATHS): Path[] {
  return paths.map((_, i) => paths[(i + round) % paths.length])
}

interface PgbenchFigure {
  tps: number
  latencyMs: number
}

/** select-only (`-S`) or pgbench's default TPC-B-like script. */
type Script = 'select' | 'tpcb'

async function pgbench(bin: string, port: number, clients: number, seconds: number, script: Script): Promise<PgbenchFigure> {
  // -n: no vacuum/truncate before the run (TRUNCATE is blocked by the guardrails, and it is not what we measure).
  const r = await sh(`${bin} -n ${script === 'select' ? '-S ' : ''}-c ${clients} -j ${Math.min(clients, 2)} -T ${seconds} "${conninfo(port)}"`, {timeoutMs: (seconds + 60) * 1000})
  const tps = /tps = ([\d.]+)/.exec(r.stdout)
  const lat = /latency average = ([\d.]+) ms/.exec(r.stdout)
  if (r.code !== 0 || !tps || !lat) throw new Error(`pgbench on port ${port} failed (${r.code}): ${r.stderr.slice(-1500)}${r.stdout.slice(-500)}`)
  return {tps: Number(tps[1]), latencyMs: Number(lat[1])}
}

interface PgbenchRun {
  bin: string
  stack: Stack
  seconds: number
  rounds: number
  log: (s: string) => void
  /** A 1 s run of each hoop path first (off in quick mode, whose figures are a smoke test). */
  warmUp: boolean
}

async function pgbenchRounds(o: PgbenchRun, clients: number, paths: Path[], script: Script) {
  const samples = emptySamples<PgbenchFigure>()
  // A hoop path's first run pays one-time costs (JIT of its hot code, connect's first sessions);
  // on a busy machine the warm-up may not finish a transaction, which is no failure.
  if (o.warmUp) for (const p of paths) if (p !== 'direct' && p !== 'relay') await pgbench(o.bin, portOf(o.stack, p), clients, 1, script).catch(() => undefined)
  for (let r = 0; r < o.rounds; r++) {
    for (const p of order(r, paths)) {
      const f = await pgbench(o.bin, portOf(o.stack, p), clients, o.seconds, script)
      samples[p].push(f)
      o.log(`  pgbench ${script} -c ${clients} round ${r + 1}/${o.rounds} ${p}: ${f.tps.toFixed(0)} tps, ${f.latencyMs.toFixed(3)} ms`)
    }
  }
  return samples
}

/** One row of the decomposition: a hoop path, and the issue's target for it where it sets one. */
interface Row {
  id: string
  path: Path
  title: string
  target?: {op: '>=' | '<='; value: number}
}

/** The issue 15 decomposition of pgbench -S: every row's path runs interleaved with direct and the socat chain. */
export function selectRows(clients: 8 | 1): Row[] {
  const at8 = clients === 8
  return [
    {id: `tcp-select-${clients}`, path: 'tcp', title: '`tcp` connection (relay only)', target: at8 ? {op: '>=', value: 0.85} : {op: '<=', value: 1.3}},
    {id: `allow-os-select-${clients}`, path: 'allow-os', title: '`postgres`, allow-only, durability os'},
    {id: `full-os-select-${clients}`, path: 'full-os', title: '`postgres`, full policy, durability os'},
    {id: `pgbench-select-${clients}`, path: 'hoop', title: '`postgres`, full policy, default durability', target: at8 ? {op: '>=', value: 0.6} : {op: '<=', value: 2.0}},
  ]
}

/**
 * pgbench select-only through the wanted rows' paths, direct and the socat chain, interleaved:
 * with 8 clients each path's TPS / the chain's (median of per-round ratios); with 1 client each
 * path's added latency over direct / the chain's.
 */
export async function casePgbenchSelect(o: PgbenchRun & {clients: 8 | 1; rows: Row[]}): Promise<CaseResult[]> {
  const s = await pgbenchRounds(o, o.clients, ['direct', 'relay', ...o.rows.map((r) => r.path)], 'select')
  const tps = (p: Path) => median(s[p].map((f) => f.tps))
  const lat = (p: Path) => median(s[p].map((f) => f.latencyMs))
  const added = (p: Path) => lat(p) - lat('direct')
  const base = o.clients === 8 ? `direct ${tps('direct').toFixed(0)} TPS, relay ${tps('relay').toFixed(0)}` : `direct ${(lat('direct') * 1000).toFixed(0)} µs/query, relay +${(added('relay') * 1000).toFixed(0)} µs`
  return o.rows.map((row) => {
    // A chain that added no latency over direct (noise on a busy machine) gives no ratio, not a negative one.
    const value = o.clients === 8 ? median(s[row.path].map((f, i) => f.tps / s.relay[i].tps)) : added('relay') > 0 ? added(row.path) / added('relay') : NaN
    return {
      id: row.id,
      title: `pgbench -S, ${o.clients} client${o.clients === 8 ? 's' : ''}, ${row.title}`,
      metric: o.clients === 8 ? 'TPS / socat chain' : 'added latency / socat chain',
      value,
      unit: '',
      target: row.target,
      met: row.target ? Number.isFinite(value) && judge(value, row.target) : undefined,
      ratio: true,
      summary: `${base}; this path ${o.clients === 8 ? `${tps(row.path).toFixed(0)} TPS` : `+${(added(row.path) * 1000).toFixed(0)} µs`}`,
      detail: {seconds: o.seconds, rounds: o.rounds, path: row.path, tps: tps(row.path), latencyMs: lat(row.path), direct: {tps: tps('direct'), latencyMs: lat('direct')}, relay: {tps: tps('relay'), latencyMs: lat('relay')}, samples: {direct: s.direct, relay: s.relay, [row.path]: s[row.path]}},
    }
  })
}

/** pgbench's default TPC-B-like script, 4 clients: hoop (full policy, both durabilities) / the socat chain. */
export async function caseTpcb(o: PgbenchRun): Promise<CaseResult> {
  const s = await pgbenchRounds(o, 4, ['direct', 'relay', 'hoop', 'full-os'], 'tpcb')
  const tps = (p: Path) => median(s[p].map((f) => f.tps))
  const ratio = (p: Path) => median(s[p].map((f, i) => f.tps / s.relay[i].tps))
  const target = {op: '>=' as const, value: 0.6}
  return {
    id: 'tpcb-4',
    title: 'pgbench TPC-B (default script), 4 clients, full policy',
    metric: 'TPS / socat chain',
    value: ratio('hoop'),
    unit: '',
    target,
    met: judge(ratio('hoop'), target),
    ratio: true,
    summary: `direct ${tps('direct').toFixed(0)} TPS, relay ${tps('relay').toFixed(0)}, hoop ${tps('hoop').toFixed(0)} (default durability), ${tps('full-os').toFixed(0)} with durability os (${ratio('full-os').toFixed(2)} of the chain)`,
    detail: {seconds: o.seconds, rounds: o.rounds, tps: {direct: tps('direct'), relay: tps('relay'), hoop: tps('hoop'), fullOs: tps('full-os')}, osRatio: ratio('full-os'), samples: s},
  }
}

/** The hoop processes a COPY crosses, by role, for the CPU figures. */
type HoopRole = 'connect' | 'gateway' | 'agent'

/**
 * COPY table TO STDOUT through psql into `wc -c`: MB/s per path, over direct, the socat chain,
 * hoop's full-policy `postgres` path and its `tcp` path (the same connect -> gateway -> agent
 * relay, no engine), interleaved. Two rows: hoop / chain (the target) and tcp / chain, which
 * tells the relay's share of the gap from the engine's. Each hoop round also samples the CPU
 * seconds its three processes used, per GB: the less noisy figure on a shared machine.
 */
export async function caseCopy(o: {stack: Stack; table: string; rounds: number; log: (s: string) => void; label: string}): Promise<CaseResult[]> {
  const mbps = emptySamples<number>()
  const cpuPerGb: Record<'hoop' | 'tcp', Array<Record<HoopRole, number>>> = {hoop: [], tcp: []}
  const procs = o.stack.procs
  const pidsOf = (p: 'hoop' | 'tcp'): Record<HoopRole, number> => ({
    connect: (p === 'hoop' ? procs.connectHoop : procs.connectTcp).child.pid!,
    gateway: procs.gateway.child.pid!,
    agent: procs.agent.child.pid!,
  })
  const cpuOf = (pids: Record<HoopRole, number>) => ({connect: cpuSecondsOf(pids.connect), gateway: cpuSecondsOf(pids.gateway), agent: cpuSecondsOf(pids.agent)})
  const chainCpuPerGb: number[] = []
  const relayCpu = () => procs.relays.reduce((sum, x) => sum + cpuSecondsOf(x.child.pid!, true), 0)
  let bytes = 0
  for (let r = 0; r < o.rounds; r++) {
    for (const p of order(r, ['direct', 'relay', 'hoop', 'tcp'])) {
      const pids = p === 'hoop' || p === 'tcp' ? pidsOf(p) : undefined
      const before = pids && cpuOf(pids)
      const relayBefore = relayCpu()
      const res = await sh(`psql "${conninfo(portOf(o.stack, p))}" -X -q -v ON_ERROR_STOP=1 -c "COPY ${o.table} TO STDOUT" | wc -c`, {timeoutMs: 900_000})
      bytes = Number(res.stdout.trim())
      if (res.code !== 0 || !(bytes > 0)) throw new Error(`COPY on ${p} failed (${res.code}): ${res.stderr.slice(-1500)}`)
      mbps[p].push(bytes / 1e6 / (res.ms / 1000))
      let cpu = ''
      if ((p === 'hoop' || p === 'tcp') && pids && before) {
        const after = cpuOf(pids)
        const per = (k: HoopRole) => (after[k] - before[k]) / (bytes / 1e9)
        const c = {connect: per('connect'), gateway: per('gateway'), agent: per('agent')}
        cpuPerGb[p].push(c)
        cpu = ` (CPU s/GB: connect ${c.connect.toFixed(2)}, gateway ${c.gateway.toFixed(2)}, agent ${c.agent.toFixed(2)})`
      }
      if (p === 'relay') {
        // A socat connection's CPU is its fork's, counted in the listener once the fork is reaped.
        await new Promise((r2) => setTimeout(r2, 300))
        const c = relayCpu() - relayBefore
        chainCpuPerGb.push(c / (bytes / 1e9))
        cpu = ` (CPU s/GB: 3 socat ${chainCpuPerGb.at(-1)!.toFixed(2)})`
      }
      o.log(`  COPY round ${r + 1}/${o.rounds} ${p}: ${(bytes / 1e6).toFixed(0)} MB in ${(res.ms / 1000).toFixed(2)} s = ${mbps[p].at(-1)!.toFixed(0)} MB/s${cpu}`)
    }
  }
  const m = (p: Path) => median(mbps[p])
  // Issue 15's target compares with the socat chain (the same number of relaying processes).
  const ratio = (p: Path) => median(mbps[p].map((v, i) => v / mbps.relay[i]))
  const cpu = (p: 'hoop' | 'tcp') => ({
    connect: median(cpuPerGb[p].map((c) => c.connect)),
    gateway: median(cpuPerGb[p].map((c) => c.gateway)),
    agent: median(cpuPerGb[p].map((c) => c.agent)),
  })
  const cpuText = (p: 'hoop' | 'tcp') => {
    const c = cpu(p)
    return `CPU s/GB connect ${c.connect.toFixed(2)}, gateway ${c.gateway.toFixed(2)}, agent ${c.agent.toFixed(2)}`
  }
  const target = {op: '>=' as const, value: 0.9}
  const mb = (bytes / 1e6).toFixed(0)
  return [
    {
      id: 'copy-out',
      title: `COPY ${o.label} out of a table`,
      metric: 'throughput, hoop / socat chain',
      value: ratio('hoop'),
      unit: '',
      target,
      met: judge(ratio('hoop'), target),
      ratio: true,
      summary: `${mb} MB: direct ${m('direct').toFixed(0)} MB/s, relay ${m('relay').toFixed(0)} MB/s (CPU s/GB of the 3 socat ${median(chainCpuPerGb).toFixed(2)}), hoop ${m('hoop').toFixed(0)} MB/s (${cpuText('hoop')})`,
      detail: {bytes, rounds: o.rounds, mbps: {direct: m('direct'), relay: m('relay'), hoop: m('hoop')}, cpuSecondsPerGb: cpu('hoop'), chainCpuSecondsPerGb: median(chainCpuPerGb), samples: mbps, cpuSamples: cpuPerGb.hoop, chainCpuSamples: chainCpuPerGb},
    },
    {
      id: 'copy-out-tcp',
      title: `COPY ${o.label} out, \`tcp\` connection (relay only)`,
      metric: 'throughput, tcp / socat chain',
      value: ratio('tcp'),
      unit: '',
      ratio: true,
      summary: `${mb} MB: tcp ${m('tcp').toFixed(0)} MB/s (${cpuText('tcp')})`,
      detail: {bytes, rounds: o.rounds, mbps: {tcp: m('tcp')}, cpuSecondsPerGb: cpu('tcp'), cpuSamples: cpuPerGb.tcp},
    },
  ]
}

/** A new connection and its first query (pg driver, startup + auth + SELECT 1), one at a time. */
export async function caseNewConnection(o: {stack: Stack; count: number; log: (s: string) => void}): Promise<CaseResult> {
  const ms = emptySamples<number>()
  const once = async (port: number) => {
    const t0 = performance.now()
    const c = new pg.Client({host: '127.0.0.1', port, user: PG.user, database: PG.database, connectionTimeoutMillis: 10_000})
    await c.connect()
    await c.query('SELECT 1')
    const t = performance.now() - t0
    await c.end()
    return t
  }
  // Warm-up: the first connection of a path pays one-time costs (catalog cache, JIT of hot code).
  for (const p of PATHS) await once(portOf(o.stack, p))
  for (let i = 0; i < o.count; i++) for (const p of order(i)) ms[p].push(await once(portOf(o.stack, p)))
  const q = (p: Path, pc: number) => percentile(ms[p], pc)
  const added99 = q('hoop', 99) - q('direct', 99)
  const added50 = q('hoop', 50) - q('direct', 50)
  const target = {op: '<=' as const, value: 15}
  o.log(`  new connection: direct p50 ${q('direct', 50).toFixed(2)} p99 ${q('direct', 99).toFixed(2)} ms; hoop p50 ${q('hoop', 50).toFixed(2)} p99 ${q('hoop', 99).toFixed(2)} ms`)
  return {
    id: 'new-connection',
    title: 'new connection + first query',
    metric: 'p99 added over direct',
    value: added99,
    unit: 'ms',
    target,
    met: judge(added99, target),
    ratio: false,
    summary: `added p50 ${added50.toFixed(2)} ms, p99 ${added99.toFixed(2)} ms (direct p50 ${q('direct', 50).toFixed(2)} / p99 ${q('direct', 99).toFixed(2)}; relay p50 ${q('relay', 50).toFixed(2)} / p99 ${q('relay', 99).toFixed(2)}; ${o.count} each)`,
    detail: {count: o.count, p50: {direct: q('direct', 50), relay: q('relay', 50), hoop: q('hoop', 50)}, p99: {direct: q('direct', 99), relay: q('relay', 99), hoop: q('hoop', 99)}, addedP50: added50, addedP99: added99},
  }
}

/**
 * `sessions` TCP sessions open at once through one `hoop connect`, gateway and agent to an echo
 * server (PostgreSQL's max_connections is far below 1,000). Each session must echo a line.
 */
export async function caseManySessions(o: {stack: Stack; sessions: number; rssOf: (pid: number) => number; log: (s: string) => void}): Promise<CaseResult> {
  const gwPid = o.stack.gateway.child.pid!
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = netConnect({host: '127.0.0.1', port: o.stack.echoHoopPort, noDelay: true})
      const timer = setTimeout(() => {
        s.destroy()
        reject(new Error('session did not echo within 30 s'))
      }, 30_000)
      let got = ''
      s.on('error', (e) => {
        clearTimeout(timer)
        reject(e)
      })
      s.on('data', (d: Buffer) => {
        got += d.toString()
        if (got === 'ping\n') {
          clearTimeout(timer)
          s.removeAllListeners('data')
          resolve(s)
        }
      })
      s.write('ping\n')
    })
  // Warm-up sessions make the baseline include code and caches every session shares.
  const warm = await Promise.all(Array.from({length: 20}, open))
  for (const s of warm) s.destroy()
  await new Promise((r) => setTimeout(r, 1000))
  const before = o.rssOf(gwPid)
  const sockets: Socket[] = []
  let failed = 0
  const errors = new Map<string, number>()
  const t0 = performance.now()
  // Open in waves so the listen backlogs of connect and the echo server are not the limit.
  for (let i = 0; i < o.sessions; i += 100) {
    const wave = await Promise.allSettled(Array.from({length: Math.min(100, o.sessions - i)}, open))
    for (const w of wave) {
      if (w.status === 'fulfilled') sockets.push(w.value)
      else {
        failed++
        const k = errorMessage(w.reason)
        errors.set(k, (errors.get(k) ?? 0) + 1)
      }
    }
  }
  const openMs = performance.now() - t0
  await new Promise((r) => setTimeout(r, 500))
  const after = o.rssOf(gwPid)
  for (const s of sockets) s.destroy()
  const perSessionKB = (after - before) / 1024 / o.sessions
  const target = {op: '<=' as const, value: 100}
  o.log(`  ${sockets.length}/${o.sessions} sessions open in ${openMs.toFixed(0)} ms; gateway RSS ${(before / 1e6).toFixed(1)} -> ${(after / 1e6).toFixed(1)} MB`)
  if (failed > 0) o.log(`  failures: ${JSON.stringify([...errors])}`)
  const ok = failed === 0
  return {
    id: 'sessions-1000',
    title: `${o.sessions.toLocaleString('en-US')} sessions open at once`,
    metric: 'all succeed; gateway RSS per extra session',
    value: perSessionKB,
    unit: 'KB',
    target,
    met: ok && judge(perSessionKB, target),
    ratio: false,
    summary: `${sockets.length}/${o.sessions} succeeded (tcp echo target), opened in ${(openMs / 1000).toFixed(1)} s; gateway RSS ${(before / 1e6).toFixed(1)} -> ${(after / 1e6).toFixed(1)} MB`,
    detail: {sessions: o.sessions, succeeded: sockets.length, failed, errors: Object.fromEntries(errors), rssBefore: before, rssAfter: after, openMs},
  }
}
