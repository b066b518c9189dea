// Runs the built CLI (bin/run.js) as real processes for end-to-end tests.
import {type ChildProcess, spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const HOOP_BIN = join(ROOT, 'bin', 'run.js')

export interface Proc {
  child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first match of `re` in stdout+stderr (as it arrives), or rejects on exit/timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  exited: Promise<number | null>
  /** Sends a signal and waits for exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', HOOP_LOG_FORMAT: 'json', ...extra}
  for (const k of ['HOOP_TOKEN', 'HOOP_AGENT_TOKEN', 'HOOP_GATEWAY', 'HOOP_CLIENT_ID', 'HOOP_CLIENT_SECRET', 'HOOP_ID_TOKEN', 'HOOP_ID_TOKEN_FILE']) {
    if (!(k in extra)) delete env[k]
  }
  return env
}

export function spawnHoop(args: string[], opts: {env?: Record<string, string | undefined>; cwd?: string} = {}): Proc {
  const child = spawn(process.execPath, [HOOP_BIN, ...args], {env: baseEnv(opts.env), cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  const waiters = new Set<() => void>()
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
    for (const w of waiters) w()
  })
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
    for (const w of waiters) w()
  })
  const exited = new Promise<number | null>((res) => child.once('exit', (code, sig) => res(code ?? (sig ? 128 : null))))
  let done = false
  void exited.then(() => {
    done = true
    for (const w of waiters) w()
  })
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolveP, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`timed out waiting for ${re}; stdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`))
        }, timeoutMs)
        const check = () => {
          const m = (out + '\n' + err).match(re)
          if (m) {
            clearTimeout(timer)
            waiters.delete(check)
            resolveP(m)
          } else if (done) {
            clearTimeout(timer)
            waiters.delete(check)
            reject(new Error(`process exited before ${re}; stdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`))
          }
        }
        waiters.add(check)
        check()
      })
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

export async function runHoop(
  args: string[],
  opts: {env?: Record<string, string | undefined>; timeoutMs?: number} = {},
): Promise<{code: number | null; stdout: string; stderr: string}> {
  const p = spawnHoop(args, opts)
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
  const code = await p.exited
  clearTimeout(timer)
  return {code, stdout: p.stdout(), stderr: p.stderr()}
}

export function tempDir(prefix = 'hoop-test-'): {path: string; cleanup(): void} {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return {path, cleanup: () => rmSync(path, {recursive: true, force: true})}
}
