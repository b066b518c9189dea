// Approval notifications end to end: a real gateway process (built CLI) with a signed JSON webhook
// and a Slack-format webhook, both receivers on loopback. A write held for review through
// `hoop exec` makes the JSON receiver get a correctly signed approval.requested and the Slack one
// a message linking the console page; `hoop approvals approve` gives approval.approved; /metrics
// counts the deliveries. Its own database on the real PostgreSQL, dropped after.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {verifySignature} from '../../src/notify/index.js'
import {runHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {type Receiver, startReceiver} from '../helpers/webhook-receiver.js'

const DB = `hoop_notify_e2e_${randomBytes(4).toString('hex')}`
const SECRET = randomBytes(32).toString('hex')
const APR = /apr_[A-Za-z0-9_-]{12}/

async function admin(sql: string, database = 'postgres'): Promise<void> {
  const c = new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database})
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

const config = (jsonUrl: string) => `connections:
  - name: pg
    type: postgres
    target: 127.0.0.1:5432
    database: ${DB}
    username: postgres
policy:
  version: 1
  rules:
    - id: people
      subjects: {groups: [engineering, dba]}
      connections: [pg]
      effect: allow
    - id: writes-need-approval
      effect: review
      connections: [pg]
      match: {writes: true}
      review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}
notifications:
  webhooks:
    - name: security
      format: json
      url: "${jsonUrl}"
      secret: {env: HOOP_E2E_WEBHOOK_SECRET}
    - name: dba-slack
      format: slack
      url: {env: HOOP_E2E_SLACK_URL}
      events: [approval.requested]
`

