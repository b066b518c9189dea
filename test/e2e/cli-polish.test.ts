// The CLI as a person meets it: help grouped by topic with a description for every topic and
// command, colour only on a terminal and never with NO_COLOR, did-you-mean everywhere (offered to
// run on a terminal, no prompt that could hang a script), HOOP_PROFILE explained in --help, and shell
// completion. A terminal is a real pty from `script`.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {HOOP_BIN, ROOT, runHoop, tempDir} from '../helpers/cli.js'
import {shellQuote} from '../helpers/net.js'

interface Manifest {
  commands: Record<string, {summary?: string; description?: string; examples?: unknown[]; hidden?: boolean}>
}

const RED = '\x1b[31m'

/** Runs a shell command under a pseudo-terminal (util-linux `script`); `input` is typed after `afterMs`. */
function inTerminal(cmd: string, env: Record<string, string>, input?: {text: string; when: RegExp}): Promise<{code: number | null; out: string}> {
  const clean: NodeJS.ProcessEnv = {PATH: process.env.PATH, HOME: env.HOME ?? process.env.HOME, TERM: 'xterm-256color', ...env}
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], {env: clean, stdio: ['pipe', 'pipe', 'pipe']})
    let out = ''
    let typed = false
    const onData = (d: Buffer) => {
      out += d.toString()
      if (input && !typed && input.when.test(out)) {
        typed = true
        child.stdin.write(input.text)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({code, out})
    })
    if (!input) child.stdin.end()
  })
}

