import {strict as assert} from 'node:assert'
import {DEFAULT_DEV_USERS, parseAuthConfig, parseDevConfig, parseDuration} from '../../../src/identity/auth-config.js'
import {claimMatches} from '../../../src/identity/authenticator.js'
import {parseGatewayConfig} from '../../../src/shared/config.js'
import type {HoopError} from '../../../src/shared/errors.js'

const load = (yaml: string) => parseGatewayConfig(yaml, 'gw.yaml')

describe('identity: auth config', () => {
  it('reads the documented shape with defaults', () => {
    const auth = parseAuthConfig(
      load(`auth:
  oidc: {issuer: https://id.example.com/, clientId: hoop-cli, audience: hoop, clockSkew: 30s}
  clientCredentials: {issuer: https://id.example.com, audience: hoop}
  workloads:
    - issuer: https://token.actions.example.com
      audience: hoop
      rules:
        - id: deploy-main
          claims: {repository: acme/api, ref: refs/heads/main}
          subject: ci:acme-api-main
          groups: [ci-deploy]
`),
    )
    assert.equal(auth.oidc?.issuer, 'https://id.example.com')
    assert.deepEqual(auth.oidc?.scopes, ['openid', 'email', 'profile', 'offline_access'])
    assert.deepEqual(auth.oidc?.algorithms, ['RS256', 'ES256', 'EdDSA'])
    assert.equal(auth.oidc?.clockSkew, 30)
    assert.equal(auth.oidc?.groupsClaim, 'groups')
    assert.equal(auth.clientCredentials?.audience, 'hoop')
    assert.deepEqual(auth.workloads[0].rules[0].claims, {repository: 'acme/api', ref: 'refs/heads/main'})
  })

  it('reports every problem with its line', () => {
    const yaml = `auth:
  oidc:
    issuer: http://id.example.com
    clientId: hoop-cli
    audience: hoop
    algorithms: [RS256, HS256]
  workloads:
    - issuer: https://ci.example.com
      audience: hoop
      rules:
        - id: r1
          claims: {}
          subject: ci:x
`
    assert.throws(
      () => parseAuthConfig(load(yaml)),
      (err: HoopError) => {
        assert.equal(err.code, 'CONFIG_INVALID')
        assert.match(err.message, /gw\.yaml:3:\d+: issuer "http:\/\/id\.example\.com" must use https/)
        assert.match(err.message, /gw\.yaml:6:\d+: algorithm "HS256" is not allowed/)
        assert.match(err.message, /gw\.yaml:12:\d+: claims must map at least one claim/)
        return true
      },
    )
  })

  it('accepts plain http issuers on loopback only', () => {
    assert.equal(parseAuthConfig(load('auth: {oidc: {issuer: "http://127.0.0.1:9000/oidc", clientId: c, audience: a}}')).oidc?.issuer, 'http://127.0.0.1:9000/oidc')
  })

  it('the web console: its own client id and public https address, checked like an issuer', () => {
    const oidc = parseAuthConfig(load('auth: {oidc: {issuer: "https://id.example.com", clientId: c, consoleClientId: web, consoleUrl: "https://hoop.example.com/", audience: a}}')).oidc
    assert.equal(oidc?.consoleClientId, 'web')
    assert.equal(oidc?.consoleUrl, 'https://hoop.example.com')
    assert.throws(() => parseAuthConfig(load('auth: {oidc: {issuer: "https://id.example.com", clientId: c, consoleUrl: "http://hoop.example.com", audience: a}}')), /consoleUrl "http:\/\/hoop\.example\.com" must use https/)
    assert.throws(() => parseAuthConfig(load('auth: {oidc: {issuer: "https://id.example.com", clientId: c, consoleClientId: "", audience: a}}')), /consoleClientId must be the client id/)
  })

  it('dev users: built-in defaults, or the configured list', () => {
    assert.deepEqual(parseDevConfig(load('connections: []')).users, DEFAULT_DEV_USERS)
    const dev = parseDevConfig(load('dev: {users: [{email: a@x.io, groups: [g]}], accessTokenTtl: 2m}'))
    assert.deepEqual(dev.users, [{email: 'a@x.io', name: 'a@x.io', groups: ['g']}])
    assert.equal(dev.accessTokenTtl, 120)
    assert.throws(() => parseDevConfig(load('dev: {users: [{email: nope}]}')), /gw\.yaml:1:\d+: email must be an e-mail address/)
  })

  it('durations and claim patterns', () => {
    assert.equal(parseDuration('90s'), 90)
    assert.equal(parseDuration('2m'), 120)
    assert.equal(parseDuration('soon'), undefined)
    assert.equal(claimMatches('refs/tags/v1.2', 'refs/tags/v*'), true)
    assert.equal(claimMatches('refs/heads/main', 'refs/tags/v*'), false)
    assert.equal(claimMatches('acme/api', ['acme/web', 'acme/api']), true)
    assert.equal(claimMatches('acme/api.x', 'acme/api'), false)
    assert.equal(claimMatches(undefined, '*'), false)
  })
})
