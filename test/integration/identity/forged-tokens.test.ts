// Forged and broken tokens are refused with a message naming the rule broken. The issuer is a
// real oidc-provider whose signing key the test also holds, so it can mint tokens that are
// correctly signed but wrong in one claim, next to tokens that are wrongly signed.
import {strict as assert} from 'node:assert'
import {createPublicKey} from 'node:crypto'
import {SignJWT, exportSPKI, generateKeyPair, importJWK, type JWK} from 'jose'
import type {AuthConfig} from '../../../src/identity/auth-config.js'
import {createAuthenticator} from '../../../src/identity/authenticator.js'
import {generateSigningJwks, startDevIdpServer} from '../../../src/identity/dev-idp.js'
import {DEFAULT_DEV_USERS} from '../../../src/identity/auth-config.js'
import type {Authenticator} from '../../../src/identity/types.js'

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

describe('identity: forged and broken tokens are refused', () => {
  let idp: Awaited<ReturnType<typeof startDevIdpServer>>
  let jwk: JWK
  let auth: Authenticator
  const now = () => Math.floor(Date.now() / 1000)

  before(async () => {
    const jwks = await generateSigningJwks('idp-key-1')
    jwk = jwks.keys[0]
    idp = await startDevIdpServer({users: DEFAULT_DEV_USERS, jwks})
    const cfg: AuthConfig = {
      oidc: {issuer: idp.issuer, clientId: 'hoop-cli', audience: 'hoop', scopes: ['openid'], groupsClaim: 'groups', algorithms: ['RS256', 'ES256'], clockSkew: 30},
      workloads: [],
    }
    auth = createAuthenticator(cfg, {jwksCooldownMs: 0})
  })
  after(async () => {
    await idp?.close()
  })

  const claims = (over: Record<string, unknown> = {}) => ({
    iss: idp.issuer,
    aud: 'hoop',
    sub: 'engineer@example.com',
    email: 'engineer@example.com',
    groups: ['engineering'],
    iat: now(),
    exp: now() + 300,
    ...over,
  })
  type SignKey = Parameters<SignJWT['sign']>[0]
  async function sign(payload: Record<string, unknown>, header: {kid?: string; alg?: string} = {}, key?: SignKey) {
    const k = key ?? (await importJWK(jwk, 'RS256'))
    return new SignJWT(payload).setProtectedHeader({alg: header.alg ?? 'RS256', kid: header.kid ?? 'idp-key-1', typ: 'at+jwt'}).sign(k)
  }
  const refused = (token: string, re: RegExp) =>
    assert.rejects(auth.authenticate(token), (err: Error & {code?: string}) => {
      assert.equal(err.code, 'TOKEN_REJECTED')
      assert.match(err.message, re)
      return true
    })

  it('accepts a correctly signed token (baseline for the cases below)', async () => {
    const id = await auth.authenticate(await sign(claims()))
    assert.equal(id.kind, 'user')
    assert.equal(id.email, 'engineer@example.com')
    assert.deepEqual(id.groups, ['engineering'])
  })

  it('alg none', async () => {
    await refused(`${b64({alg: 'none', typ: 'JWT'})}.${b64(claims())}.`, /algorithm "none" is not allowed/)
  })

  it('HS256 signed with the RSA public key as the secret (key confusion)', async () => {
    const pem = await exportSPKI(createPublicKey({key: jwk as never, format: 'jwk'}) as never)
    const token = await new SignJWT(claims()).setProtectedHeader({alg: 'HS256', kid: 'idp-key-1'}).sign(new TextEncoder().encode(pem))
    await refused(token, /algorithm "HS256" is not allowed/)
  })

  it('expired', async () => {
    await refused(await sign(claims({iat: now() - 600, exp: now() - 120})), /token expired at/)
  })

  it('not yet valid', async () => {
    await refused(await sign(claims({nbf: now() + 600})), /not valid before/)
  })

  it('wrong iss (signed with the trusted key)', async () => {
    await refused(await sign(claims({iss: 'https://evil.example.com'})), /issuer "https:\/\/evil.example.com" is not trusted/)
  })

  it('wrong aud', async () => {
    await refused(await sign(claims({aud: 'some-other-api'})), /audience \["?some-other-api"?\]? does not include "hoop"|audience "some-other-api"/)
  })

  it('unknown kid', async () => {
    await refused(await sign(claims(), {kid: 'rotated-away'}), /key id "rotated-away" is not among the keys/)
  })

  it('valid signature from an untrusted key (same kid)', async () => {
    const {privateKey} = await generateKeyPair('RS256')
    await refused(await sign(claims(), {}, privateKey), /signature does not verify/)
  })

  it('payload altered after signing', async () => {
    const [h, , s] = (await sign(claims())).split('.')
    await refused(`${h}.${b64(claims({groups: ['admins']}))}.${s}`, /signature does not verify/)
  })

  it('garbage and non-JWT bearers', async () => {
    await refused('not-a-token', /neither a service-account key nor a JWT/)
    await refused(`${b64({alg: 'RS256'})}.${b64({sub: 'x'})}.abc`, /no "iss" claim/)
  })
})
