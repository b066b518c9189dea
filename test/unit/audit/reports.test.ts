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

  it('drained in pieces, each report file is exactly what one undrained build holds', () => {
    const whole = new ReportBuilder()
    const pieces = new ReportBuilder()
    const got = new Map<string, string>()
    const sink = (path: string, text: string) => got.set(path, (got.get(path) ?? '') + text)
    const statement = (seq: number): StoredEvent => ({v: 1, seq, prev_hash: '0'.repeat(64), kind: 'statement', time: '2026-11-29T20:00:00.000Z', session: 'ses_A', connection: 'db', data: {text: `select ${seq}, 'a,"b"'`, decision: 'allow'}})
    const masking = (seq: number): StoredEvent => ({v: 1, seq, prev_hash: '0'.repeat(64), kind: 'masking', time: '2026-11-29T20:00:00.000Z', session: 'ses_A', data: {statement_id: 's', fields: [{column: 'c.email', count: 2}]}})
    for (let seq = 1; seq <= 50; seq++) {
      const e = seq % 7 === 0 ? masking(seq) : statement(seq)
      whole.add(e)
      pieces.add(e)
      if (seq % 9 === 0) {
        assert.ok(pieces.pending > 0)
        pieces.drain(sink)
        assert.equal(pieces.pending, 0)
      }
    }
    pieces.drain(sink)
    for (const f of whole.files()) assert.equal(got.get(f.path) ?? '', f.content, f.path)
    assert.ok((got.get('reports/session-log.csv') ?? '').startsWith('seq,time,kind'), 'the CSV header is written once, first')
    assert.equal(pieces.sessionLog.rows, whole.sessionLog.rows)
  })
})
