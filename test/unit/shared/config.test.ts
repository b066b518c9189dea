// The gateway config: connections with credentials only as references, every problem reported
// with its line, defaults by type.
import assert from 'node:assert/strict'
import {HoopError} from '../../../src/shared/errors.js'
import {parseGatewayConfig, parseHostPort, readSecret} from '../../../src/shared/config.js'

function problems(yaml: string): string {
  try {
    parseGatewayConfig(yaml, 'gw.yaml')
  } catch (err) {
    assert.ok(err instanceof HoopError)
    assert.equal(err.code, 'CONFIG_INVALID')
    return err.message
  }
  assert.fail('expected the config to be refused')
}

describe('gateway config', () => {
  it('parses connections with references and defaults', () => {
    const cfg = parseGatewayConfig(
      `listen: 127.0.0.1:9000
connections:
  - name: db
    type: postgres
    target: db.internal:5432
    password: {env: DB_PASSWORD}
  - name: api
    type: http
    target: "[::1]:8080"
    agent: edge
    token: {file: secrets/api-token}
    httpAuth: basic
`,
      '/etc/hoop/gw.yaml',
    )
    assert.equal(cfg.listen, '127.0.0.1:9000')
    assert.deepEqual(cfg.connections.map((c) => [c.name, c.host, c.port, c.agent]), [
      ['db', 'db.internal', 5432, 'embedded'],
      ['api', '::1', 8080, 'edge'],
    ])
    assert.deepEqual(cfg.connections[0].password, {env: 'DB_PASSWORD'})
    assert.deepEqual(cfg.connections[1].token, {file: '/etc/hoop/secrets/api-token'}, 'file references resolve against the config dir')
    assert.equal(cfg.connections[0].tls.mode, 'disable')
  })

  it('selects the store: SQLite by default, PostgreSQL by a URL reference; metrics by a token reference', () => {
    const plain = parseGatewayConfig('connections: []\n', '/etc/hoop/gw.yaml')
    assert.deepEqual([plain.store, plain.metrics], [{kind: 'sqlite'}, {}])
    assert.deepEqual(parseGatewayConfig('store: {sqlite: {}}\n', 'gw.yaml').store, {kind: 'sqlite'})
    const cfg = parseGatewayConfig('store:\n  postgres:\n    url: {file: store-url}\n    poolSize: 20\nmetrics:\n  token: {env: HOOP_METRICS_TOKEN}\n', '/etc/hoop/gw.yaml')
    assert.deepEqual(cfg.store, {kind: 'postgres', url: {file: '/etc/hoop/store-url'}, poolSize: 20})
    assert.deepEqual(cfg.metrics, {token: {env: 'HOOP_METRICS_TOKEN'}})
  })

  it('refuses a store URL written inline, naming its line and never echoing it, and other bad store settings', () => {
    const msg = problems('store:\n  postgres:\n    url: postgres://hoop:hunter2@db/hoop\n')
    assert.match(msg, /^gw\.yaml:3:\d+: store\.postgres\.url must be a reference/)
    assert.doesNotMatch(msg, /hunter2/)
    assert.match(problems('store: {mysql: {}}\n'), /gw\.yaml:1:\d+: store must be \{sqlite: \{\}\} or \{postgres:/)
    assert.match(problems('store: {postgres: {url: {env: U}, poolSize: 0, host: x}}\n'), /poolSize must be a whole number from 1 to 100[\s\S]*unknown key "host" in store\.postgres|unknown key "host" in store\.postgres[\s\S]*poolSize must be/)
    assert.match(problems('metrics: {token: abc}\n'), /metrics\.token must be a reference/)
  })

  it('refuses an inline secret, naming its line, and never echoes the value', () => {
    const msg = problems(`connections:
  - name: db
    type: postgres
    target: db:5432
    password: hunter2
`)
    assert.match(msg, /^gw\.yaml:5:\d+: password must be a reference/)
    assert.doesNotMatch(msg, /hunter2/)
  })

  it('reports every problem at once with its line', () => {
    const msg = problems(`connections:
  - name: Bad Name
    type: oracle
    target: nowhere
  - name: ok
    type: tcp
    target: 127.0.0.1:0
    colour: blue
unknown: 1
`)
    const lines = msg.split('\n')
    assert.ok(lines.some((l) => /^gw\.yaml:2:\d+: name must be/.test(l)), msg)
    assert.ok(lines.some((l) => /^gw\.yaml:3:\d+: type must be one of postgres, mysql, http, tcp/.test(l)), msg)
    assert.ok(lines.some((l) => /^gw\.yaml:4:\d+: expected host:port/.test(l)), msg)
    assert.ok(lines.some((l) => /^gw\.yaml:7:\d+: target port must not be 0/.test(l)), msg)
    assert.ok(lines.some((l) => /^gw\.yaml:8:\d+: unknown key "colour"/.test(l)), msg)
    assert.ok(lines.some((l) => /^gw\.yaml:9:\d+: unknown key "unknown"/.test(l)), msg)
  })

  it('refuses duplicate names and http-only keys on other types', () => {
    assert.match(problems(`connections:\n  - {name: a, type: tcp, target: "h:1"}\n  - {name: a, type: postgres, target: "h:2"}\n`), /gw\.yaml:3:\d+: duplicate connection name "a"/)
    assert.match(problems(`connections:\n  - {name: b, type: postgres, target: "h:2", forwardAuthorization: true}\n`), /apply to http connections only/)
  })

  it('parses host:port forms and rejects bad ports', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:8009'), {host: '0.0.0.0', port: 8009})
    assert.deepEqual(parseHostPort(':8009'), {host: '127.0.0.1', port: 8009})
    assert.throws(() => parseHostPort('h:99999'), /out of range/)
  })

  it('reads a referenced secret and names a missing reference without a value', () => {
    process.env.HOOP_TEST_SECRET_X = 's3cret'
    assert.equal(readSecret({env: 'HOOP_TEST_SECRET_X'}), 's3cret')
    delete process.env.HOOP_TEST_SECRET_X
    assert.throws(() => readSecret({env: 'HOOP_TEST_SECRET_X'}), /HOOP_TEST_SECRET_X is not set/)
  })
})