describe('approval notifications end to end (built CLI, real gateway, loopback receivers)', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-notify-')
  let gw: GatewayProc
  let json: Receiver
  let slack: Receiver
  let dev: Record<string, string>
  let dba: Record<string, string>

  before(async () => {
    await admin(`CREATE DATABASE ${DB}`)
    await admin('CREATE TABLE plans (id int PRIMARY KEY, tier int NOT NULL); INSERT INTO plans VALUES (7, 1)', DB)
    json = await startReceiver()
    slack = await startReceiver()
    const dataDir = join(dir.path, 'data')
    dev = {HOOP_TOKEN: await createSecret('service-accounts', 'dev-bot', dataDir, ['engineering'])}
    dba = {HOOP_TOKEN: await createSecret('service-accounts', 'dba-bot', dataDir, ['dba'])}
    gw = await startGatewayProc(config(json.url), {dir: dir.path, dataDir, env: {HOOP_E2E_WEBHOOK_SECRET: SECRET, HOOP_E2E_SLACK_URL: slack.url}})
  })

  after(async () => {
    await gw?.stop()
    await json?.close()
    await slack?.close()
    await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {})
    dir.cleanup()
  })

  it('a held statement sends a signed approval.requested; the approval sends approval.approved', async () => {
    const update = 'UPDATE plans SET tier = 2 WHERE id = 7'
    const held = await runHoop(['exec', 'pg', '--gateway', gw.url, '-e', update], {env: dev})
    assert.equal(held.code, 17, held.stdout + held.stderr)
    const id = APR.exec(held.stderr)![0]

    const [requested] = await json.waitFor(1)
    assert.equal(requested.path, '/hooks/hoop')
    assert.equal(requested.headers['hoop-event'], 'approval.requested')
    assert.ok(verifySignature(SECRET, String(requested.headers['hoop-signature']), requested.body), 'the receiver can verify the signature')
    assert.equal(verifySignature(SECRET, String(requested.headers['hoop-signature']), requested.body.replace('tier = 2', 'tier = 3')), false)
    const body = JSON.parse(requested.body)
    assert.equal(body.type, 'approval.requested')
    assert.equal(body.approval.id, id)
    assert.equal(body.approval.connection, 'pg')
    assert.equal(body.approval.rule_id, 'writes-need-approval')
    assert.equal(body.approval.requester.name, 'dev-bot')
    assert.equal(body.approval.statement, update)
    assert.equal(body.console_url, `${gw.url}/console/approvals/${id}`)

    const [message] = await slack.waitFor(1)
    assert.equal(message.headers['hoop-signature'], undefined)
    const blocks = (JSON.parse(message.body) as {text: string; blocks: Array<{type: string; elements?: Array<{url: string}>}>})
    assert.match(blocks.text, new RegExp(`Approval requested: dev-bot asks for a statement on pg .*${id}`))
    assert.equal(blocks.blocks.find((b) => b.type === 'actions')!.elements![0].url, `${gw.url}/console/approvals/${id}`)

    const ok = await runHoop(['approvals', 'approve', id, '--reason', 'change OPS-42', '--gateway', gw.url], {env: dba})
    assert.equal(ok.code, 0, ok.stderr)
    const [, approved] = await json.waitFor(2)
    assert.equal(approved.headers['hoop-event'], 'approval.approved')
    assert.ok(verifySignature(SECRET, String(approved.headers['hoop-signature']), approved.body))
    const decided = JSON.parse(approved.body)
    assert.equal(decided.approval.id, id)
    assert.equal(decided.approval.state, 'approved')
    assert.equal(decided.decision.reason, 'change OPS-42')
    assert.equal(decided.decision.approver.name, 'dba-bot')
    assert.notEqual(decided.id, body.id)

    // The metrics count by webhook name; neither a URL nor the secret appears in them or in the log.
    // The gateway counts a delivery once it has read the receiver's answer, which the receiver
    // sends just after it has the request: wait (30 s bound) for the counts.
    const delivered = [/hoop_notifications_total\{webhook="security",outcome="delivered"\} 2/, /hoop_notifications_total\{webhook="dba-slack",outcome="delivered"\} 1/]
    const deadline = Date.now() + 30_000
    let metrics = await (await fetch(`${gw.url}/metrics`)).text()
    while (!delivered.every((re) => re.test(metrics)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100))
      metrics = await (await fetch(`${gw.url}/metrics`)).text()
    }
    for (const re of delivered) assert.match(metrics, re)
    const log = gw.proc.stdout() + gw.proc.stderr()
    assert.ok(!log.includes(SECRET) && !log.includes(slack.url), 'no secret in the gateway log')
    assert.equal(slack.received.length, 1, 'the Slack webhook subscribed to requests only')
  })

  it('a gateway whose notifications config is wrong does not start, and says where (exit 18)', async () => {
    const bad = join(dir.path, 'bad.yaml')
    writeFileSync(bad, `notifications:\n  webhooks:\n    - name: ops\n      url: http://hooks.example.com/in\n      secret: {env: HOOP_E2E_WEBHOOK_SECRET}\n`)
    const r = await runHoop(['gateway', '--config', bad, '--data-dir', join(dir.path, 'bad-data'), '--listen', '127.0.0.1:0'], {env: {HOOP_E2E_WEBHOOK_SECRET: SECRET}})
    assert.equal(r.code, 18, r.stdout + r.stderr)
    assert.match(r.stderr, /bad\.yaml:4:\d+: url must be https:\/\/ \(plain http only on loopback\)/)
    assert.ok(!(r.stdout + r.stderr).includes(SECRET))
  })

  it('hoop admin notify-test sends a signed notification.test to each webhook and exits 28 when one fails', async () => {
    const good = await startReceiver()
    const broken = await startReceiver([500])
    try {
      const file = join(dir.path, 'notify-test.yaml')
      writeFileSync(
        file,
        `notifications:\n  publicUrl: https://hoop.example.com\n  webhooks:\n` +
          `    - {name: good, url: "${good.url}", secret: {env: HOOP_E2E_WEBHOOK_SECRET}}\n` +
          `    - {name: broken, url: "${broken.url}", secret: {env: HOOP_E2E_WEBHOOK_SECRET}}\n`,
      )
      const env = {HOOP_E2E_WEBHOOK_SECRET: SECRET}
      const one = await runHoop(['admin', 'notify-test', '--config', file, '--webhook', 'good', '--json'], {env})
      assert.equal(one.code, 0, one.stdout + one.stderr)
      assert.deepEqual(JSON.parse(one.stdout), {results: [{webhook: 'good', format: 'json', outcome: 'delivered', detail: 'HTTP 200'}]})
      const [got] = good.received
      assert.equal(got.headers['hoop-event'], 'notification.test')
      assert.ok(verifySignature(SECRET, String(got.headers['hoop-signature']), got.body))
      assert.equal(JSON.parse(got.body).console_url, 'https://hoop.example.com/console/approvals/apr_notifytest01')

      const all = await runHoop(['admin', 'notify-test', '--config', file], {env})
      assert.equal(all.code, 28, all.stdout + all.stderr)
      assert.match(all.stdout, /good\s+json\s+delivered\s+HTTP 200/)
      assert.match(all.stdout, /broken\s+json\s+failed\s+HTTP 500/)
      assert.match(all.stderr, /1 of 2 webhook\(s\) did not take the test notification: broken \(HTTP 500\)/)
      assert.equal(broken.received.length, 1, 'no retries in a test')
      assert.ok(!(all.stdout + all.stderr).includes(SECRET) && !(all.stdout + all.stderr).includes(broken.url))
    } finally {
      await good.close()
      await broken.close()
    }
  })
})
