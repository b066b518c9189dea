// The cases that move bytes through real processes. Every case runs each path in turn, round
// after round (direct, relay chain, hoop in a rotating order), so drift on a shared machine hits
// all three alike; figures are medians over the rounds and targets are ratios of the same run.
import {connect as netConnect, type Socket} from 'node:net'
import pg from 'pg'
import {errorMessage} from '../../src/shared/errors.js'
import {sh} from './procs.js'
import {type CaseResult, judge, median, percentile} from './report.js'
import {conninfo, PG, type Stack} from './stack.js'

/** hoop = a `postgres` connection (engine + policy + audit); tcp = a `tcp` connection (relay only). */
export type Path = 'direct' | 'relay' | 'hoop' | 'tcp'
const PATHS: Path[] = ['direct', 'relay', 'hoop']
/** The relay decomposition: the same hoop processes with no engine in the path. */
const TCP_PATHS: Path[] = ['direct', 'relay', 'tcp']

export function portOf(stack: Stack, p: Path): number {
  return p === 'direct' ? stack.directPort : p === 'relay' ? stack.relayPort : p === 'tcp' ? stack.tcpPort : stack.hoopPort
}

/** Rotates the order each round so no path always runs first (cold caches) or last. */
function order(round: number, paths: Path[] = PATHS): Path[] {
  return paths.map((_, i) => paths[(i + round) % paths.length])
}

interface PgbenchFigure {
  tps: number
  latencyMs: number
}

async function pgbench(bin: string, port: number, clients: number, seconds: number): Promise<PgbenchFigure> {
  // -n: no vacuum/truncate before the run (TRUNCATE is blocked by the guardrails, and it is not what we measure).
  const r = await sh(`${bin} -n -S -c ${clients} -j ${Math.min(clients, 2)} -T ${seconds} "${conninfo(port)}"`, {timeoutMs: (seconds + 60) * 1000})
  const tps = /tps = ([\d.]+)/.exec(r.stdout)
  const lat = /latency average = ([\d.]+) ms/.exec(r.stdout)
  if (r.code !== 0 || !tps || !lat) throw new Error(`pgbench on port ${port} failed (${r.code}): ${r.stderr.slice(-1500)}${r.stdout.slice(-500)}`)
  return {tps: Number(tps[1]), latencyMs: Number(lat[1])}
}

async function pgbenchRounds(bin: string, stack: Stack, clients: number, seconds: number, rounds: number, log: (s: string) => void, paths: Path[] = PATHS, warmUp = false) {
  const samples: Record<Path, PgbenchFigure[]> = {direct: [], relay: [], hoop: [], tcp: []}
  // A path's first run pays one-time costs (JIT of its hot code, connect's first sessions).
  if (warmUp) for (const p of paths) await pgbench(bin, portOf(stack, p), clients, 1)
  for (let r = 0; r < rounds; r++) {
    for (const p of order(r, paths)) {
      const f = await pgbench(bin, portOf(stack, p), clients, seconds)
      samples[p].push(f)
      log(`  pgbench -c ${clients} round ${r + 1}/${rounds} ${p}: ${f.tps.toFixed(0)} tps, ${f.latencyMs.toFixed(3)} ms`)
    }
  }
  return samples
}

export async function casePgbench8(o: {bin: string; stack: Stack; seconds: number; rounds: number; log: (s: string) => void}): Promise<CaseResult> {
  const s = await pgbenchRounds(o.bin, o.stack, 8, o.seconds, o.rounds, o.log)
  const tps = (p: Path) => median(s[p].map((f) => f.tps))
  // The ratio of each round (side by side), then the median of those ratios.
  const ratio = median(s.hoop.map((f, i) => f.tps / s.relay[i].tps))
  const target = {op: '>=' as const, value: 0.9}
  return {
    id: 'pgbench-select-8',
    title: 'pgbench select-only, 8 clients',
    metric: 'TPS, hoop / relay chain',
    value: ratio,
    unit: '',
    target,
    met: judge(ratio, target),
    ratio: true,
    summary: `direct ${tps('direct').toFixed(0)} TPS, relay ${tps('relay').toFixed(0)} (${(tps('relay') / tps('direct')).toFixed(2)}x), hoop ${tps('hoop').toFixed(0)} (${(tps('hoop') / tps('direct')).toFixed(2)}x direct)`,
    detail: {seconds: o.seconds, rounds: o.rounds, tps: {direct: tps('direct'), relay: tps('relay'), hoop: tps('hoop')}, samples: s},
  }
}

export async function casePgbench1(o: {bin: string; stack: Stack; seconds: number; rounds: number; log: (s: string) => void}): Promise<CaseResult> {
  const s = await pgbenchRounds(o.bin, o.stack, 1, o.seconds, o.rounds, o.log)
  const lat = (p: Path) => median(s[p].map((f) => f.latencyMs))
  const added = (p: Path) => lat(p) - lat('direct')
  const ratio = added('hoop') / added('relay')
  const target = {op: '<=' as const, value: 1.3}
  return {
    id: 'pgbench-select-1',
    title: 'pgbench select-only, 1 client',
    metric: 'added latency per query over direct, hoop / relay chain',
    value: ratio,
    unit: '',
    target,
    met: judge(ratio, target),
    ratio: true,
    summary: `direct ${(lat('direct') * 1000).toFixed(0)} µs/query; added: relay +${(added('relay') * 1000).toFixed(0)} µs, hoop +${(added('hoop') * 1000).toFixed(0)} µs`,
    detail: {seconds: o.seconds, rounds: o.rounds, latencyMs: {direct: lat('direct'), relay: lat('relay'), hoop: lat('hoop')}, samples: s},
  }
}

