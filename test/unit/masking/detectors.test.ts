import {strict as assert} from 'node:assert'
import {ibanValid, luhnValid, maskValue, mightContainPii} from '../../../src/masking/detectors.js'
import {ALL_ENTITIES, type MaskEntity} from '../../../src/masking/types.js'

const all = new Set<MaskEntity>(ALL_ENTITIES)
const mask = (s: string) => maskValue(s, all)

describe('value detectors', () => {
  it('validates card numbers with Luhn and IBANs with mod-97', () => {
    assert.ok(luhnValid('4111111111111111'))
    assert.ok(!luhnValid('4111111111111112'))
    assert.ok(ibanValid('GB82 WEST 1234 5698 7654 32'))
    assert.ok(ibanValid('DE89370400440532013000'))
    assert.ok(!ibanValid('DE89370400440532013001'))
  })

  for (const [entity, input, gone] of [
    ['email', 'write to bob.smith+x@mail.example.org today', 'bob.smith'],
    ['card', 'card 4111 1111 1111 1111 exp', '4111 1111 1111'],
    ['card', '5500-0000-0000-0004', '5500-0000-0000'],
    ['iban', 'pay GB82WEST12345698765432 now', 'WEST1234'],
    ['ssn', 'ssn 123-45-6789', '123-45-6789'],
    ['phone', 'call +1 415 555 2671', '555 2671'],
    ['phone', 'call (415) 555-2671', '555-2671'],
    ['phone', 'ring 020 7946 0958', '7946 0958'],
    ['phone', 'E.164 +4915112345678', '+4915112345678'],
    ['jwt', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl', 'eyJhbGciOiJIUzI1NiJ9'],
    ['api_key', 'key sk_live_4eC39HqLyjWDarjtT1zdp7dc', 'sk_live_4eC39'],
    ['api_key', 'AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7'],
    ['api_key', 'ghp_16C7e42F292c6912E7710c838347Ae178B4a', 'ghp_16C7'],
    ['api_key', 'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy', 'xoxb-1765'],
  ] as const) {
    it(`detects ${entity}: ${input}`, () => {
      const r = mask(input)
      assert.ok(r, 'nothing found')
      assert.ok(!r.text.includes(gone), r.text)
      assert.equal(r.found[entity], 1, JSON.stringify(r.found))
    })
  }

  it('replaces only the matched substring and keeps a card\'s last four', () => {
    assert.equal(mask('card 4111 1111 1111 1111 exp')?.text, 'card **** **** **** 1111 exp')
    assert.equal(mask('mail a@b.io, thanks')?.text, 'mail ****@****, thanks')
  })

  it('leaves innocent values alone', () => {
    for (const s of ['4111111111111112', '2024-01-15 10:20:30', 'order 12345', 'hello world', 'DE89370400440532013001', '12.5', 'v1.2.3-beta']) {
      assert.equal(mask(s), undefined, s)
    }
  })

  it('only runs the entities asked for', () => {
    assert.equal(maskValue('a@b.io', new Set(['card'])), undefined)
  })

  it('prefilter skips short and digit-poor values', () => {
    const b = Buffer.from('hello world, nothing here')
    assert.equal(mightContainPii(b, 0, b.length), false)
    const e = Buffer.from('x a@b.io')
    assert.equal(mightContainPii(e, 0, e.length), true)
  })
})
