// The README's walk-through, run literally: every ```sh block between the walkthrough markers is
// run through bash with `hoop` on PATH (a shim to the built CLI), in an empty home directory, and
// the ```text block after it must appear in the output (in order; `...` matches anything).
//
// The only changes made to the documented commands are the ones a second copy on a shared
// machine needs: the gateway listens on a free port (HOOP_LISTEN / HOOP_GATEWAY point at it instead
// of 127.0.0.1:8009), `hoop connect demo` gets `--port P` and psql `port=5433` becomes `port=P`,
// and the documented placeholder apr_XXXXXXXXXXXX is the approval id printed in an earlier step
// (the README tells the reader to use it). Long-running commands (gateway, connect) stay in the
// background. Logins use `hoop login --dev-user`, as the README does: no browser step to play.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {chmodSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {HOOP_BIN, ROOT, tempDir} from '../helpers/cli.js'
import {freePort} from '../helpers/net.js'

interface Step {
  command: string
  expected: string[]
}

/** The walk-through's steps: each sh block and the text block that follows it (if any). */
export function walkthroughSteps(readme: string): Step[] {
  const start = readme.indexOf('<!-- walkthrough:start -->')
  const end = readme.indexOf('<!-- walkthrough:end -->')
  assert.ok(start >= 0 && end > start, 'README.md has walkthrough markers')
  const blocks = [...readme.slice(start, end).matchAll(/```(sh|text)\n([\s\S]*?)```/g)].map((m) => ({kind: m[1], body: m[2].trimEnd()}))
  const steps: Step[] = []
  for (const b of blocks) {
    if (b.kind === 'sh') {
      const lines = b.body.split('\n').filter((l) => l.trim() !== '')
      assert.equal(lines.length, 1, `each walk-through step is one command: ${b.body}`)
      steps.push({command: lines[0], expected: []})
    } else {
      assert.ok(steps.length > 0, 'an expected-output block follows a command')
      steps[steps.length - 1].expected = b.body.split('\n').filter((l) => l.trim() !== '')
    }
  }
  return steps
}

/** Each expected line, whitespace-normalised, with `...` matching anything; all in order. */
export function assertOutput(output: string, expected: string[], what: string): void {
  const norm = (s: string) => s.replace(/[ \t]+/g, ' ').trim()
  const lines = output.split('\n').map(norm)
  let from = 0
  for (const want of expected) {
    const re = new RegExp('^' + norm(want).split(/\s*\.\.\.\s*/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
    const i = lines.findIndex((l, k) => k >= from && re.test(l))
    assert.ok(i >= 0, `${what}: expected a line like\n  ${want}\nin order, in:\n${output}`)
    from = i + 1
  }
}

function matches(output: string, expected: string[]): boolean {
  try {
    assertOutput(output, expected, '')
    return true
  } catch {
    return false
  }
}

describe('README walk-through, run literally', function () {
  this.timeout(600_000)
  const dir = tempDir('hoop-e2e-readme-')
  const home = join(dir.path, 'home')
  const work = join(dir.path, 'work')
  const shims = join(dir.path, 'bin')
  const background: ChildProcess[] = []

  after(async () => {
    // Stop connect before the gateway, as a user would; wait for each to exit.
    for (const child of background.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGINT')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    dir.cleanup()
  })

  it('works as written, from an empty home directory', async () => {
    const steps = walkthroughSteps(readFileSync(join(ROOT, 'README.md'), 'utf8'))
    assert.ok(steps.length >= 12, `the walk-through has its steps (${steps.length})`)
    for (const d of [home, work, shims]) mkdirSync(d, {recursive: true})
    writeFileSync(join(shims, 'hoop'), `#!/bin/sh\nexec "${process.execPath}" "${HOOP_BIN}" "$@"\n`)
    chmodSync(join(shims, 'hoop'), 0o755)
    const gwPort = await freePort()
    const pgPort = await freePort()
    const env: NodeJS.ProcessEnv = {
      PATH: `${shims}:${process.env.PATH}`,
      HOME: home,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      NO_COLOR: '1',
      LANG: 'C.UTF-8',
      HOOP_LISTEN: `127.0.0.1:${gwPort}`,
      HOOP_GATEWAY: `http://127.0.0.1:${gwPort}`,
      PGCONNECT_TIMEOUT: '15',
    }
    let lastApproval = ''
    const adapt = (text: string) =>
      text
        .replaceAll('http://127.0.0.1:8009', `http://127.0.0.1:${gwPort}`)
        .replaceAll('port=5433', `port=${pgPort}`)
        .replaceAll('127.0.0.1:5433', `127.0.0.1:${pgPort}`)

    for (const [n, step] of steps.entries()) {
      let command = adapt(step.command).replaceAll('apr_XXXXXXXXXXXX', lastApproval)
      if (/^hoop connect \S+$/.test(command.replace(/\s+#.*$/, ''))) command = command.replace(/^(hoop connect \S+)/, `$1 --port ${pgPort}`)
      const expected = step.expected.map(adapt)
      const what = `step ${n + 1} \`${step.command}\``
      const child = spawn('bash', ['-c', command], {cwd: work, env, stdio: ['ignore', 'pipe', 'pipe']})
      let out = ''
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
      const longRunning = /^(HOOP_\w+=\S+ )*hoop (gateway|connect)\b/.test(command)
      if (/^(HOOP_\w+=\S+ )*hoop login\b/.test(command)) assert.match(command, /--dev-user \S+@\S+/, `${what}: logins in the walk-through are headless`)
      if (longRunning) {
        background.push(child)
        // The dev database is created on the first start: slow on a busy machine.
        const deadline = Date.now() + 240_000
        while (!matches(out, expected) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200))
        assertOutput(out, expected, what)
        continue
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
      const code = await exited
      clearTimeout(timer)
      assert.equal(code, /drop table|update customers/.test(command) && expected.some((l) => l.startsWith('ERROR:')) ? 1 : 0, `${what} exit code; output:\n${out}`)
      assertOutput(out, expected, what)
      lastApproval = /apr_[A-Za-z0-9_-]{12}/.exec(out)?.[0] ?? lastApproval
    }
  })
})
