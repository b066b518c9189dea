// The outside-anchor settings of the gateway's audit section: the witness file and the RFC 3161
// timestamp authority (with its CA pinned from a reference).
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseAuditSettings} from '../../../src/gateway/audit-config.js'
import {parseGatewayConfig} from '../../../src/shared/config.js'

const settings = (audit: string) => parseAuditSettings(parseGatewayConfig(`connections: []\naudit:\n${audit}`, '/etc/hoop/gw.yaml'))

describe('audit settings: outside anchors', () => {
  it('no witness or timestamp by default (the gateway puts the witness in its data dir)', () => {
    const s = parseAuditSettings(parseGatewayConfig('connections: []\n', 'gw.yaml'))
    assert.equal(s.witness, undefined)
    assert.equal(s.timestamp, undefined)
  })

  it('a witness path relative to the config file, a TSA with its CA and timeout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-tsa-cfg-'))
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=ca', '-days', '1'], {stdio: 'ignore'})
      const s = settings(`  witness: ../witness/hoop.jsonl
  timestamp: {url: "http://tsa.example.com/", ca: {file: ${join(dir, 'ca.pem')}}, timeout: 5s}
`)
      assert.equal(s.witness, '/etc/witness/hoop.jsonl')
      assert.equal(s.timestamp?.url, 'http://tsa.example.com/')
      assert.equal(s.timestamp?.timeoutMs, 5000)
      assert.equal(s.timestamp?.trusted?.length, 1)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('refuses a timestamp without a URL, an unknown key and an unreadable CA, with line numbers', () => {
    assert.throws(() => settings('  timestamp: {url: ftp://x}\n'), /gw\.yaml:\d+:\d+: .*timestamp must be \{url/)
    assert.throws(() => settings('  timestamp: {url: "http://x", retries: 3}\n'), /unknown key "retries" in timestamp/)
    assert.throws(() => settings('  timestamp: {url: "http://x", ca: {file: /nonexistent/ca.pem}}\n'), /timestamp\.ca: cannot read secret file/)
    assert.throws(() => settings('  witness: 42\n'), /witness must be the path/)
  })
})
