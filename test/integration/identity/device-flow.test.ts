// The full device flow against the real oidc-provider (the dev IdP mounted in the identity
// runtime): the test plays the user over HTTP while the CLI library polls; the tokens land in the
// file store, the gateway side verifies them, refresh renews them, logout revokes them.
import {strict as assert} from 'node:assert'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {resolveCredential} from '../../../src/client/credentials.js'
import {resolveGateways} from '../../../src/client/gateways.js'
import {runLogin, runLogout, runWhoami, type CliIo} from '../../../src/client/login.js'
import {deviceLogin, fetchGatewaySettings} from '../../../src/identity/oidc-client.js'
import {FileCredentialStore} from '../../../src/identity/token-store.js'
import {HoopError} from '../../../src/shared/errors.js'
import {freePort} from '../../helpers/net.js'
import {completeDeviceLogin} from './browser.js'
import {startMiniGateway, type MiniGateway} from './mini-gateway.js'

describe('identity: device flow against the dev IdP', () => {
  let gw: MiniGateway
  let home: string
  const savedEnv = {...process.env}

  before(async () => {
    gw = await startMiniGateway('connections: []\n', true)
  })
  after(async () => {
    await gw?.close()
  })
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'hoop-id-home-'))
    process.env.XDG_CONFIG_HOME = home
    for (const k of ['HOOP_GATEWAY', 'HOOP_TOKEN', 'HOOP_CLIENT_ID', 'HOOP_CLIENT_SECRET', 'HOOP_ID_TOKEN', 'HOOP_ID_TOKEN_FILE', 'HOOP_CREDENTIAL_STORE']) delete process.env[k]
  })
  afterEach(() => {
    process.env = {...savedEnv}
    rmSync(home, {recursive: true, force: true})
  })

  /** An io that plays the user as soon as the CLI prints the verification URL. */
  function userAt(email: string, opts: {deny?: boolean} = {}): CliIo & {lines: string[]; done: Promise<void>} {
    const lines: string[] = []
    let resolveDone!: () => void
    let rejectDone!: (err: unknown) => void
    const done = new Promise<void>((res, rej) => ((resolveDone = res), (rejectDone = rej)))
    return {
      lines,
      done,
      interactive: false,
      say(line) {
        lines.push(line)
        const m = /open (http\S+)/.exec(line)
        if (m) completeDeviceLogin(m[1], email, opts).then(resolveDone, rejectDone)
      },
    }
  }

  it('publishes the dev issuer in the gateway settings', async () => {
    const s = await fetchGatewaySettings(gw.url)
    assert.equal(s.issuer, `${gw.url}/oidc`)
    assert.equal(s.clientId, 'hoop-cli')
    assert.equal(s.dev, true)
  })

  it('logs in, stores the tokens in the file store, and the gateway verifies the identity', async () => {
    const io = userAt('approver@example.com')
    const result = await runLogin({gateway: gw.url, browser: false, credentialStore: 'file'}, io)
    await io.done // completeDevLogin checks that the provider showed its "signed in" page
    assert.equal(result.email, 'approver@example.com')
    assert.deepEqual(result.groups, ['dba', 'approvers'])
    assert.equal(result.store.kind, 'file')
    assert.match(io.lines[0], /credentials\.json \(file, mode 0600\)/)

    const who = await runWhoami({gateway: gw.url, credentialStore: 'file'})
    assert.equal(who.kind, 'user')
    assert.equal(who.email, 'approver@example.com')
    assert.deepEqual(who.groups, ['dba', 'approvers'])
    assert.equal(who.issuer, `${gw.url}/oidc`)
    assert.equal(who.credential, 'login')
  })

  it('refreshes silently when the access token is about to expire, and asks to log in when refresh fails', async () => {
    const store = new FileCredentialStore(join(home, 'hoop'))
    const io = userAt('engineer@example.com')
    await runLogin({gateway: gw.url, browser: false, credentialStore: 'file'}, io)
    const first = (await store.get(gw.url))!
    // Make the stored token look like it expires in 10 s: inside the 60 s renewal margin.
    await store.put({...first, expiresAt: Math.floor(Date.now() / 1000) + 10})
    const cred = await resolveCredential({gateway: gw.url, store})
    assert.equal(cred.source, 'login')
    assert.notEqual(cred.bearer, first.accessToken, 'a new access token was issued')
    const stored = (await store.get(gw.url))!
    assert.equal(stored.accessToken, cred.bearer)
    assert.ok(stored.expiresAt > Math.floor(Date.now() / 1000) + 60)
    const id = await gw.runtime.authenticator.authenticate(cred.bearer)
    assert.equal(id.email, 'engineer@example.com')

    await store.put({...stored, refreshToken: 'not-a-refresh-token', expiresAt: Math.floor(Date.now() / 1000) - 5})
    await assert.rejects(resolveCredential({gateway: gw.url, store}), (err: HoopError) => {
      assert.equal(err.code, 'NOT_LOGGED_IN')
      assert.match(err.message, /session for .* expired, run `hoop login`/)
      return true
    })
  })

  it('logout revokes at the issuer and deletes locally; the revoked refresh token no longer works', async () => {
    const store = new FileCredentialStore(join(home, 'hoop'))
    await runLogin({gateway: gw.url, browser: false, credentialStore: 'file'}, userAt('admin@example.com'))
    const profile = (await store.get(gw.url))!
    const out = await runLogout({gateway: gw.url, credentialStore: 'file', revoke: true}, {say() {}, interactive: false})
    assert.deepEqual(out, {gateway: gw.url, removed: true, revoked: true})
    assert.equal(await store.get(gw.url), undefined)
    await assert.rejects(resolveCredential({gateway: gw.url, store}), /no credential for/)
    // Put the old profile back, expired: the refresh token was revoked, so renewal must fail.
    await store.put({...profile, expiresAt: 0})
    await assert.rejects(resolveCredential({gateway: gw.url, store}), /expired, run `hoop login`/)
  })

  it('reports a denial in the browser clearly', async () => {
    const settings = await fetchGatewaySettings(gw.url)
    const io = userAt('engineer@example.com', {deny: true})
    await assert.rejects(
      deviceLogin({gateway: gw.url, settings, onPrompt: (p) => io.say(`open ${p.verificationUriComplete}`)}),
      (err: HoopError) => err.code === 'LOGIN_FAILED' && /denied in the browser/.test(err.message),
    )
  })

  it('two gateways keep separate profiles', async () => {
    const other = await startMiniGateway('connections: []\n', true)
    try {
      await runLogin({gateway: gw.url, browser: false, credentialStore: 'file'}, userAt('engineer@example.com'))
      await runLogin({gateway: other.url, browser: false, credentialStore: 'file'}, userAt('admin@example.com'))
      const store = new FileCredentialStore(join(home, 'hoop'))
      assert.equal((await store.get(gw.url))?.email, 'engineer@example.com')
      assert.equal((await store.get(other.url))?.email, 'admin@example.com')
      // A token from one gateway's dev IdP is not trusted by the other.
      await assert.rejects(other.runtime.authenticator.authenticate((await store.get(gw.url))!.accessToken), /is not trusted/)
    } finally {
      await other.close()
    }
  })

  it('a list of replicas is one login: through the first that answers, stored under the first URL, the list remembered', async () => {
    const down = `http://127.0.0.1:${await freePort()}`
    const io = userAt('engineer@example.com')
    const result = await runLogin({gateway: down, replicas: [down, gw.url], browser: false, credentialStore: 'file'}, io)
    await io.done
    assert.equal(result.gateway, down)
    assert.match(io.lines.at(-1)!, new RegExp(`Logged in to ${down}, ${gw.url} as engineer@example.com`))
    const store = new FileCredentialStore(join(home, 'hoop'))
    assert.equal((await store.get(down))?.email, 'engineer@example.com')
    assert.equal(await store.get(gw.url), undefined, 'one login for the gateway, not one per replica')
    // Later commands without --gateway get the whole list, and find the login under its first URL.
    const later = resolveGateways()
    assert.deepEqual(later, {identity: down, replicas: [down, gw.url]})
    const cred = await resolveCredential({gateway: later.identity, replicas: later.replicas, credentialStore: 'file'})
    assert.equal(cred.source, 'login')
    assert.equal((await gw.runtime.authenticator.authenticate(cred.bearer)).email, 'engineer@example.com')
  })
})