/** pgbench -S, 8 clients, through a `tcp` connection: what the relay alone costs (issue 15, direction 3). */
export async function caseTcp8(o: {bin: string; stack: Stack; seconds: number; rounds: number; log: (s: string) => void}): Promise<CaseResult> {
  const s = await pgbenchRounds(o.bin, o.stack, 8, o.seconds, o.rounds, o.log, TCP_PATHS, true)
  const tps = (p: Path) => median(s[p].map((f) => f.tps))
  const ratio = median(s.tcp.map((f, i) => f.tps / s.relay[i].tps))
  const target = {op: '>=' as const, value: 0.85}
  return {
    id: 'tcp-select-8',
    title: 'pgbench select-only, 8 clients, `tcp` connection',
    metric: 'TPS, hoop tcp / relay chain',
    value: ratio,
    unit: '',
    target,
    met: judge(ratio, target),
    ratio: true,
    summary: `direct ${tps('direct').toFixed(0)} TPS, relay ${tps('relay').toFixed(0)} (${(tps('relay') / tps('direct')).toFixed(2)}x), hoop tcp ${tps('tcp').toFixed(0)} (${(tps('tcp') / tps('direct')).toFixed(2)}x direct)`,
    detail: {seconds: o.seconds, rounds: o.rounds, tps: {direct: tps('direct'), relay: tps('relay'), tcp: tps('tcp')}, samples: s},
  }
}

/** pgbench -S, 1 client, through a `tcp` connection: added latency against the socat chain's. */
export async function caseTcp1(o: {bin: string; stack: Stack; seconds: number; rounds: number; log: (s: string) => void}): Promise<CaseResult> {
  const s = await pgbenchRounds(o.bin, o.stack, 1, o.seconds, o.rounds, o.log, TCP_PATHS, true)
  const lat = (p: Path) => median(s[p].map((f) => f.latencyMs))
  const added = (p: Path) => lat(p) - lat('direct')
  const ratio = added('tcp') / added('relay')
  const target = {op: '<=' as const, value: 1.3}
  return {
    id: 'tcp-select-1',
    title: 'pgbench select-only, 1 client, `tcp` connection',
    metric: 'added latency per query over direct, hoop tcp / relay chain',
    value: ratio,
    unit: '',
    target,
    met: judge(ratio, target),
    ratio: true,
    summary: `direct ${(lat('direct') * 1000).toFixed(0)} µs/query; added: relay +${(added('relay') * 1000).toFixed(0)} µs, hoop tcp +${(added('tcp') * 1000).toFixed(0)} µs`,
    detail: {seconds: o.seconds, rounds: o.rounds, latencyMs: {direct: lat('direct'), relay: lat('relay'), tcp: lat('tcp')}, samples: s},
  }
}

/** COPY table TO STDOUT through psql into `wc -c`: MB/s per path. */
export async function caseCopy(o: {stack: Stack; table: string; rounds: number; log: (s: string) => void; label: string}): Promise<CaseResult> {
  const mbps: Record<Path, number[]> = {direct: [], relay: [], hoop: [], tcp: []}
  let bytes = 0
  for (let r = 0; r < o.rounds; r++) {
    for (const p of order(r)) {
      const res = await sh(`psql "${conninfo(portOf(o.stack, p))}" -X -q -v ON_ERROR_STOP=1 -c "COPY ${o.table} TO STDOUT" | wc -c`, {timeoutMs: 900_000})
      bytes = Number(res.stdout.trim())
      if (res.code !== 0 || !(bytes > 0)) throw new Error(`COPY on ${p} failed (${res.code}): ${res.stderr.slice(-1500)}`)
      mbps[p].push(bytes / 1e6 / (res.ms / 1000))
      o.log(`  COPY round ${r + 1}/${o.rounds} ${p}: ${(bytes / 1e6).toFixed(0)} MB in ${(res.ms / 1000).toFixed(2)} s = ${mbps[p].at(-1)!.toFixed(0)} MB/s`)
    }
  }
  const m = (p: Path) => median(mbps[p])
  const ratio = median(mbps.hoop.map((v, i) => v / mbps.direct[i]))
  const target = {op: '>=' as const, value: 0.7}
  return {
    id: 'copy-out',
    title: `COPY ${o.label} out of a table`,
    metric: 'throughput, hoop / direct',
    value: ratio,
    unit: '',
    target,
    met: judge(ratio, target),
    ratio: true,
    summary: `${(bytes / 1e6).toFixed(0)} MB: direct ${m('direct').toFixed(0)} MB/s, relay ${m('relay').toFixed(0)} MB/s, hoop ${m('hoop').toFixed(0)} MB/s`,
    detail: {bytes, rounds: o.rounds, mbps: {direct: m('direct'), relay: m('relay'), hoop: m('hoop')}, samples: mbps},
  }
}

/** A new connection and its first query (pg driver, startup + auth + SELECT 1), one at a time. */
export async function caseNewConnection(o: {stack: Stack; count: number; log: (s: string) => void}): Promise<CaseResult> {
  const ms: Record<Path, number[]> = {direct: [], relay: [], hoop: [], tcp: []}
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
