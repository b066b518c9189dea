// A/B lab for the relay alone: the socat chain and one `tcp`-only hoop stack (gateway, agent,
// `hoop connect`) per checkout given, all up at once, pgbench -S rotating over them round after
// round. Per path and round it prints TPS, latency, and per process the CPU per transaction (user
// and system, from /proc) and the context switches per transaction (voluntary / involuntary, all
// threads): on a shared machine the CPU figures move far less than latency does.
//
// Usage: node --import tsx bench/relay-lab.ts CLIENTS SECONDS ROUNDS ROOT[=NAME[=RECORDING_CAP[=NODE_OPTIONS]]] ...
//   e.g. node --import tsx bench/relay-lab.ts 1 5 4 /work/base=base .=new .=norec=0 .=nodechain
// The name `nodechain` stands for three plain Node relays (net sockets piped) instead of hoop.
// Each ROOT must hold a built checkout (bin/run.js, dist/). Uses the bench database (hoop_bench).
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {conninfo, PG} from './lib/stack.js'
import {freePort, must, type Proc, sh, start, startRelayChain, stopAll} from './lib/procs.js'

const TICKS_PER_SECOND = 100

interface Path {
  name: string
  port: number
  /** Processes whose CPU counts for this path, by role; the chain's are found per round (socat forks). */
  pids: Record<string, number>
  chainParents?: number[]
}

/** user and system CPU ticks of a process (all its threads). */
function cpuTicks(pid: number): [number, number] {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return [Number(f[11]), Number(f[12])]
  } catch {
    return [0, 0]
  }
}

/** Voluntary and involuntary context switches of every thread of a process. */
function switches(pid: number): [number, number] {
  let v = 0
  let n = 0
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const st = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8')
      v += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0)
      n += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0)
    }
  } catch {
    // the process (a socat child) is gone
  }
  return [v, n]
}

const sum = (pids: number[], f: (pid: number) => [number, number]): [number, number] =>
  pids.map(f).reduce((a, b) => [a[0] + b[0], a[1] + b[1]], [0, 0])

async function children(pid: number): Promise<number[]> {
  const r = await sh(`pgrep -P ${pid}`)
  return r.stdout.trim().split('\n').filter(Boolean).map(Number)
}

async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      await fetch(url)
      return
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error(`no answer at ${url}`)
}

/** A gateway with one `tcp` connection to PostgreSQL, its agent and `hoop connect`, from checkout `root`. */
async function hoopStack(root: string, recordingCap: string | undefined, nodeOptions: string | undefined, dirs: string[]): Promise<{port: number; pids: Record<string, number>}> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-relay-lab-'))
  dirs.push(dir)
  const data = join(dir, 'data')
  mkdirSync(data)
  const run = join(root, 'bin', 'run.js')
  const secret = async (kind: string, name: string, group?: string) =>
    (JSON.parse((await must(`node ${run} admin ${kind} create ${name} --data-dir ${data} --json${group ? ` --group ${group}` : ''}`)).stdout) as {token: string}).token
  const agentToken = await secret('agents', 'lab-agent')
  const clientToken = await secret('service-accounts', 'lab-client', 'lab')
  const cap = recordingCap ? `, recordingCap: ${recordingCap}` : ''
  writeFileSync(
    join(dir, 'gateway.yaml'),
    `audit: {durability: fsync${cap}}\nconnections:\n  - name: pgtcp\n    type: tcp\n    target: 127.0.0.1:${PG.port}\n    agent: lab-agent\npolicy:\n  version: 1\n  rules:\n    - {id: lab, subjects: {groups: [lab]}, connections: [pgtcp], effect: allow}\n`,
  )
  const gwPort = await freePort()
  const url = `http://127.0.0.1:${gwPort}`
  const env = {HOOP_LOG_FORMAT: 'json', HOOP_TOKEN: '', HOOP_AGENT_TOKEN: '', HOOP_GATEWAY: '', NODE_OPTIONS: nodeOptions ?? process.env.NODE_OPTIONS ?? ''}
  const gateway = start('gateway', process.execPath, [run, 'gateway', '--config', join(dir, 'gateway.yaml'), '--data-dir', data, '--listen', `127.0.0.1:${gwPort}`, '--log-level', 'warn'], {env})
  await waitHttp(url)
  const agent = start('agent', process.execPath, [run, 'agent', '--gateway', url], {env: {...env, HOOP_AGENT_TOKEN: agentToken}})
  await agent.waitFor(/connected to gateway/)
  const connect: Proc = start('connect', process.execPath, [run, 'connect', 'pgtcp', '--port', '0', '--json', '--gateway', url], {env: {...env, HOOP_TOKEN: clientToken}})
  const m = await connect.waitFor(/\{"connection".*\}/)
  return {port: (JSON.parse(m[0]) as {port: number}).port, pids: {connect: connect.child.pid!, gateway: gateway.child.pid!, agent: agent.child.pid!}}
}

/** One hop of a plain Node TCP relay (net sockets piped both ways): the floor for any Node relay. */
const NODE_HOP = `const net = require('node:net'); const [lp, tp] = process.argv.slice(1).map(Number);
net.createServer({noDelay: true}, (c) => { const u = net.connect({port: tp, host: '127.0.0.1', noDelay: true});
c.pipe(u); u.pipe(c); const drop = () => { c.destroy(); u.destroy() }; c.on('error', drop); u.on('error', drop); c.on('close', drop); u.on('close', drop) })
.listen(lp, '127.0.0.1', () => console.log('ready'))`

