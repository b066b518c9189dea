// install.sh from a copy of this checkout, with an empty HOME (issue 17 item 2):
//  - with dependencies in place, it builds, links `hoop`, and says when it replaces a `hoop` that
//    pointed elsewhere, or when another `hoop` earlier on PATH would still run;
//  - without Node's headers on the machine (hidden with a private mount; as root only) and with
//    github.com out of reach, npm ci fails in better-sqlite3's native build, and install.sh names
//    that cause instead of blaming the network.
// A fake npm on PATH refuses `npm ci` in the first case: node_modules there is the shared one.
import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, cpSync, existsSync, mkdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs'
import {userInfo} from 'node:os'
import {dirname, join} from 'node:path'
import {ROOT, tempDir} from '../helpers/cli.js'

function copyCheckout(to: string): void {
  const files = spawnSync('git', ['ls-files', '-z'], {cwd: ROOT, encoding: 'utf8'}).stdout.split('\0').filter(Boolean)
  for (const f of files) {
    if (!existsSync(join(ROOT, f))) continue
    mkdirSync(dirname(join(to, f)), {recursive: true})
    cpSync(join(ROOT, f), join(to, f), {preserveTimestamps: true})
  }
}

function run(cmd: string, args: string[], opts: {cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number}): Promise<{code: number | null; out: string}> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({code, out})
    })
  })
}

async function reachable(url: string): Promise<boolean> {
  try {
    await fetch(url, {method: 'HEAD', signal: AbortSignal.timeout(4000)})
    return true
  } catch {
    return false
  }
}

describe('install.sh in an empty HOME', function () {
  this.timeout(300_000)
  const dir = tempDir('hoop-e2e-install-')
  after(() => dir.cleanup())

  it('builds and links hoop, saying what it replaces and what still shadows it on PATH', async () => {
    const src = join(dir.path, 'checkout')
    const home = join(dir.path, 'home')
    const bin = join(home, 'bin')
    const first = join(home, 'first')
    const shims = join(dir.path, 'shims')
    for (const d of [src, bin, first, shims]) mkdirSync(d, {recursive: true})
    copyCheckout(src)
    symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'))
    // Older than node_modules/.package-lock.json: the dependencies count as up to date.
    utimesSync(join(src, 'package-lock.json'), new Date('2001-01-01'), new Date('2001-01-01'))
    const realNpm = spawnSync('sh', ['-c', 'command -v npm'], {encoding: 'utf8'}).stdout.trim()
    writeFileSync(join(shims, 'npm'), `#!/bin/sh\nif [ "$1" = ci ]; then echo "test: npm ci must not run here" >&2; exit 99; fi\nexec ${realNpm} "$@"\n`)
    chmodSync(join(shims, 'npm'), 0o755)
    symlinkSync('/elsewhere/bin/run.js', join(bin, 'hoop'))
    writeFileSync(join(first, 'hoop'), '#!/bin/sh\necho an older hoop\n')
    chmodSync(join(first, 'hoop'), 0o755)

    const env = {PATH: `${shims}:${first}:${bin}:${process.env.PATH}`, HOME: home, HOOP_INSTALL_DIR: bin, TMPDIR: dir.path}
    const r = await run('sh', ['install.sh'], {cwd: src, env, timeoutMs: 180_000})
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /==> dependencies up to date/)
    assert.match(r.out, /==> building \(TypeScript\)\n(?: {4}\.\.\. \d+ s\n)* {4}done in \d+ s/) // progress lines on a slow machine
    assert.match(r.out, new RegExp(`note: replacing ${bin}/hoop, which pointed to /elsewhere/bin/run\\.js`))
    assert.equal(readlinkSync(join(bin, 'hoop')), join(src, 'bin', 'run.js'))
    assert.match(r.out, new RegExp(`warning: \`hoop\` still runs ${first}/hoop, which comes before ${bin} on your PATH`))
    assert.match(r.out, /hoop 0\.1\.0 is installed \(\d+ s\)/)
  })

  it('names missing Node headers as the cause when the native build of better-sqlite3 fails (root: headers hidden by a private mount)', async function () {
    const headers = '/usr/include/node'
    if (userInfo().uid !== 0 || !existsSync(join(headers, 'node.h'))) this.skip()
    if (spawnSync('unshare', ['-m', 'true']).status !== 0) this.skip()
    // The case needs github.com (prebuilt binaries) out of reach and the npm registry in reach.
    if (await reachable('https://github.com')) this.skip()
    const registry = spawnSync('npm', ['config', 'get', 'registry'], {encoding: 'utf8'}).stdout.trim()
    if (!(await reachable(registry))) this.skip()

    const src = join(dir.path, 'fresh')
    const home = join(dir.path, 'fresh-home')
    const empty = join(dir.path, 'no-headers')
    for (const d of [src, home, empty]) mkdirSync(d, {recursive: true})
    copyCheckout(src)
    const env = {PATH: process.env.PATH, HOME: home, HOOP_INSTALL_DIR: join(home, 'bin'), TMPDIR: dir.path, ...(process.env.HTTPS_PROXY ? {HTTPS_PROXY: process.env.HTTPS_PROXY} : {})}
    for (const k of ['HTTP_PROXY', 'https_proxy', 'http_proxy', 'NO_PROXY', 'no_proxy', 'npm_config_registry']) if (process.env[k]) (env as Record<string, string>)[k] = process.env[k]!
    const r = await run('unshare', ['-m', 'sh', '-c', `mount --bind '${empty}' ${headers} && exec sh install.sh`], {cwd: src, env, timeoutMs: 240_000})
    assert.equal(r.code, 1, r.out)
    assert.doesNotMatch(r.out, /native builds use Node's headers/)
    assert.match(r.out, /install\.sh: npm ci failed: the native build of better-sqlite3 needs Node's headers, and none were found here/)
    assert.match(r.out, /npm_config_nodedir=\/path\/to\/prefix sh install\.sh/)
    assert.doesNotMatch(r.out, /Check network access to the npm registry/)
  })
})
