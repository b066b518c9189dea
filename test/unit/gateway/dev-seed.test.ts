// The dev environment's seed data is deterministic and looks like real PII to the detectors (so
// masking demos what it would do in production).
import assert from 'node:assert/strict'
import {cardFor, DEMO_CUSTOMERS, demoCustomers, demoOrders, ibanFor} from '../../../src/gateway/dev-seed.js'
import {ibanValid, luhnValid, maskValue} from '../../../src/masking/detectors.js'

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
