// Process plumbing for the benchmark: run shell commands, start the built CLI (gateway, agent,
// `hoop connect`) and socat relays as real processes, sample RSS, and stop everything we started.
import {type ChildProcess, spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const HOOP_BIN = join(ROOT, 'bin', 'run.js')

export interface Proc {
  name: string
  child: ChildProcess
  /** Last output (stdout + stderr), kept short so a chatty process cannot grow our memory. */
  tail(): string
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  exited: Promise<number | null>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

const live = new Set<Proc>()

/** Spawns a process, keeping a tail of its output and a matcher over everything it printed so far. */
export function start(name: string, cmd: string, args: string[], opts: {env?: NodeJS.ProcessEnv} = {}): Proc {
  const child = spawn(cmd, args, {env: {...process.env, NO_COLOR: '1', ...opts.env}, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
  let head = '' // the first 64 KiB, where readiness lines appear
  let tail = ''
  const waiters = new Set<() => void>()
  const onData = (d: Buffer) => {
    const s = d.toString()
    if (head.length < 65536) head += s
    tail = (tail + s).slice(-8192)
    for (const w of waiters) w()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  let done = false
  const exited = new Promise<number | null>((res) =>
    child.once('exit', (code, sig) => {
      done = true
      for (const w of waiters) w()
      res(code ?? (sig ? 128 : null))
    }),
  )
  const p: Proc = {
    name,
    child,
    tail: () => tail,
    exited,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolveP, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`${name}: timed out waiting for ${re}; output: ${tail.slice(-2000)}`))
        }, timeoutMs)
        const check = () => {
          const m = (head + tail).match(re)
          if (m) {
            clearTimeout(timer)
            waiters.delete(check)
            resolveP(m)
          } else if (done) {
            clearTimeout(timer)
            waiters.delete(check)
            reject(new Error(`${name} exited before ${re}; output: ${tail.slice(-2000)}`))
          }
        }
        waiters.add(check)
        check()
      })
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      const code = await exited
      clearTimeout(t)
      live.delete(p)
      return code
    },
  }
  live.add(p)
  return p
}

/** Starts `node [nodeArgs] bin/run.js args`. */
export function startHoop(name: string, args: string[], opts: {env?: NodeJS.ProcessEnv; nodeArgs?: string[]} = {}): Proc {
  const env: NodeJS.ProcessEnv = {HOOP_LOG_FORMAT: 'json', ...opts.env}
  for (const k of ['HOOP_TOKEN', 'HOOP_AGENT_TOKEN', 'HOOP_GATEWAY']) if (!opts.env || !(k in opts.env)) env[k] = ''
  return start(name, process.execPath, [...(opts.nodeArgs ?? []), HOOP_BIN, ...args], {env})
}

/** Stops every process started through this module, newest first. */
export async function stopAll(): Promise<void> {
  for (const p of [...live].reverse()) await p.stop().catch(() => undefined)
}

export interface ShResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

/** Runs a bash command line; resolves with its output and wall time. */
export function sh(cmd: string, opts: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<ShResult> {
  return new Promise((resolveP) => {
    const t0 = performance.now()
    const child = spawn('bash', ['-o', 'pipefail', '-c', cmd], {env: {...process.env, ...opts.env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-65536)))
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-65536)))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolveP({code, stdout, stderr, ms: performance.now() - t0})
    })
  })
}

/** Like sh, but throws with the output when the command fails. */
export async function must(cmd: string, opts: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<ShResult> {
  const r = await sh(cmd, opts)
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stderr.slice(-2000)}${r.stdout.slice(-1000)}`)
  return r
}

export function freePort(): Promise<number> {
  return new Promise((resolveP, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a ? a.port : 0
      s.close(() => resolveP(port))
    })
  })
}

/**
 * CPU seconds (user + system) a process has used so far (Linux /proc, clock ticks of 1/100 s);
 * with `children`, also its children that exited and were waited for (socat's per-connection forks).
 */
export function cpuSecondsOf(pid: number, children = false): number {
  // The fields after the command name (which may hold spaces) start after its closing parenthesis.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0)) / 100
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/**
 * A chain of `hops` plain TCP relays (socat, one forked process per connection, TCP_NODELAY on
 * both legs) in front of host:port. Returns the port of the first relay.
 */
export async function startRelayChain(hops: number, targetPort: number): Promise<{port: number; procs: Proc[]}> {
  let next = targetPort
  const procs: Proc[] = []
  for (let i = 0; i < hops; i++) {
    const port = await freePort()
    const p = start(`socat-${i}`, 'socat', [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=2048`, `TCP:127.0.0.1:${next},nodelay`])
    procs.push(p)
    next = port
  }
  // socat prints nothing when ready: poll the first listener.
  for (let i = 0; i < 100; i++) {
    const r = await sh(`exec 3<>/dev/tcp/127.0.0.1/${next} && exec 3>&-`)
    if (r.code === 0) break
    await new Promise((r2) => setTimeout(r2, 50))
  }
  return {port: next, procs}
}