/** Three plain Node relays in a row, as many hops as hoop's path. */
async function nodeChain(): Promise<{port: number; pids: Record<string, number>}> {
  let next = PG.port
  const pids: Record<string, number> = {}
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const p = start(`node-hop-${i}`, process.execPath, ['-e', NODE_HOP, String(port), String(next)])
    await p.waitFor(/ready/)
    pids[`hop${i}`] = p.child.pid!
    next = port
  }
  return {port: next, pids}
}

interface Figure {
  tps: number
  latencyUs: number
  txns: number
}

async function pgbench(bin: string, port: number, clients: number, seconds: number): Promise<Figure> {
  const r = await sh(`${bin} -n -S -c ${clients} -j ${Math.min(clients, 2)} -T ${seconds} "${conninfo(port)}"`, {timeoutMs: (seconds + 60) * 1000})
  const tps = /tps = ([\d.]+)/.exec(r.stdout)
  const lat = /latency average = ([\d.]+) ms/.exec(r.stdout)
  const txns = /number of transactions actually processed: (\d+)/.exec(r.stdout)
  if (r.code !== 0 || !tps || !lat || !txns) throw new Error(`pgbench on port ${port} failed: ${r.stderr.slice(-500)}`)
  return {tps: Number(tps[1]), latencyUs: Number(lat[1]) * 1000, txns: Number(txns[1])}
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main(): Promise<void> {
  const [clients, seconds, rounds] = process.argv.slice(2, 5).map(Number)
  const roots = process.argv.slice(5).map((arg) => {
    const [root, name, cap, ...nodeOptions] = arg.split('=')
    return {root: resolve(root), name: name ?? root, cap: cap || undefined, nodeOptions: nodeOptions.length ? nodeOptions.join('=') : undefined}
  })
  if (!clients || !(seconds >= 3) || !rounds || roots.length === 0) throw new Error('usage (SECONDS >= 3): relay-lab.ts CLIENTS SECONDS ROUNDS ROOT[=NAME[=RECORDING_CAP[=NODE_OPTIONS]]] ...')
  const bin = (await sh('command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1')).stdout.trim().split('\n')[0]
  const dirs: string[] = []
  const chain = await startRelayChain(3, PG.port)
  const paths: Path[] = [
    {name: 'direct', port: PG.port, pids: {}},
    {name: 'chain', port: chain.port, pids: {}, chainParents: chain.procs.map((p) => p.child.pid!)},
  ]
  try {
    for (const r of roots) paths.push({name: r.name, ...(r.name === 'nodechain' ? await nodeChain() : await hoopStack(r.root, r.cap, r.nodeOptions, dirs))})
    for (const p of paths) if (p.name !== 'direct') await pgbench(bin, p.port, clients, 1)
    const results = new Map<string, Figure[]>(paths.map((p) => [p.name, []]))
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < paths.length; i++) {
        const p = paths[(i + round) % paths.length]
        const running = pgbench(bin, p.port, clients, seconds)
        // socat forks a process per connection, and its processes exit with pgbench's connections:
        // every path is measured from 1 s in (pgbench connected) to 0.5 s before its end.
        const windowMs = seconds * 1000 - 1500
        await new Promise((r) => setTimeout(r, 1000))
        const pids: Record<string, number[]> = p.chainParents ? {socat: (await Promise.all(p.chainParents.map(children))).flat()} : Object.fromEntries(Object.entries(p.pids).map(([k, v]) => [k, [v]]))
        const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, v]) => [k, sum(v, cpuTicks)]))
        const csw0 = Object.fromEntries(Object.entries(pids).map(([k, v]) => [k, sum(v, switches)]))
        const t0 = performance.now()
        await new Promise((r) => setTimeout(r, windowMs))
        const cpu1 = Object.fromEntries(Object.entries(pids).map(([k, v]) => [k, sum(v, cpuTicks)]))
        const csw1 = Object.fromEntries(Object.entries(pids).map(([k, v]) => [k, sum(v, switches)]))
        const measuredMs = performance.now() - t0
        const f = await running
        results.get(p.name)!.push(f)
        // Transactions in the window measured, at the run's average rate.
        const txns = (f.tps * measuredMs) / 1000
        const parts = Object.keys(pids).map((k) => {
          const [u, s] = cpu1[k]
          const [vol, inv] = csw1[k]
          const us = (t: number) => ((t * 1e6) / TICKS_PER_SECOND / txns).toFixed(1)
          return `${k} ${us(u - cpu0[k][0] + s - cpu0[k][1])} (u ${us(u - cpu0[k][0])} s ${us(s - cpu0[k][1])}; csw ${((vol - csw0[k][0]) / txns).toFixed(2)}v ${((inv - csw0[k][1]) / txns).toFixed(2)}n)`
        })
        console.log(`round ${round + 1} ${p.name.padEnd(8)} ${f.tps.toFixed(0).padStart(6)} tps ${f.latencyUs.toFixed(0).padStart(5)} µs  CPU µs/txn: ${parts.join(', ')}`)
      }
    }
    const direct = results.get('direct')!
    const chainRuns = results.get('chain')!
    for (const [name, runs] of results) {
      if (name === 'direct' || name === 'chain') continue
      const ratios = runs.map((f, i) => (clients === 1 ? (f.latencyUs - direct[i].latencyUs) / (chainRuns[i].latencyUs - direct[i].latencyUs) : f.tps / chainRuns[i].tps))
      console.log(`${name}: median ${median(runs.map((f) => f.tps)).toFixed(0)} tps; ${clients === 1 ? 'added latency / chain' : 'TPS / chain'} per round ${ratios.map((x) => x.toFixed(2)).join(' ')}, median ${median(ratios).toFixed(2)}`)
    }
  } finally {
    await stopAll()
    for (const d of dirs) rmSync(d, {recursive: true, force: true})
  }
}

await main()
