// The dev environment's demo policy says what the banner and docs promise, judged offline on
// parsed SQL. (The seed data is tested in dev-seed.test.ts.)
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {DEMO_CONNECTION, DEMO_POLICY} from '../../../src/gateway/dev.js'
import {checkAccess, judgeOperation} from '../../../src/policy/index.js'
import {parsePolicy} from '../../../src/policy/load.js'
import {analyzePostgres} from '../../../src/sql/pg-analyze.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'

const user = (email: string, groups: string[]): Identity => ({kind: 'user', subject: email, name: email, email, groups})
const engineer = user('engineer@example.com', ['engineering'])
const approver = user('approver@example.com', ['dba', 'approvers'])
const admin = user('admin@example.com', ['admins', 'auditors'])
const stranger = user('someone@example.com', ['sales'])
const demo = {name: DEMO_CONNECTION, type: 'postgres'}

describe('dev environment: demo policy', () => {
  const policy = parsePolicy(DEMO_POLICY, 'demo-policy.yaml')
  before(() => loadPgParser())
  const judge = (who: Identity, sql: string) => judgeOperation(policy, who, demo, analyzePostgres(sql))

  it('lets the demo users in, and no one else', () => {
    assert.equal(checkAccess(policy, engineer, demo).ruleId, 'engineers-use-demo')
    assert.equal(checkAccess(policy, approver, demo).ruleId, 'approvers-use-demo')
    const a = checkAccess(policy, admin, demo)
    assert.equal(a.ruleId, 'auditors-read-demo')
    assert.equal(a.limits.readOnly, true)
    const s = checkAccess(policy, stranger, demo)
    assert.equal(s.allowed, false)
    assert.equal(s.ruleId, 'default-deny')
  })

  it('engineers read; DROP/TRUNCATE and unbounded writes are blocked; other writes need an approver', () => {
    assert.equal(judge(engineer, 'select * from customers').effect, 'allow')
    assert.deepEqual(
      [judge(engineer, 'drop table customers'), judge(engineer, 'truncate orders')].map((d) => [d.effect, d.ruleId]),
      [
        ['block', 'no-drop-or-truncate'],
        ['block', 'no-drop-or-truncate'],
      ],
    )
    for (const sql of [`update customers set country = 'FR'`, 'delete from orders']) {
      const d = judge(engineer, sql)
      assert.deepEqual([d.effect, d.ruleId], ['block', 'no-unbounded-writes'], sql)
    }
    const r = judge(engineer, `update customers set country = 'FR' where id = 1`)
    assert.deepEqual([r.effect, r.ruleId], ['review', 'engineer-writes-need-approval'])
    assert.deepEqual(r.review?.approvers, {groups: ['approvers']})
    assert.equal(r.review?.approvals, 1)
    assert.equal(r.review?.ttlSeconds, 3600)
  })

  it('approvers write without review but not past the guardrails; auditors only read', () => {
    assert.equal(judge(approver, `update customers set country = 'FR' where id = 1`).effect, 'allow')
    assert.equal(judge(approver, 'drop table customers').effect, 'block')
    assert.equal(judge(admin, 'select 1').effect, 'allow')
    const w = judge(admin, `insert into orders values (999, 1, 1, 'EUR', 'paid', now())`)
    assert.deepEqual([w.effect, w.ruleId], ['block', 'auditors-read-demo'])
  })

  it('masks the PII columns and entities for everyone', () => {
    for (const who of [engineer, approver, admin]) {
      const m = judge(who, 'select * from customers').mask
      assert.deepEqual(m.ruleIds, ['mask-customer-pii'])
      assert.deepEqual([...m.entities].sort(), ['card', 'email', 'iban', 'phone'])
      assert.equal(m.columns.length, 3)
    }
  })
})
