// The audit section of the gateway config: sinks, retention, checkpoints, recording cap.
import assert from 'node:assert/strict'
import {JsonlFileSink, WebhookSink} from '../../../src/audit/index.js'
import {parseAuditSettings} from '../../../src/gateway/audit-config.js'
import {parseGatewayConfig} from '../../../src/shared/config.js'

const settings = (audit: string) => parseAuditSettings(parseGatewayConfig(`connections: []\naudit:\n${audit}`, '/etc/hoop/gw.yaml'))

describe('audit settings', () => {
  it('has defaults without an audit section', () => {
    const s = parseAuditSettings(parseGatewayConfig('connections: []\n', 'gw.yaml'))
    assert.deepEqual(s.checkpointEvery, {events: 10_000, ms: 60_000})
    assert.equal(s.recordingCap, 10 * 1024 * 1024)
    assert.deepEqual(s.sinks, [])
    assert.equal(s.durability, 'fsync')
    assert.equal(s.mode, 'hold')
  })

  it('builds file and webhook sinks, with header secrets from references', () => {
    process.env.HOOP_TEST_SIEM = 'Bearer siem-token'
    try {
      const s = settings(`  recordingCap: 2MiB
  retentionDays: 30
  checkpoint: {events: 500, interval: 30s}
  durability: os
  mode: strict
  sinks:
    - {type: file, path: audit.jsonl}
    - {type: webhook, url: "https://siem.example.com/in", headers: {Authorization: {env: HOOP_TEST_SIEM}}}
`)
      assert.equal(s.recordingCap, 2 * 1024 * 1024)
      assert.equal(s.retentionDays, 30)
      assert.equal(s.durability, 'os')
      assert.equal(s.mode, 'strict')
      assert.deepEqual(s.checkpointEvery, {events: 500, ms: 30_000})
      assert.ok(s.sinks[0] instanceof JsonlFileSink)
      assert.equal((s.sinks[0] as JsonlFileSink).file, '/etc/hoop/audit.jsonl')
      assert.ok(s.sinks[1] instanceof WebhookSink)
    } finally {
      delete process.env.HOOP_TEST_SIEM
    }
  })

  it('refuses inline header secrets and bad values with line numbers', () => {
    assert.throws(
      () =>
        settings(`  recordingCap: lots
  sinks:
    - {type: webhook, url: "https://siem.example.com/in", headers: {Authorization: "Bearer inline"}}
    - {type: ftp}
  mode: fast
`),
      (err: Error) => {
        assert.match(err.message, /gw\.yaml:3:\d+: recordingCap must be a size/)
        assert.match(err.message, /gw\.yaml:\d+:\d+: header Authorization must be a reference/)
        assert.match(err.message, /gw\.yaml:6:\d+: a sink is/)
        assert.match(err.message, /gw\.yaml:7:\d+: mode must be hold .* or strict/)
        assert.doesNotMatch(err.message, /Bearer inline/)
        return true
      },
    )
  })
})
