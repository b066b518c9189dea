// The dev environment's pure parts: the seed data is deterministic and looks like real PII to the
// detectors (so masking demos what it would do in production), and the demo policy says what the
// banner and docs promise, judged offline on parsed SQL.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {cardFor, DEMO_CONNECTION, DEMO_CUSTOMERS, DEMO_POLICY, demoCustomers, demoOrders, ibanFor} from '../../../src/gateway/dev.js'
import {ibanValid, luhnValid, maskValue} from '../../../src/masking/detectors.js'
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

describe('dev environment: demo data', () => {
  it('is the same on every run, with unique ids and e-mails', () => {
    const a = demoCustomers(DEMO_CUSTOMERS)
    assert.deepEqual(demoCustomers(DEMO_CUSTOMERS), a)
    assert.equal(a.length, 50)
    assert.equal(new Set(a.map((c) => c.email)).size, 50)
    assert.deepEqual(
      a.map((c) => c.id),
      Array.from({length: 50}, (_, i) => i + 1),
    )
    assert.ok(new Set(a.map((c) => c.country)).size >= 5, 'several countries')
  })

  it('every card passes Luhn, every IBAN passes mod-97, and the detectors find each kind of value', () => {
    for (const c of demoCustomers(DEMO_CUSTOMERS)) {
      assert.ok(luhnValid(c.cardNumber.replace(/ /g, '')), c.cardNumber)
      assert.deepEqual(maskValue(c.cardNumber, new Set(['card']))?.found, {card: 1}, c.cardNumber)
      assert.deepEqual(maskValue(c.email, new Set(['email']))?.found, {email: 1}, c.email)
      assert.deepEqual(maskValue(c.phone, new Set(['phone']))?.found, {phone: 1}, c.phone)
      assert.match(c.email, /@(mail\.)?example\.(com|org|net)$/, 'reserved domains only')
      if (c.country === 'US') assert.equal(c.iban, null)
      else {
        assert.ok(c.iban && ibanValid(c.iban), String(c.iban))
        assert.deepEqual(maskValue(c.iban, new Set(['iban']))?.found, {iban: 1}, c.iban)
      }
      assert.ok(!Number.isNaN(Date.parse(c.createdAt)))
    }
  })

  it('check digits match known examples', () => {
    assert.equal(ibanFor('GB', 'WEST12345698765432'), 'GB82 WEST 1234 5698 7654 32')
    assert.equal(ibanFor('DE', '370400440532013000'), 'DE89 3704 0044 0532 0130 00')
    assert.equal(cardFor('4', 16, () => '1'), '4111 1111 1111 1111')
    const amex = '828224631000'.split('')
    assert.equal(cardFor('37', 15, () => amex.shift() ?? '?'), '3782 822463 10005')
  })

  it('orders point at existing customers, with a status the table allows', () => {
    const orders = demoOrders(150, DEMO_CUSTOMERS)
    assert.equal(orders.length, 150)
    for (const o of orders) {
      assert.ok(o.customerId >= 1 && o.customerId <= DEMO_CUSTOMERS)
      assert.ok(['pending', 'paid', 'shipped', 'refunded'].includes(o.status))
      assert.match(o.amount, /^\d+\.\d\d$/)
    }
  })
})

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
