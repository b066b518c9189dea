// The keychain path against a real Secret Service: gnome-keyring under its own D-Bus session
// (`dbus-run-session`), with a fresh keyring in a temp XDG_DATA_HOME unlocked by a throwaway password. Skips, saying why, when the machine
// has no gnome-keyring (CI installs it: apt-get install -y gnome-keyring dbus-daemon).
import {strict as assert} from 'node:assert'
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0

describe('identity: OS keychain store (gnome-keyring Secret Service)', () => {
  it('stores, lists and deletes profiles per gateway in the keychain; auto prefers it', function () {
    const missing = ['gnome-keyring-daemon', 'dbus-run-session'].filter((c) => !have(c))
    if (missing.length) {
      console.log(`      skipped: ${missing.join(', ')} not installed (apt-get install -y gnome-keyring dbus-daemon)`)
      this.skip()
    }
    const dir = mkdtempSync(join(tmpdir(), 'hoop-kc-'))
    try {
      const script = join(dir, 'probe.mts')
      const storeModule = resolve('src/identity/token-store.ts')
      writeFileSync(
        script,
        `import {openCredentialStore, storeNotice} from ${JSON.stringify(storeModule)}
const p = (gateway, accessToken) => ({gateway, issuer: 'https://id.example.com', clientId: 'hoop-cli', accessToken, expiresAt: 2e9, subject: 'u', groups: ['g'], loggedInAt: 1})
const kc = await openCredentialStore('keychain', ${JSON.stringify(join(dir, 'cfg'))})
await kc.put(p('https://a.example.com', 'at-a'))
await kc.put(p('https://b.example.com', 'at-b'))
const auto = await openCredentialStore('auto', ${JSON.stringify(join(dir, 'cfg'))})
const out = {
  kind: kc.kind, autoKind: auto.kind, notice: storeNotice(auto),
  a: (await kc.get('https://a.example.com'))?.accessToken, b: (await auto.get('https://b.example.com'))?.accessToken,
  listed: (await kc.list()).map((x) => x.gateway).sort(),
  deleted: await kc.delete('https://a.example.com'), after: (await kc.get('https://a.example.com')) ?? null,
}
console.log(JSON.stringify(out))
`,
      )
      const stdout = execFileSync(
        'dbus-run-session',
        ['--', 'sh', '-c', `echo -n throwaway | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec node --import tsx ${script}`],
        {encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, XDG_CONFIG_HOME: join(dir, 'cfg'), XDG_DATA_HOME: join(dir, 'data')}},
      )
      const out = JSON.parse(stdout.trim().split('\n').pop()!)
      assert.deepEqual(out, {
        kind: 'keychain',
        autoKind: 'keychain',
        notice: 'Credentials are stored in the OS keychain (service "hoop").',
        a: 'at-a',
        b: 'at-b',
        listed: ['https://a.example.com', 'https://b.example.com'],
        deleted: true,
        after: null,
      })
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
