// The session's column matchers (issue 15 hot path): one per distinct pattern list, however many
// plan objects carry it, and never one built for another list.
import {strict as assert} from 'node:assert'
import {ColumnMatchers} from '../../../src/masking/columns.js'

describe('masking: a session keeps one column matcher per pattern list', () => {
  it('equal lists in different plans share a matcher; a changed list (a policy reload) gets its own', () => {
    const m = new ColumnMatchers()
    const a = m.get(['customers.email'])
    assert.equal(m.get(['customers.email']), a)
    const b = m.get(['customers.name'])
    assert.notEqual(b, a)
    assert.equal(b.match({table: 'customers', column: 'email'}), undefined)
    assert.equal(b.match({table: 'customers', column: 'name'}), 'customers.name')
    assert.equal(m.get(['customers.email']).match({table: 'customers', column: 'email'}), 'customers.email')
    assert.ok(m.get([]).empty)
  })

  it('stays bounded when the lists keep changing', () => {
    const m = new ColumnMatchers()
    const first = m.get(['t.c0'])
    for (let i = 1; i < 100; i++) m.get([`t.c${i}`])
    assert.notEqual(m.get(['t.c0']), first, 'the oldest lists were dropped')
  })
})
