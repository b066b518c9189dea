// Notification payloads and signatures as pure functions: the JSON payload's statement cap, the
// statement of a use, the signature header's parsing, and Retry-After in both of its forms.
import assert from 'node:assert/strict'
import type {ApprovalRecord} from '../../../src/approvals/types.js'
import {jsonPayload, MAX_JSON_STATEMENT, notifyEvent, signatureHeader, verifySignature} from '../../../src/notify/index.js'
import {retryAfterMs} from '../../../src/notify/webhooks.js'

const rec = (statement: string): ApprovalRecord => ({
  id: 'apr_AAAAbbbbCCCC' as ApprovalRecord['id'],
  state: 'approved',
  scope: 'session',
  ruleId: 'r',
  connection: 'c',
  requester: {kind: 'service-account', subject: 'ci', name: 'ci', groups: []},
  statement,
  requestReason: 'incident 4711',
  approvalsRequired: 2,
  approvers: {groups: ['dba']},
  ttlSeconds: 3600,
  durationSeconds: 1800,
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-01T01:00:00.000Z',
  decisions: [],
})

describe('notification payloads', () => {
  it('caps the statement of a JSON payload and says so', () => {
    const body = JSON.parse(jsonPayload(notifyEvent('requested', rec('x'.repeat(MAX_JSON_STATEMENT + 10))), {consoleUrl: 'u', statement: true}))
    assert.equal(body.approval.statement.length, MAX_JSON_STATEMENT)
    assert.equal(body.approval.statement_truncated, true)
    assert.equal(body.approval.reason, 'incident 4711')
    assert.equal(body.approval.duration_seconds, 1800)
    assert.equal(body.approval.approvals_required, 2)
  })

  it('an approval.used payload carries the statement that ran', () => {
    const e = notifyEvent('used', rec('SELECT 1'), undefined, {session: 'ses_1', statement: 'DELETE FROM t', at: '2026-01-01T00:05:00.000Z'})
    const body = JSON.parse(jsonPayload(e, {consoleUrl: 'u', statement: true}))
    assert.equal(body.type, 'approval.used')
    assert.equal(body.approval.statement, 'DELETE FROM t')
    assert.deepEqual(body.use, {session: 'ses_1', at: '2026-01-01T00:05:00.000Z'})
  })

  it('refuses malformed signature headers', () => {
    const good = signatureHeader('s'.repeat(20), 'body', 1000)
    assert.ok(verifySignature('s'.repeat(20), good, 'body', 1000))
    for (const h of ['', 't=1000', 'v1=' + 'a'.repeat(64), 't=abc,v1=' + 'a'.repeat(64), good.replace(/v1=../, 'v1=zz'), good + 'ff']) {
      assert.equal(verifySignature('s'.repeat(20), h, 'body', 1000), false, h)
    }
  })

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    assert.equal(retryAfterMs('120', now), 120_000)
    assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000)
    assert.equal(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now), 0)
    assert.equal(retryAfterMs('soon', now), undefined)
    assert.equal(retryAfterMs(null, now), undefined)
  })
})
