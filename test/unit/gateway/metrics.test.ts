// The metrics registry renders Prometheus text a scraper accepts, and the gate's hooks count
// decisions and time durable audit records without changing what the hooks do.
import assert from 'node:assert/strict'
import type {GateHooks, Judged} from '../../../src/engines/gate.js'
import {GatewayMetrics} from '../../../src/gateway/metrics.js'

describe('gateway metrics', () => {
  it('renders every family with HELP and TYPE, labelled samples, and cumulative histogram buckets', () => {
    let links = 2
    const m = new GatewayMetrics(() => links)
    m.sessionsTotal.inc({type: 'postgres'})
    m.sessionsTotal.inc({type: 'postgres'})
    m.sessionsActive.inc({type: 'http'})
    m.sessionsActive.dec({type: 'http'})
    m.errors.inc({code: 'ACCESS_DENIED'})
    m.auditAppend.observe(0.0007)
    m.auditAppend.observe(0.003)
    m.auditAppend.observe(30)
    links = 3
    const text = m.render()
    const lines = text.split('\n')
    for (const name of ['hoop_sessions_active', 'hoop_sessions_total', 'hoop_statements_total', 'hoop_audit_append_seconds', 'hoop_relay_bytes_total', 'hoop_errors_total', 'hoop_agent_links']) {
      assert.ok(lines.some((l) => l.startsWith(`# HELP ${name} `)), name)
      assert.ok(lines.some((l) => /^# TYPE \S+ (counter|gauge|histogram)$/.test(l) && l.includes(` ${name} `)), name)
    }
    assert.ok(lines.includes('hoop_sessions_total{type="postgres"} 2'))
    assert.ok(lines.includes('hoop_sessions_active{type="http"} 0'))
    assert.ok(lines.includes('hoop_errors_total{code="ACCESS_DENIED"} 1'))
    assert.ok(lines.includes('hoop_agent_links 3'), 'read at scrape time')
    assert.ok(lines.includes('hoop_audit_append_seconds_bucket{le="0.0005"} 0'))
    assert.ok(lines.includes('hoop_audit_append_seconds_bucket{le="0.001"} 1'))
    assert.ok(lines.includes('hoop_audit_append_seconds_bucket{le="0.005"} 2'))
    assert.ok(lines.includes('hoop_audit_append_seconds_bucket{le="5"} 2'))
    assert.ok(lines.includes('hoop_audit_append_seconds_bucket{le="+Inf"} 3'))
    assert.ok(lines.includes('hoop_audit_append_seconds_count 3'))
    assert.ok(text.endsWith('\n'))
  })

  it('counts allowed and refused statements by decision and passes every call through', async () => {
    const m = new GatewayMetrics(() => 0)
    const calls: string[] = []
    const hooks: GateHooks = {
      judge: async () => ({effect: 'allow', ruleId: 'r', mask: {columns: [], entities: [], ruleIds: []}}),
      beforeForward: async () => void calls.push('before'),
      afterStatement: () => void calls.push('after'),
      refused: (s) => void calls.push(`refused ${s.verdict.effect}`),
    }
    const metered = m.metered(hooks)
    const allowed: Judged = {text: 'SELECT 1', verdict: {effect: 'allow', ruleId: 'r', mask: {columns: [], entities: [], ruleIds: []}}}
    await metered.beforeForward(allowed, 'hold')
    metered.afterStatement({...allowed, rows: 1, bytes: 10, masked: {}})
    metered.refused({text: 'DROP TABLE t', verdict: {effect: 'block', ruleId: 'no-ddl', message: 'no'}})
    metered.refused({text: 'DELETE FROM t', verdict: {effect: 'review', ruleId: 'deletes', message: 'ask'}})
    assert.deepEqual(calls, ['before', 'after', 'refused block', 'refused review'])
    assert.deepEqual(['allow', 'block', 'review'].map((decision) => m.statements.get({decision})), [1, 1, 1])
    assert.ok(m.render().includes('hoop_audit_append_seconds_count 1'))

    const failing = m.metered({...hooks, beforeForward: async () => Promise.reject(new Error('disk full'))})
    await assert.rejects(failing.beforeForward(allowed, 'hold'), /disk full/, 'a failed record still fails the statement')
    // A record that cannot be placed throws at once, so the gate refuses before forwarding.
    const closed = m.metered({
      ...hooks,
      beforeForward: () => {
        throw new Error('log closed')
      },
    })
    assert.throws(() => closed.beforeForward(allowed, 'hold'), /log closed/)
  })
})
