// The notifications section of the gateway config: webhooks with secrets as references, checked
// all at once with line numbers; URLs https (http on loopback only); no secret ever in a message.
import assert from 'node:assert/strict'
import {parseNotifySettings} from '../../../src/notify/config.js'
import {parseGatewayConfig} from '../../../src/shared/config.js'
import {HoopError} from '../../../src/shared/errors.js'

const settings = (yaml: string) => parseNotifySettings(parseGatewayConfig(`connections: []\nnotifications:\n${yaml}`, '/etc/hoop/gw.yaml'))

function problems(yaml: string): string {
  try {
    settings(yaml)
  } catch (err) {
    assert.ok(err instanceof HoopError)
    assert.equal(err.code, 'CONFIG_INVALID')
    return err.message
  }
  assert.fail('expected CONFIG_INVALID')
}

const SIGNING = 'k'.repeat(32)
const SLACK = 'https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX'

describe('notification settings', () => {
  beforeEach(() => {
    process.env.HOOP_TEST_SIGNING = SIGNING
    process.env.HOOP_TEST_SLACK = SLACK
  })
  afterEach(() => {
    delete process.env.HOOP_TEST_SIGNING
    delete process.env.HOOP_TEST_SLACK
  })

  it('has no webhooks without a notifications section', () => {
    assert.deepEqual(parseNotifySettings(parseGatewayConfig('connections: []\n', 'gw.yaml')), {webhooks: []})
  })

  it('reads json and slack webhooks, their secrets from references, with defaults', () => {
    const s = settings(`  publicUrl: https://hoop.example.com/
  webhooks:
    - name: security
      url: https://hooks.example.com/hoop
      secret: {env: HOOP_TEST_SIGNING}
    - name: dba-channel
      format: slack
      url: {env: HOOP_TEST_SLACK}
      events: [approval.requested, approval.used]
      timeout: 2s
      queue: 50
      retries: 0
      statement: false
`)
    assert.equal(s.publicUrl, 'https://hoop.example.com')
    const [json, slack] = s.webhooks
    assert.equal(json.format, 'json')
    assert.equal(json.url, 'https://hooks.example.com/hoop')
    assert.equal(json.secret, SIGNING)
    assert.deepEqual([...json.events], ['approval.requested', 'approval.approved', 'approval.rejected', 'approval.expired'])
    assert.deepEqual([json.timeoutMs, json.queueSize, json.retries, json.statement], [5000, 1000, 6, true])
    assert.equal(slack.format, 'slack')
    assert.equal(slack.url, SLACK)
    assert.equal(slack.secret, undefined)
    assert.deepEqual([...slack.events], ['approval.requested', 'approval.used'])
    assert.deepEqual([slack.timeoutMs, slack.queueSize, slack.retries, slack.statement], [2000, 50, 0, false])
  })

  it('accepts plain http on loopback only', () => {
    const ok = settings(`  webhooks:\n    - {name: local, url: "http://127.0.0.1:9000/in", secret: {env: HOOP_TEST_SIGNING}}\n`)
    assert.equal(ok.webhooks[0].url, 'http://127.0.0.1:9000/in')
    assert.match(problems(`  webhooks:\n    - {name: remote, url: "http://hooks.example.com/in", secret: {env: HOOP_TEST_SIGNING}}\n`), /gw\.yaml:4:\d+: url must be https:\/\/ \(plain http only on loopback\)/)
  })

  it('reports every problem at once, each with its line', () => {
    const msg = problems(`  webhooks:
    - name: no-secret
      url: https://hooks.example.com/a
    - name: inline-slack
      format: slack
      url: https://hooks.slack.com/services/T/B/secretpart
    - name: inline-secret
      url: https://hooks.example.com/b
      secret: hunter2hunter2hunter2
    - name: bad-event
      url: https://hooks.example.com/c
      secret: {env: HOOP_TEST_SIGNING}
      events: [approval.requested, approval.maybe]
      timeout: 2m
      colour: blue
    - name: no-secret
      format: teams
      url: ftp://x
`)
    const lines = msg.split('\n')
    assert.match(msg, /gw\.yaml:4:\d+: secret is required for format json/)
    assert.match(msg, /gw\.yaml:8:\d+: url must be a reference, \{env: VAR\} or \{file: PATH\}: a Slack incoming-webhook URL is itself the credential/)
    assert.match(msg, /gw\.yaml:11:\d+: secret must be a reference/)
    assert.match(msg, /gw\.yaml:15:\d+: unknown event "approval\.maybe"/)
    assert.match(msg, /gw\.yaml:16:\d+: timeout must be a duration from 100ms to 60s/)
    assert.match(msg, /gw\.yaml:17:\d+: unknown key "colour" in webhook/)
    assert.match(msg, /gw\.yaml:19:\d+: format must be json .* or slack/)
    assert.match(msg, /gw\.yaml:20:\d+: url must be https:\/\//)
    assert.ok(lines.length >= 8, msg)
    assert.doesNotMatch(msg, /secretpart|hunter2/, 'a message never repeats a secret')
  })

  it('names a missing or weak secret by its reference, never by value', () => {
    process.env.HOOP_TEST_SIGNING = 'short-secret'
    const msg = problems(`  webhooks:
    - {name: a, url: "https://h.example.com/a", secret: {env: HOOP_TEST_SIGNING}}
    - {name: b, format: slack, url: {env: HOOP_TEST_MISSING}}
`)
    assert.match(msg, /gw\.yaml:4:\d+: the signing key must have at least 16 characters/)
    assert.match(msg, /gw\.yaml:5:\d+: secret environment variable HOOP_TEST_MISSING is not set/)
    assert.doesNotMatch(msg, /short-secret/)
  })

  it('checks the URL a reference holds without printing it', () => {
    process.env.HOOP_TEST_SLACK = 'http://hooks.slack.com/services/T/B/secretpart'
    const msg = problems(`  webhooks:\n    - {name: s, format: slack, url: {env: HOOP_TEST_SLACK}}\n`)
    assert.match(msg, /the URL this reference holds must be https:\/\//)
    assert.doesNotMatch(msg, /secretpart/)
  })

  it('refuses credentials in an inline URL and duplicate names', () => {
    const msg = problems(`  webhooks:
    - {name: a, url: "https://user:pw@h.example.com/a", secret: {env: HOOP_TEST_SIGNING}}
    - {name: b, url: "https://h.example.com/b", secret: {env: HOOP_TEST_SIGNING}}
    - {name: b, url: "https://h.example.com/c", secret: {env: HOOP_TEST_SIGNING}}
`)
    assert.match(msg, /must not carry credentials/)
    assert.match(msg, /gw\.yaml:6:\d+: duplicate webhook name "b"/)
  })

  it('rejects a notifications section of the wrong shape', () => {
    assert.match(problems('  - just a list\n'), /notifications must be a mapping/)
    assert.match(problems('  hooks: []\n'), /unknown key "hooks" in notifications/)
  })
})
