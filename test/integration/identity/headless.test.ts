// Headless identities from issuers independent of the login IdP: OAuth client credentials, and CI
// workload tokens mapped by claims. Each issuer is its own real oidc-provider; the "CI platform"
// issues JWTs carrying repository/ref/workflow claims, like a CI system's OIDC ID token.
import {strict as assert} from 'node:assert'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {resolveCredential} from '../../../src/client/credentials.js'
import {runWhoami} from '../../../src/client/login.js'
import {startDevIdpServer} from '../../../src/identity/dev-idp.js'
import {clientCredentialsToken} from '../../../src/identity/oidc-client.js'
import {issueKey} from '../../../src/identity/keys.js'
import type {HoopError} from '../../../src/shared/errors.js'
import {startMiniGateway, type MiniGateway} from './mini-gateway.js'

const confidential = (id: string, secret: string) => ({
  client_id: id,
  client_secret: secret,
  token_endpoint_auth_method: 'client_secret_post',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
})

describe('identity: client credentials and CI workload identity', () => {
  let ccIdp: Awaited<ReturnType<typeof startDevIdpServer>>
  let ciIdp: Awaited<ReturnType<typeof startDevIdpServer>>
  let gw: MiniGateway
  let dir: string
  const saved = {...process.env}

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-id-ci-'))
    ccIdp = await startDevIdpServer({users: [], deviceClientId: null, clients: [confidential('reporting-job', 'cc-secret-1'), confidential('stranger', 'cc-secret-2')]})
    ciIdp = await startDevIdpServer({
      users: [],
      deviceClientId: null,
      audience: 'hoop-ci',
      clients: [confidential('run-main', 'x1'), confidential('run-fork', 'x2'), confidential('run-tag', 'x3')],
      clientClaims: {
        'run-main': {repository: 'acme/api', ref: 'refs/heads/main', workflow: 'deploy', environment: 'production'},
        'run-fork': {repository: 'mallory/api', ref: 'refs/heads/main', workflow: 'deploy'},
        'run-tag': {repository: 'acme/api', ref: 'refs/tags/v1.2.3', workflow: 'release'},
      },
    })
    gw = await startMiniGateway(
      `connections: []
auth:
  clientCredentials:
    issuer: ${ccIdp.issuer}
    audience: hoop
    clients:
      reporting-job: {groups: [reporting]}
  workloads:
    - issuer: ${ciIdp.issuer}
      audience: hoop-ci
      rules:
        - id: deploy-main
          claims: {repository: acme/api, ref: refs/heads/main}
          subject: ci:acme-api-main
          groups: [ci-deploy]
        - id: release-tags
          claims: {repository: acme/api, ref: "refs/tags/v*"}
          subject: ci:acme-api-release
          groups: [ci-release]
`,
      false,
    )
  })
  after(async () => {
    process.env = {...saved}
    await gw?.close()
    await ccIdp?.close()
    await ciIdp?.close()
    rmSync(dir, {recursive: true, force: true})
  })
  afterEach(() => {
    process.env = {...saved}
  })

  const ciToken = async (client: string, secret: string) =>
    (await clientCredentialsToken({issuer: ciIdp.issuer, audience: 'hoop-ci'}, client, secret)).accessToken

  it('publishes the client-credentials issuer', () => {
    assert.deepEqual(gw.runtime.publicSettings().clientCredentials, {issuer: ccIdp.issuer, audience: 'hoop'})
    assert.equal(gw.runtime.publicSettings().issuer, undefined)
  })

  it('HOOP_CLIENT_ID/HOOP_CLIENT_SECRET: exchanged for a short-lived token the gateway maps to a client identity', async () => {
    const env = {HOOP_CLIENT_ID: 'reporting-job', HOOP_CLIENT_SECRET: 'cc-secret-1'}
    const cred = await resolveCredential({gateway: gw.url, env})
    assert.equal(cred.source, 'client-credentials')
    assert.ok(cred.expiresAt! > Date.now() / 1000)
    const again = await resolveCredential({gateway: gw.url, env})
    assert.equal(again.bearer, cred.bearer, 'the token is cached in memory')
    const id = await gw.runtime.authenticator.authenticate(cred.bearer)
    assert.deepEqual({kind: id.kind, subject: id.subject, groups: id.groups}, {kind: 'client', subject: 'client:reporting-job', groups: ['reporting']})
  })

  it('refuses a client the gateway does not list, and a wrong secret at the issuer', async () => {
    const t = await clientCredentialsToken({issuer: ccIdp.issuer, audience: 'hoop'}, 'stranger', 'cc-secret-2')
    await assert.rejects(gw.runtime.authenticator.authenticate(t.accessToken), /client "stranger" is not listed/)
    await assert.rejects(
      resolveCredential({gateway: gw.url, env: {HOOP_CLIENT_ID: 'reporting-job', HOOP_CLIENT_SECRET: 'wrong'}}),
      (err: HoopError) => err.code === 'NOT_LOGGED_IN' && /were refused by/.test(err.message),
    )
  })

  it('CI token from a file: mapped by claims to the rule\'s identity and groups; whoami shows it', async () => {
    const file = join(dir, 'ci-token')
    writeFileSync(file, (await ciToken('run-main', 'x1')) + '\n')
    process.env.HOOP_ID_TOKEN_FILE = file
    for (const k of ['HOOP_TOKEN', 'HOOP_CLIENT_ID', 'HOOP_CLIENT_SECRET', 'HOOP_ID_TOKEN']) delete process.env[k]
    const who = await runWhoami({gateway: gw.url, credentialStore: 'file'})
    assert.equal(who.kind, 'ci')
    assert.equal(who.subject, 'ci:acme-api-main')
    assert.equal(who.name, 'deploy-main')
    assert.deepEqual(who.groups, ['ci-deploy'])
    assert.equal(who.credential, 'ci-token')
    assert.equal(who.claims?.repository, 'acme/api')
    assert.equal(who.claims?.environment, 'production')
  })

  it('CI token via HOOP_ID_TOKEN with a wildcard rule', async () => {
    const cred = await resolveCredential({gateway: gw.url, env: {HOOP_ID_TOKEN: await ciToken('run-tag', 'x3')}})
    const id = await gw.runtime.authenticator.authenticate(cred.bearer)
    assert.equal(id.subject, 'ci:acme-api-release')
  })

  it('a CI token whose claims match no rule is refused, naming the claims', async () => {
    await assert.rejects(gw.runtime.authenticator.authenticate(await ciToken('run-fork', 'x2')), (err: HoopError) => {
      assert.equal(err.code, 'TOKEN_REJECTED')
      assert.match(err.message, /matches no workload rule \(repository="mallory\/api", ref="refs\/heads\/main"\)/)
      return true
    })
  })

  it('a token with matching CI claims from an issuer the gateway does not trust is refused', async () => {
    const other = await startDevIdpServer({users: [], deviceClientId: null, clients: [confidential('run-main', 'x1')], clientClaims: {'run-main': {repository: 'acme/api', ref: 'refs/heads/main'}}})
    try {
      const t = await clientCredentialsToken({issuer: other.issuer, audience: 'hoop'}, 'run-main', 'x1')
      await assert.rejects(gw.runtime.authenticator.authenticate(t.accessToken), /is not trusted/)
    } finally {
      await other.close()
    }
  })

  it('service-account keys keep working, and HOOP_TOKEN comes first', async () => {
    const key = issueKey('sa')
    await gw.store.createServiceAccount('etl', ['etl'], key.id, key.hash)
    const cred = await resolveCredential({gateway: gw.url, env: {HOOP_TOKEN: key.token, HOOP_CLIENT_ID: 'reporting-job', HOOP_CLIENT_SECRET: 'cc-secret-1'}})
    assert.equal(cred.source, 'token')
    const id = await gw.runtime.authenticator.authenticate(cred.bearer)
    assert.deepEqual({kind: id.kind, name: id.name, groups: id.groups}, {kind: 'service-account', name: 'etl', groups: ['etl']})
  })
})
