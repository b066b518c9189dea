// `hoop policy check` / `hoop policy test` library calls, on real files.
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {checkPolicyFile, formatPolicyCheck, formatPolicyTest, httpRequest, testPolicy} from '../../../src/client/policy.js'

/** The YAML block under a heading of docs/policy.md. */
function docsExample(heading: string): string {
  const doc = readFileSync(new URL('../../../docs/policy.md', import.meta.url), 'utf8')
  const at = doc.indexOf(heading)
  assert.ok(at >= 0, `docs/policy.md has no "${heading}"`)
  const m = /```yaml\n([\s\S]*?)```/.exec(doc.slice(at))
  assert.ok(m, `no yaml block after "${heading}"`)
  return m[1]
}

describe('policy: check and test tools', () => {
  let dir: string
  let policy: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-sim-'))
    policy = join(dir, 'policy.yaml')
    writeFileSync(
      policy,
      `version: 1
rules:
  - {id: eng, subjects: {groups: [engineering]}, connections: ["prod-*"], effect: allow, limits: {readOnly: true}}
  - {id: ci, subjects: {ci: {issuer: "https://ci.example.com", claims: {repository: org/app}}}, connections: [prod-db], effect: allow}
  - {id: no-drop, match: {kinds: [drop]}, effect: block}
`,
    )
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  it('checks a file and counts its rules by effect', () => {
    const r = checkPolicyFile(policy)
    assert.deepEqual(r, {file: policy, ok: true, rules: 3, effects: {allow: 2, block: 1}})
    assert.equal(formatPolicyCheck(r), `ok: 3 rules (2 allow, 1 block) in ${policy}`)
  })

  it('checks the policy section of a gateway config', () => {
    const cfg = join(dir, 'gateway.yaml')
    writeFileSync(cfg, 'connections: []\npolicy:\n  version: 1\n  rules:\n    - {id: x, effect: allow, subjects: {}}\n')
    assert.throws(() => checkPolicyFile(cfg, {config: true}), (err: Error) => err.message.startsWith(`${cfg}:5:`) && /lists nobody/.test(err.message))
  })

  it('tests a user statement and names the rules', async () => {
    const r = await testPolicy({policy, connection: 'prod-db', user: 'alice@example.com', groups: ['engineering'], sql: 'select 1; DROP/**/table t'})
    assert.equal(r.access.ruleId, 'eng')
    assert.equal(r.decision?.effect, 'block')
    assert.equal(r.decision?.ruleId, 'no-drop')
    assert.equal(r.decision?.statement, 1)
    const text = formatPolicyTest(r)
    assert.match(text, /access: +allow +\[rule eng\] read-only/)
    assert.match(text, /statement: +block +\[rule no-drop\]/)
    assert.match(text, /> \[1\] DROP TABLE t/)
  })

  it('tests a CI identity by claims', async () => {
    const ok = await testPolicy({policy, connection: 'prod-db', ciIssuer: 'https://ci.example.com', claims: ['repository=org/app', 'ref=refs/heads/main']})
    assert.equal(ok.access.ruleId, 'ci')
    const other = await testPolicy({policy, connection: 'prod-db', ciIssuer: 'https://ci.example.com', claims: ['repository=org/other']})
    assert.equal(other.access.ruleId, 'default-deny')
  })

  it('refuses an ambiguous subject', async () => {
    await assert.rejects(testPolicy({policy, connection: 'prod-db', user: 'a@x', serviceAccount: 'b'}), /name exactly one subject/)
  })

  it('judges HTTP requests: method, normalised path, query and JSON body', async () => {
    const p = join(dir, 'http.yaml')
    writeFileSync(
      p,
      `version: 1
rules:
  - {id: eng, subjects: {groups: [engineering]}, connections: [api], effect: allow, limits: {readOnly: true}}
  - {id: ops, subjects: {groups: [ops]}, connections: [api], effect: allow}
  - {id: no-admin, match: {paths: ["/admin/*"]}, effect: block}
  - {id: pay, match: {body: {"$.amount": {gt: 100}}, query: {live: "1"}}, effect: review, review: {approvers: {groups: [fin]}}}
  - {id: bad-body, match: {bodyUnreadable: true}, effect: block}
  - {id: m, connections: [api], effect: mask, mask: {fields: ["$.customer.email"], entities: [email]}}
`,
    )
    const del = await testPolicy({policy: p, type: 'http', connection: 'api', user: 'alice@example.com', groups: ['engineering'], method: 'delete', path: '/v1/users/7'})
    assert.deepEqual([del.decision?.effect, del.decision?.ruleId], ['block', 'eng'])
    const text = formatPolicyTest(del)
    assert.match(text, /connection: api \(http\)/)
    assert.match(text, /request: +block +\[rule eng\]/)
    assert.match(text, /> DELETE \/v1\/users\/7 \(writes, body none\)/)
    assert.match(text, /mask: +fields \$\.customer\.email; entities email +\[rules m\]/)

    const dots = await testPolicy({policy: p, type: 'http', connection: 'api', user: 'o', groups: ['ops'], path: '/v1/../%61dmin/x'})
    assert.deepEqual([dots.operation?.http?.method, dots.operation?.http?.path, dots.decision?.ruleId], ['GET', '/admin/x', 'no-admin'])
    const pay = await testPolicy({policy: p, type: 'http', connection: 'api', user: 'o', groups: ['ops'], method: 'POST', path: '/pay?live=1', body: '{"amount": 500}'})
    assert.deepEqual([pay.decision?.effect, pay.decision?.ruleId], ['review', 'pay'])
    const small = await testPolicy({policy: p, type: 'http', connection: 'api', user: 'o', groups: ['ops'], method: 'POST', path: '/pay?live=1', body: '{"amount": 5}'})
    assert.deepEqual([small.decision?.effect, small.decision?.ruleId], ['allow', 'ops'])
    const bad = await testPolicy({policy: p, type: 'http', connection: 'api', user: 'o', groups: ['ops'], method: 'POST', path: '/pay', body: '{"amount": '})
    assert.deepEqual([bad.operation?.http?.bodyStatus, bad.decision?.ruleId], ['invalid-json', 'bad-body'])
    assert.equal(httpRequest({method: 'POST', body: JSON.stringify({a: 'x'.repeat(1024 * 1024)})}).bodyStatus, 'too-large')

    await assert.rejects(testPolicy({policy: p, type: 'postgres', connection: 'api', user: 'o', method: 'GET'}), /describe an HTTP request; connection api is of type postgres/)
    await assert.rejects(testPolicy({policy: p, type: 'http', connection: 'api', user: 'o', sql: 'select 1'}), /--sql is analyzed as PostgreSQL or MySQL/)
    await assert.rejects(testPolicy({policy: p, type: 'http', connection: 'api', user: 'o', path: 'v1'}), /--path must start with "\/"/)
  })

  it('decides every row of the docs example governing PostgreSQL, MariaDB and an HTTP API', async () => {
    const p = join(dir, 'docs-example.yaml')
    writeFileSync(p, docsExample('### One policy for PostgreSQL, MySQL and HTTP'))
    const eng = {policy: p, user: 'alice@example.com', groups: ['engineering']}
    const ops = {policy: p, user: 'olga@example.com', groups: ['ops']}
    const pg = {connection: 'orders-pg', type: 'postgres'}
    const maria = {connection: 'shop-maria', type: 'mysql'}
    const api = {connection: 'billing-api', type: 'http'}
    const cases: Array<[Parameters<typeof testPolicy>[0], string, string]> = [
      [{...eng, ...pg, sql: 'SELECT * FROM customers'}, 'allow', 'engineers-read'],
      [{...eng, ...maria, sql: 'UPDATE orders SET paid = true WHERE id = 7'}, 'block', 'engineers-read'],
      [{...eng, ...api, method: 'POST', path: '/v1/invoices', body: '{}'}, 'block', 'engineers-read'],
      [{...eng, ...api, path: '/v1/customers/7'}, 'allow', 'engineers-read'],
      [{...ops, ...pg, sql: 'DROP TABLE orders'}, 'block', 'no-drop'],
      [{...ops, ...maria, sql: 'DROP TABLE orders'}, 'block', 'no-drop'],
      [{...ops, ...maria, sql: 'DELETE FROM orders'}, 'block', 'unbounded-writes'],
      [{...ops, ...pg, sql: 'DELETE FROM orders WHERE id = 1'}, 'review', 'writes-need-approval'],
      [{...ops, ...api, method: 'DELETE', path: '/v1/users/7'}, 'block', 'no-user-deletes'],
      [{...ops, ...api, method: 'POST', path: '/v1/refunds', body: '{"amount": 5000}'}, 'review', 'big-refunds'],
      [{...ops, ...api, method: 'POST', path: '/v1/refunds', body: '{"amount": 50}'}, 'review', 'writes-need-approval'],
      [{...ops, ...api, method: 'POST', path: '/v1/refunds', body: JSON.stringify({amount: 1, pad: 'x'.repeat(2 * 1024 * 1024)})}, 'block', 'unreadable-bodies'],
      [{...ops, ...api, path: '/v1/jobs?force=1'}, 'block', 'no-force'],
      [{...ops, ...api, path: '/v1/customers/7'}, 'allow', 'ops-write'],
      [{...ops, ...maria, sql: 'SELECT 1'}, 'allow', 'ops-write'],
    ]
    for (const [input, effect, ruleId] of cases) {
      const r = await testPolicy(input)
      const what = `${input.connection} ${input.sql ?? `${input.method ?? 'GET'} ${input.path}`}`
      assert.deepEqual([what, r.decision?.effect, r.decision?.ruleId], [what, effect, ruleId])
    }
    const api7 = await testPolicy({...eng, ...api, path: '/v1/customers/7'})
    assert.deepEqual([api7.decision?.mask.ruleIds, api7.decision?.mask.fields, api7.decision?.mask.columns], [['pii-api'], ['$.customer.email', '$.items[*].card', 'ssn'], []])
    const db = await testPolicy({...eng, ...pg, sql: 'SELECT * FROM customers'})
    assert.deepEqual([db.decision?.mask.ruleIds, db.decision?.mask.fields, db.decision?.mask.columns.map((c) => c.text)], [['pii-db'], [], ['*.email', 'customers.card_number']])
  })
})