describe('CLI polish (built CLI)', function () {
  this.timeout(60_000)
  const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as Manifest
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {oclif: {topics: Record<string, {description: string}>; plugins: string[]}}
  const hoop = `${shellQuote(process.execPath)} ${shellQuote(HOOP_BIN)}`

  it('every command has a summary, a description and examples; every topic a description', () => {
    const missing: string[] = []
    for (const [id, c] of Object.entries(manifest.commands)) {
      if (c.hidden) continue
      if (!c.summary?.trim()) missing.push(`${id}: summary`)
      if (!c.description?.trim()) missing.push(`${id}: description`)
      if (!c.examples?.length) missing.push(`${id}: examples`)
    }
    const topics = new Set(Object.keys(manifest.commands).flatMap((id) => id.split(':').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join(':'))))
    for (const t of topics) if (!pkg.oclif.topics[t]?.description) missing.push(`topic ${t}: description`)
    assert.deepEqual(missing, [])
    assert.ok(topics.has('approvals') && topics.has('admin:agents'), 'topics are derived from the command ids')
  })

  it('hoop --help groups commands by topic, and hoop help TOPIC lists the topic', async () => {
    const root = await runHoop(['--help'])
    assert.equal(root.code, 0, root.stderr)
    const topicsBlock = /TOPICS\n([\s\S]*?)\n\n/.exec(root.stdout)?.[1] ?? ''
    for (const t of ['admin', 'approvals', 'audit', 'policy', 'sessions']) {
      assert.match(topicsBlock, new RegExp(`^  ${t} +${pkg.oclif.topics[t].description.slice(0, 20).replace(/[()]/g, '\\$&')}`, 'm'))
    }
    assert.match(root.stdout, /COMMANDS\n[\s\S]*^ {2}connect +Open a local port/m)
    const admin = await runHoop(['help', 'admin'])
    assert.equal(admin.code, 0, admin.stderr)
    assert.match(admin.stdout, /^ {2}admin agents +Agent tokens: create, list, revoke$/m)
    assert.match(admin.stdout, /^ {2}admin service-accounts +Service-account keys/m)
  })

  it('colours errors on a terminal only, and never with NO_COLOR', async () => {
    const home = tempDir('hoop-color-')
    try {
      const cmd = `${hoop} whoami --gateway http://127.0.0.1:1`
      const env = {HOME: home.path, XDG_CONFIG_HOME: join(home.path, '.config')}
      const tty = await inTerminal(cmd, env)
      assert.equal(tty.code, 11, tty.out)
      assert.ok(tty.out.includes(`${RED}Error:`), `red on a terminal: ${JSON.stringify(tty.out)}`)
      const noColor = await inTerminal(cmd, {...env, NO_COLOR: '1'})
      assert.equal(noColor.code, 11)
      assert.match(noColor.out, /Error: no credential/)
      assert.ok(!noColor.out.includes('\x1b['), `no escape codes with NO_COLOR: ${JSON.stringify(noColor.out)}`)
      const toFile = await inTerminal(`${cmd} 2>&1 | cat`, env)
      assert.match(toFile.out, /Error: no credential/)
      assert.ok(!toFile.out.includes('\x1b['), `no escape codes into a pipe: ${JSON.stringify(toFile.out)}`)
    } finally {
      home.cleanup()
    }
  })

  it('suggests the command meant on a terminal, and offers to run it', async () => {
    const tty = await inTerminal(`${hoop} conect demo`, {NO_COLOR: '1'}, {text: 'n\r', when: /Run `hoop connect demo`\?/})
    assert.match(tty.out, /conect demo is not a hoop command\. Did you mean `hoop connect demo`\?/)
    assert.equal(tty.code, 127, tty.out)
    const yes = await inTerminal(`${hoop} versoin`, {NO_COLOR: '1'}, {text: '\r', when: /Run `hoop version`\?/})
    assert.equal(yes.code, 0, yes.out)
    assert.match(yes.out, /0\.1\.0/, 'Enter runs the suggested command')
  })

  it('without a terminal, still says what was meant, and exits 127 at once', async () => {
    const script = await runHoop(['conect', 'demo'], {timeoutMs: 20_000})
    assert.equal(script.code, 127)
    assert.match(script.stderr, /conect demo is not a hoop command\. Did you mean `hoop connect demo`\?/)
    assert.match(script.stderr, /Run `hoop help` for a list of available commands/)
    const sub = await runHoop(['approvals', 'aprove', 'apr_1'], {timeoutMs: 20_000})
    assert.equal(sub.code, 127)
    assert.match(sub.stderr, /Did you mean `hoop approvals approve apr_1`\?/)
    assert.match(sub.stderr, /Run `hoop help approvals`/)
    const nonsense = await runHoop(['xyzzy'], {timeoutMs: 20_000})
    assert.equal(nonsense.code, 127)
    assert.match(nonsense.stderr, /xyzzy is not a hoop command\.\n/, 'no far-fetched suggestion')
  })

  it('explains HOOP_PROFILE in the --help of commands that talk to a gateway, not elsewhere', async () => {
    for (const id of [['whoami'], ['connect'], ['approvals', 'list'], ['login']]) {
      const r = await runHoop([...id, '--help'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /HOOP_PROFILE=NAME/, `hoop ${id.join(' ')} --help`)
    }
    const gw = await runHoop(['gateway', '--help'])
    assert.doesNotMatch(gw.stdout, /HOOP_PROFILE/)
  })

  it('completes commands and subcommands in bash', async () => {
    const home = tempDir('hoop-ac-')
    try {
      const env = {HOME: home.path, XDG_CACHE_HOME: join(home.path, '.cache')}
      const setup = await runHoop(['autocomplete', 'bash'], {env})
      assert.equal(setup.code, 0, setup.stderr)
      const fn = join(home.path, '.cache', 'hoop', 'autocomplete', 'functions', 'bash', 'hoop.bash')
      const complete = (line: string) =>
        new Promise<string>((resolve) => {
          const words = line.split(' ')
          const script = `source ${shellQuote(fn)}; COMP_WORDS=(${words.map(shellQuote).join(' ')}); COMP_CWORD=${words.length - 1}; COMP_LINE=${shellQuote(line)}; COMP_POINT=${line.length}; _hoop_autocomplete; echo "\${COMPREPLY[*]}"`
          const child = spawn('bash', ['-c', script], {env: {PATH: process.env.PATH, ...env}})
          let out = ''
          child.stdout.on('data', (d: Buffer) => (out += d.toString()))
          child.once('close', () => resolve(out.trim()))
        })
      assert.equal(await complete('hoop conn'), 'connect connections')
      assert.equal(await complete('hoop approvals ap'), 'approve')
    } finally {
      home.cleanup()
    }
  })
})
