import assert from 'node:assert/strict'
import type {StoredEvent} from '../../../src/audit/events.js'
import {ReportBuilder} from '../../../src/audit/reports.js'

const authFailure = (seq: number, data: StoredEvent['data']): StoredEvent => ({v: 1, seq, prev_hash: '0'.repeat(64), kind: 'auth.failure', time: '2026-11-29T20:00:00.000Z', data})

describe('audit reports', () => {
  it('an aggregated auth.failure event counts as the failures it stands for', () => {
    const r = new ReportBuilder()
    r.add(authFailure(1, {method: 'token', reason: 'bad token'}))
    r.add(authFailure(2, {method: 'token', reason: 'bad token', count: 499, first: '2026-11-29T20:00:00.010Z', last: '2026-11-29T20:00:09.000Z'}))
    // A forged or broken count never lowers the tally below one event.
    r.add(authFailure(3, {method: 'token', count: -5}))
    assert.equal(r.counts['auth.failure'], 501)
  })
})
