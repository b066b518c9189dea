// docs/notifications.md stays true: its Node verification snippet and its openssl one-liner accept
// what the gateway signs (and the snippet refuses a tampered body), and its JSON example has
// exactly the payload's fields.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import type {ApprovalRecord} from '../../../src/approvals/types.js'
import {jsonPayload, notifyEvent, signatureHeader} from '../../../src/notify/index.js'
import {ROOT, tempDir} from '../../helpers/cli.js'

const DOC = readFileSync(join(ROOT, 'docs', 'notifications.md'), 'utf8')
const blocks = (lang: string) => [...DOC.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1])

/** Every key path of a JSON value ("approval.requester.name"); arrays by their first element. */
function shape(v: unknown, at = ''): string[] {
  if (Array.isArray(v)) return v.length > 0 && typeof v[0] === 'object' ? shape(v[0], at + '[]') : []
  if (typeof v !== 'object' || v === null) return []
  return Object.entries(v).flatMap(([k, x]) => [at + k, ...shape(x, at + k + '.')])
}

describe('docs/notifications.md', () => {
  const dir = tempDir('hoop-notify-docs-')
  after(() => dir.cleanup())
  const secret = 'doc-secret-0123456789abcdef'
  const body = '{"id":"evt_x","type":"approval.requested","note":"100% real, $HOME `not expanded`"}'
  // Signed when each test runs: the snippet refuses timestamps 5 minutes away, and a full test run
  // reaches this file long after it was loaded (was: computed at load, failed in `npm test`).
  let t: number
  let header: string
  beforeEach(() => {
    t = Math.floor(Date.now() / 1000)
    header = signatureHeader(secret, body, t)
  })

  it('the Node snippet verifies a signature and refuses a tampered body or an old timestamp', async () => {
    const [snippet] = blocks('js')
    assert.ok(snippet?.includes('verifyHoopSignature'))
    const file = join(dir.path, 'verify.mjs')
    writeFileSync(file, snippet)
    const {verifyHoopSignature} = (await import(pathToFileURL(file).href)) as {verifyHoopSignature: (s: string, h: string, b: string | Buffer, tol?: number) => boolean}
    assert.equal(verifyHoopSignature(secret, header, Buffer.from(body)), true)
    assert.equal(verifyHoopSignature(secret, header, body.replace('100', '900')), false)
    assert.equal(verifyHoopSignature(secret, signatureHeader(secret, body, t - 3600), body), false)
  })

  it('the openssl one-liner prints v1', () => {
    const line = blocks('sh').find((b) => b.includes('openssl dgst'))!
    writeFileSync(join(dir.path, 'body.json'), body)
    const out = execFileSync('sh', ['-c', line], {cwd: dir.path, env: {PATH: process.env.PATH, t: String(t), HOOP_WEBHOOK_SECRET: secret}}).toString()
    assert.equal(out.trim().split(' ').pop(), header.split('v1=')[1])
  })

  it('the JSON example has the payload fields', () => {
    const example = JSON.parse(blocks('json').find((b) => b.includes('"console_url"'))!)
    const rec: ApprovalRecord = {
      id: 'apr_Xk3v9QpL2mZa' as ApprovalRecord['id'],
      state: 'approved',
      scope: 'statement',
      connection: 'prod-db',
      statement: 'update plans set tier = 2 where id = 7',
      ruleId: 'r',
      requester: {kind: 'user', subject: 's', name: 'n', email: 'e', groups: []},
      statementHash: 'h',
      approvalsRequired: 1,
      approvers: {},
      ttlSeconds: 60,
      session: 'ses_1',
      createdAt: 'c',
      expiresAt: 'e',
      decidedAt: 'd',
      validUntil: 'v',
      decisions: [{decision: 'approve', approver: {kind: 'user', subject: 's', name: 'n', groups: []}, reason: 'r', at: 'a'}],
    }
    const real = JSON.parse(jsonPayload(notifyEvent('approved', rec, rec.decisions[0]), {consoleUrl: 'u', statement: true}))
    assert.deepEqual(shape(example).sort(), shape(real).sort())
  })
})
