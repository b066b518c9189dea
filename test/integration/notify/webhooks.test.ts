// Webhook notifications against real HTTP receivers on loopback: signatures that verify (and do
// not once the body is touched, also with the documented openssl one-liner), retries after 5xx and
// 429 with the same delivery id, no retry after other 4xx or a redirect, timeouts, the queue bound
// (oldest dropped, counted), the Slack payload and its console link, the drain at shutdown, and
// logs that never hold a URL or a secret.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import type {ServerResponse} from 'node:http'
import type {ApprovalRecord} from '../../../src/approvals/types.js'
import type {WebhookSettings} from '../../../src/notify/config.js'
import {type DeliveryOutcome, MAX_JSON_STATEMENT, MAX_SLACK_STATEMENT, Notifier, verifySignature} from '../../../src/notify/index.js'
import {MAX_QUEUE_BYTES} from '../../../src/notify/webhooks.js'
import {createLogger} from '../../../src/shared/log.js'
import {type Answer, type Receiver, startReceiver} from '../../helpers/webhook-receiver.js'

const SECRET = 'whsec-test-0123456789abcdef'

function approval(over: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    id: 'apr_AAAAbbbbCCCC' as ApprovalRecord['id'],
    state: 'pending',
    scope: 'statement',
    ruleId: 'writes-need-approval',
    connection: 'prod-db',
    requester: {kind: 'user', subject: 'u-1', name: 'alice@example.com', email: 'alice@example.com', groups: ['engineering'], claims: {team: 'x'}},
    statement: 'UPDATE plans SET tier = 2 WHERE id = 7',
    statementHash: 'ab'.repeat(32),
    approvalsRequired: 1,
    approvers: {groups: ['dba']},
    ttlSeconds: 3600,
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    decisions: [],
    ...over,
  }
}

function hook(url: string, over: Partial<WebhookSettings> = {}): WebhookSettings {
  return {
    name: 'test-hook',
    format: 'json',
    url,
    secret: SECRET,
    events: new Set(['approval.requested', 'approval.approved', 'approval.rejected', 'approval.expired']),
    timeoutMs: 2000,
    queueSize: 100,
    retries: 3,
    statement: true,
    ...over,
  }
}

