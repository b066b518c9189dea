import {strict as assert} from 'node:assert'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {FileCredentialStore, openCredentialStore, storeNotice, type LoginProfile} from '../../../src/identity/token-store.js'

const profile = (gateway: string, accessToken = 'at-1'): LoginProfile => ({
  gateway,
  issuer: 'https://id.example.com',
  clientId: 'hoop-cli',
  accessToken,
  refreshToken: 'rt-1',
  expiresAt: 2_000_000_000,
  subject: 'u1',
  email: 'u1@example.com',
  groups: ['engineering'],
  loggedInAt: 1_700_000_000,
})

describe('identity: file credential store', () => {
  let base: string
  beforeEach(() => (base = mkdtempSync(join(tmpdir(), 'hoop-store-'))))
  afterEach(() => rmSync(base, {recursive: true, force: true}))

  it('creates the dir 0700 and the file 0600', async () => {
    const store = new FileCredentialStore(join(base, 'hoop'))
    await store.put(profile('https://a.example.com'))
    assert.equal(statSync(join(base, 'hoop')).mode & 0o777, 0o700)
    assert.equal(statSync(store.file).mode & 0o777, 0o600)
  })

  it('keeps HOOP_PROFILE profiles of one gateway apart', async () => {
    const store = new FileCredentialStore(join(base, 'hoop'))
    const saved = process.env.HOOP_PROFILE
    try {
      delete process.env.HOOP_PROFILE
      await store.put(profile('https://a.example.com', 'engineer-token'))
      process.env.HOOP_PROFILE = 'approver'
      assert.equal(await store.get('https://a.example.com'), undefined)
      await store.put(profile('https://a.example.com', 'approver-token'))
      assert.equal((await store.get('https://a.example.com'))?.accessToken, 'approver-token')
      delete process.env.HOOP_PROFILE
      assert.equal((await store.get('https://a.example.com'))?.accessToken, 'engineer-token')
      assert.equal((await store.list()).length, 2)
    } finally {
      if (saved === undefined) delete process.env.HOOP_PROFILE
      else process.env.HOOP_PROFILE = saved
    }
  })

  it('tightens an existing group/world-readable dir', async () => {
    mkdirSync(join(base, 'hoop'), {mode: 0o755})
    const store = new FileCredentialStore(join(base, 'hoop'))
    await store.put(profile('https://a.example.com'))
    assert.equal(statSync(join(base, 'hoop')).mode & 0o777, 0o700)
  })

  it('replaces the file atomically: new inode, no temp files left, old content never half-written', async () => {
    const store = new FileCredentialStore(join(base, 'hoop'))
    await store.put(profile('https://a.example.com', 'at-1'))
    const before = statSync(store.file).ino
    await store.put(profile('https://a.example.com', 'at-2'))
    assert.notEqual(statSync(store.file).ino, before, 'written to a temp file and renamed over')
    assert.deepEqual(readdirSync(join(base, 'hoop')), ['credentials.json'])
    assert.equal(JSON.parse(readFileSync(store.file, 'utf8')).profiles['https://a.example.com'].accessToken, 'at-2')
    assert.equal(statSync(store.file).mode & 0o777, 0o600)
  })

  it('keeps one profile per gateway URL', async () => {
    const store = new FileCredentialStore(join(base, 'hoop'))
    await store.put(profile('https://a.example.com', 'at-a'))
    await store.put(profile('https://b.example.com', 'at-b'))
    assert.equal((await store.get('https://a.example.com'))?.accessToken, 'at-a')
    assert.equal((await store.get('https://b.example.com'))?.accessToken, 'at-b')
    assert.equal(await store.delete('https://a.example.com'), true)
    assert.equal(await store.delete('https://a.example.com'), false)
    assert.deepEqual((await store.list()).map((p) => p.gateway), ['https://b.example.com'])
  })

  it('names a corrupt file instead of overwriting it', async () => {
    mkdirSync(join(base, 'hoop'), {mode: 0o700})
    writeFileSync(join(base, 'hoop', 'credentials.json'), '{oops', {mode: 0o600})
    const store = new FileCredentialStore(join(base, 'hoop'))
    await assert.rejects(store.get('https://a.example.com'), /is not valid; delete it and run `hoop login`/)
  })

  it('auto falls back to the file store with a one-line reason when no keychain answers', async function () {
    if (process.env.DBUS_SESSION_BUS_ADDRESS) this.skip() // a keychain may exist here; covered by the keychain test
    const store = await openCredentialStore('auto', join(base, 'hoop'))
    assert.equal(store.kind, 'file')
    const notice = storeNotice(store)
    assert.match(notice, /credentials\.json \(file, mode 0600\): no OS keychain available/)
    assert.equal(notice.includes('\n'), false)
    await assert.rejects(openCredentialStore('keychain', join(base, 'hoop')), /--credential-store keychain: no OS keychain available/)
  })
})
