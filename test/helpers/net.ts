// Small network helpers for tests: free ports, process memory, psql runs.
import {spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {createServer} from 'node:net'

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  return m ? Number(m[1]) * 1024 : 0
}

export function cmdlineOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
}

/** Runs a shell pipeline and returns stdout, stderr and exit code. */
export function sh(cmd: string, opts: {env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number} = {}): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', cmd], {env: {...process.env, ...opts.env}, stdio: ['pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    child.once('close', (code) => {
      clearTimeout(t)
      resolve({code, stdout, stderr})
    })
    child.stdin.end(opts.input ?? '')
  })
}

export function psql(port: number, sql: string, extra = ''): Promise<{code: number | null; stdout: string; stderr: string}> {
  return sh(`psql "host=127.0.0.1 port=${port} user=postgres dbname=test sslmode=disable" -X -A -t -v ON_ERROR_STOP=1 ${extra} -c ${shellQuote(sql)}`, {
    env: {PGCONNECT_TIMEOUT: '10'},
  })
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}