describe('webhook notifications (real HTTP receivers on loopback)', () => {
  const receivers: Receiver[] = []
  const notifiers: Notifier[] = []
  let outcomes: DeliveryOutcome[]
  let logs: string[]

  const receiver = async (...answers: Answer[]) => {
    const r = await startReceiver(answers)
    receivers.push(r)
    return r
  }
  const notifier = (hooks: WebhookSettings[], publicUrl = 'https://hoop.example.com') => {
    const n = new Notifier(
      {webhooks: hooks},
      {publicUrl, logger: createLogger({level: 'debug', json: true, write: (l) => logs.push(l)}), onOutcome: (_w, o) => outcomes.push(o), backoff: {baseMs: 20, maxMs: 100, retryAfterCapMs: 200}},
    )
    notifiers.push(n)
    return n
  }
  /** Resolves once `n` final outcomes (delivered, failed, dropped) were counted. */
  const settled = async (n: number) => {
    const deadline = Date.now() + 15_000
    while (outcomes.filter((o) => o !== 'retried').length < n) {
      if (Date.now() > deadline) throw new Error(`outcomes so far: ${outcomes.join(', ')}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  beforeEach(() => {
    outcomes = []
    logs = []
  })

  afterEach(async () => {
    for (const n of notifiers.splice(0)) await n.close(100)
    for (const r of receivers.splice(0)) await r.close()
  })

  it('signs the raw body: the signature verifies, and fails for a tampered body, another secret or an old timestamp', async () => {
    const r = await receiver()
    const n = notifier([hook(r.url)])
    n.notify('requested', approval())
    assert.equal(r.received.length, 0, 'notify queues and returns; it never waits for the receiver')
    const [got] = await r.waitFor(1)
    const sig = String(got.headers['hoop-signature'])
    assert.match(sig, /^t=\d+,v1=[0-9a-f]{64}$/)
    assert.ok(verifySignature(SECRET, sig, got.body), 'the signature verifies over the raw body')
    assert.equal(verifySignature(SECRET, sig, got.body.replace('prod-db', 'dev-db')), false, 'a tampered body does not verify')
    assert.equal(verifySignature('another-secret-0123456789', sig, got.body), false)
    const t = Number(/t=(\d+)/.exec(sig)![1])
    assert.equal(verifySignature(SECRET, sig, got.body, t + 301), false, 'a replay outside the 5-minute window is refused')

    // The docs' openssl one-liner computes the same MAC over "<t>.<body>".
    const hex = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET], {input: `${t}.${got.body}`}).toString().trim().split(' ').pop()
    assert.equal(`t=${t},v1=${hex}`, sig)

    await settled(1)
    assert.equal(got.headers['content-type'], 'application/json')
    assert.equal(got.headers['hoop-event'], 'approval.requested')
    assert.match(String(got.headers['hoop-delivery']), /^dlv_[A-Za-z0-9_-]{16}$/)
    const body = JSON.parse(got.body)
    assert.equal(got.headers['hoop-event-id'], body.id)
    assert.match(body.id, /^evt_[A-Za-z0-9_-]{16}$/)
    assert.equal(body.type, 'approval.requested')
    assert.equal(body.console_url, 'https://hoop.example.com/console/approvals/apr_AAAAbbbbCCCC')
    assert.deepEqual(body.approval.requester, {kind: 'user', subject: 'u-1', name: 'alice@example.com', email: 'alice@example.com'}, 'no groups or claims')
    assert.equal(body.approval.statement, 'UPDATE plans SET tier = 2 WHERE id = 7')
    assert.equal(body.approval.rule_id, 'writes-need-approval')
    assert.equal(body.approval.state, 'pending')
    assert.deepEqual(body.approval.decisions, [])
    assert.deepEqual(outcomes, ['delivered'])
  })

  it('retries after a 500 with the same event and delivery id, a fresh signature, then succeeds', async () => {
    const r = await receiver(500, 502, 200)
    const n = notifier([hook(r.url)])
    n.notify('approved', approval({state: 'approved', decisions: [{decision: 'approve', approver: {kind: 'user', subject: 'u-2', name: 'bob', groups: []}, reason: 'OPS-1', at: '2026-01-01T00:10:00.000Z'}]}), {
      decision: 'approve',
      approver: {kind: 'user', subject: 'u-2', name: 'bob', groups: []},
      reason: 'OPS-1',
      at: '2026-01-01T00:10:00.000Z',
    })
    const got = await r.waitFor(3)
    await settled(1)
    assert.deepEqual(outcomes, ['retried', 'retried', 'delivered'])
    assert.deepEqual(got.map((g) => g.headers['hoop-attempt']), ['1', '2', '3'])
    assert.equal(new Set(got.map((g) => g.headers['hoop-delivery'])).size, 1, 'one delivery id for every retry')
    assert.equal(new Set(got.map((g) => g.body)).size, 1, 'the same body every time')
    for (const g of got) assert.ok(verifySignature(SECRET, String(g.headers['hoop-signature']), g.body))
    const body = JSON.parse(got[2].body)
    assert.equal(body.type, 'approval.approved')
    assert.deepEqual(body.decision, {decision: 'approve', approver: {kind: 'user', subject: 'u-2', name: 'bob'}, reason: 'OPS-1', at: '2026-01-01T00:10:00.000Z'})
  })

  it('retries a 429 after its Retry-After, and gives up after the retry limit', async () => {
    const r = await receiver({status: 429, headers: {'retry-after': '0'}}, 503, 503)
    const n = notifier([hook(r.url, {retries: 2})])
    n.notify('requested', approval())
    await settled(1)
    assert.equal(r.received.length, 3, 'one attempt and two retries')
    assert.deepEqual(outcomes, ['retried', 'retried', 'failed'])
    assert.match(logs.join('\n'), /notification not delivered.*"attempts":3.*HTTP 503/)
  })

  it('does not retry another 4xx, nor follow a redirect', async () => {
    const elsewhere = await receiver()
    const r = await receiver(400, {status: 302, headers: {location: elsewhere.url}})
    const n = notifier([hook(r.url)])
    n.notify('requested', approval())
    n.notify('rejected', approval({state: 'rejected'}))
    await settled(2)
    assert.deepEqual(outcomes, ['failed', 'failed'])
    assert.equal(r.received.length, 2, 'each tried once')
    assert.equal(elsewhere.received.length, 0, 'the redirect was not followed')
    assert.match(logs.join('\n'), /HTTP 302: redirects are not followed/)
  })

  it('times out a receiver that never answers, and retries', async () => {
    const held: ServerResponse[] = []
    const r = await receiver((res) => held.push(res), 204)
    // The retry must be answered within the same timeout, so not too short: 200 ms was all a
    // stalled test process had for connecting, sending and reading the 204.
    const n = notifier([hook(r.url, {timeoutMs: 1000})])
    n.notify('requested', approval())
    await settled(1)
    assert.deepEqual(outcomes, ['retried', 'delivered'])
    assert.match(logs.join('\n'), /will retry.*"error":"timeout"/)
    for (const res of held) res.destroy()
  })

  it('retries when nothing listens', async () => {
    const r = await receiver()
    const url = r.url
    await r.close()
    receivers.splice(0)
    const n = notifier([hook(url, {retries: 1})])
    n.notify('requested', approval())
    await settled(1)
    assert.deepEqual(outcomes, ['retried', 'failed'])
    assert.match(logs.join('\n'), /"error":"ECONNREFUSED"/)
  })

  it('bounds the queue: when full, the oldest waiting notification is dropped, logged and counted', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const r = await receiver((res) => void gate.then(() => res.writeHead(200).end()))
    const n = notifier([hook(r.url, {queueSize: 3})])
    const ids = ['apr_000000000001', 'apr_000000000002', 'apr_000000000003', 'apr_000000000004', 'apr_000000000005', 'apr_000000000006']
    n.notify('requested', approval({id: ids[0] as ApprovalRecord['id']}))
    await r.waitFor(1) // the first is in flight; the rest wait
    for (const id of ids.slice(1)) n.notify('requested', approval({id: id as ApprovalRecord['id']}))
    assert.equal(n.pending, 4, 'one in flight and three waiting')
    assert.deepEqual(outcomes, ['dropped', 'dropped'])
    release()
    await r.waitFor(4)
    await settled(6)
    assert.deepEqual(
      r.received.map((g) => JSON.parse(g.body).approval.id),
      [ids[0], ids[3], ids[4], ids[5]],
      'the oldest waiting ones were dropped',
    )
    assert.equal(outcomes.filter((o) => o === 'dropped').length, 2)
    assert.equal((logs.join('\n').match(/notification dropped: webhook queue full/g) ?? []).length, 2)
  })

  it('bounds the queue by payload bytes too', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const r = await receiver((res) => void gate.then(() => res.writeHead(200).end()))
    const n = notifier([hook(r.url, {queueSize: 10_000})])
    const big = approval({statement: 'x'.repeat(MAX_JSON_STATEMENT)})
    n.notify('requested', big)
    await r.waitFor(1)
    for (let i = 0; i < 600; i++) n.notify('requested', big)
    const body = r.received[0].body.length
    const waiting = n.pending - 1
    assert.equal(waiting, Math.floor(MAX_QUEUE_BYTES / body), 'as many as fit in the byte bound wait')
    assert.equal(outcomes.filter((o) => o === 'dropped').length, 600 - waiting)
    release()
  })

  it('sends Slack a text and blocks with the summary and a button to the console page; escaped, truncated, unsigned', async () => {
    const r = await receiver()
    const n = notifier([hook(r.url, {format: 'slack', secret: undefined})], 'https://hoop.example.com/')
    const long = `UPDATE t SET note = '<!channel> \`\`\`' WHERE x = '${'y'.repeat(2000)}'`
    n.notify('requested', approval({statement: long, requester: {kind: 'user', subject: 'u-1', name: 'mallory <!here>', groups: []}}))
    const [got] = await r.waitFor(1)
    assert.equal(got.headers['hoop-signature'], undefined, 'no secret, no signature')
    const body = JSON.parse(got.body) as {text: string; blocks: Array<{type: string; text?: {text: string}; fields?: Array<{text: string}>; elements?: Array<{type: string; url: string}>}>}
    assert.match(body.text, /^Approval requested: mallory &lt;!here&gt; asks for a statement on prod-db \(rule writes-need-approval\), apr_AAAAbbbbCCCC$/)
    const button = body.blocks.find((b) => b.type === 'actions')!.elements![0]
    assert.equal(button.type, 'button')
    assert.equal(button.url, 'https://hoop.example.com/console/approvals/apr_AAAAbbbbCCCC')
    const code = body.blocks.map((b) => b.text?.text ?? '').find((t) => t.startsWith('```'))!
    const unescaped = code.slice(3, -3).replace(/\u200b/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
    assert.equal(unescaped.length, MAX_SLACK_STATEMENT, 'statement truncated')
    assert.ok(code.endsWith('…```'))
    assert.equal(code.slice(3, -3).includes('```'), false, 'the statement cannot close the code block')
    assert.ok(!got.body.includes('<!'), 'no mention can get through')
    assert.ok(body.blocks.some((b) => b.fields?.some((f) => f.text === '*Requester*\nmallory &lt;!here&gt;')))
  })

  it('leaves the statement out when the webhook says statement: false, keeping its hash', async () => {
    const r = await receiver()
    const n = notifier([hook(r.url, {statement: false})])
    n.notify('requested', approval())
    const [got] = await r.waitFor(1)
    assert.ok(!got.body.includes('UPDATE plans'))
    const body = JSON.parse(got.body)
    assert.equal(body.approval.statement, null)
    assert.equal(body.approval.statement_sha256, 'ab'.repeat(32))
  })

  it('sends each webhook only the events it subscribed to', async () => {
    const all = await receiver()
    const some = await receiver()
    const n = notifier([hook(all.url, {name: 'all'}), hook(some.url, {name: 'some', events: new Set(['approval.approved'])})])
    n.notify('requested', approval())
    n.notify('approved', approval({state: 'approved'}))
    n.notify('used', approval({state: 'used'}), undefined, {statement: 'x', at: '2026-01-01T00:00:00.000Z'})
    await settled(3)
    assert.deepEqual(all.received.map((g) => g.headers['hoop-event']), ['approval.requested', 'approval.approved'])
    assert.deepEqual(some.received.map((g) => g.headers['hoop-event']), ['approval.approved'])
    assert.equal(JSON.parse(all.received[1].body).id, JSON.parse(some.received[0].body).id, 'one event id across webhooks')
    assert.notEqual(all.received[1].headers['hoop-delivery'], some.received[0].headers['hoop-delivery'], 'one delivery id per webhook')
  })

  it('drains at shutdown: a notification waiting for its retry gets one last attempt; the rest are counted as dropped', async () => {
    const r = await receiver(500, 200)
    const n = new Notifier(
      {webhooks: [hook(r.url)]},
      {publicUrl: 'https://h', logger: createLogger({json: true, write: (l) => logs.push(l)}), onOutcome: (_w, o) => outcomes.push(o), backoff: {baseMs: 60_000, maxMs: 60_000}},
    )
    n.notify('requested', approval())
    await r.waitFor(1)
    while (!outcomes.includes('retried')) await new Promise((res) => setTimeout(res, 10))
    assert.equal(await n.close(5000), true, 'delivered by the drain, not after the minute of backoff')
    assert.equal(r.received.length, 2)
    assert.deepEqual(outcomes, ['retried', 'delivered'])
    n.notify('requested', approval())
    assert.equal(n.pending, 0, 'a closed notifier takes nothing')

    const stuck = await receiver((res) => void setTimeout(() => res.destroy(), 5000).unref())
    const m = new Notifier({webhooks: [hook(stuck.url)]}, {publicUrl: 'https://h', logger: createLogger({json: true, write: (l) => logs.push(l)}), onOutcome: (_w, o) => outcomes.push(o)})
    m.notify('requested', approval())
    m.notify('approved', approval())
    assert.equal(await m.close(100), false)
    assert.deepEqual(outcomes.slice(2), ['dropped', 'dropped'])
    assert.match(logs.join('\n'), /notifications not delivered: the gateway stopped.*"count":2/)
  })

  it('never logs the URL or the secret', async () => {
    const r = await receiver(500, 401)
    const url = r.url + '?token=url-secret-part'
    const n = notifier([hook(url)])
    n.notify('requested', approval())
    await settled(1)
    const text = logs.join('\n')
    assert.match(text, /"webhook":"test-hook"/)
    assert.ok(!text.includes('url-secret-part') && !text.includes('/hooks/hoop') && !text.includes(SECRET), text)
  })
})
