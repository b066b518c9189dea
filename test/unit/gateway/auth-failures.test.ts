// Auth-failure aggregation: a flood costs a few audit writes per interval and no count is lost
// (issue 13: every bad-token upgrade was its own fsync'd event, 527 per second).
import assert from 'node:assert/strict'
import {AuditLog} from '../../../src/audit/log.js'
import {verifyLive} from '../../../src/audit/verify.js'
import {AuthFailureAudit} from '../../../src/gateway/auth-failures.js'
import {silentLogger} from '../../../src/shared/log.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {tempDir} from '../audit/_helpers.js'

interface Row {
  method: string
  reason: string
  client_address?: string
  count?: number
  first?: string
  last?: string
  reasons?: Record<string, number>
  other_sources?: boolean
}

function failures(store: SqliteStore): Row[] {
  return (store.db.prepare("SELECT body FROM audit_events WHERE kind = 'auth.failure' ORDER BY seq").all() as {body: string}[]).map((r) => JSON.parse(r.body).data as Row)
}

const total = (rows: Row[]) => rows.reduce((n, r) => n + (r.count ?? 1), 0)

describe('auth-failure aggregation', () => {
  let t: ReturnType<typeof tempDir>
  let store: SqliteStore
  let audit: AuditLog
  beforeEach(() => {
    t = tempDir()
    store = new SqliteStore(t.dir)
    audit = AuditLog.open({db: store.db, dataDir: t.dir})
  })
  afterEach(async () => {
    await audit.close()
    store.close()
    t.cleanup()
  })

  it('writes the first failure per source on its own and counts the rest into one event per interval', async () => {
    let clock = Date.parse('2024-06-01T00:00:00Z')
    const agg = new AuthFailureAudit(audit, silentLogger, {intervalMs: 3_600_000, now: () => new Date((clock += 10))})
    const firsts: boolean[] = []
    for (let i = 0; i < 500; i++) firsts.push(agg.note({method: 'bearer', reason: i % 2 ? 'token expired' : 'bad signature', clientAddress: '10.0.0.1'}))
    for (let i = 0; i < 3; i++) firsts.push(agg.note({method: 'agent-token', reason: 'unknown agent token', clientAddress: '10.0.0.2'}))
    assert.equal(firsts.filter(Boolean).length, 2, 'only the first per source is worth a log line')
    await agg.flush()
    // A new interval: the source's next failure is written on its own again.
    assert.equal(agg.note({method: 'bearer', reason: 'token expired', clientAddress: '10.0.0.1'}), true)
    await agg.close()

    const rows = failures(store)
    assert.equal(rows.length, 5)
    assert.equal(total(rows), 504)
    const [first, other, aggregated, aggregatedAgent, next] = rows
    assert.deepEqual(first, {method: 'bearer', reason: 'bad signature', client_address: '10.0.0.1'})
    assert.equal(other.method, 'agent-token')
    assert.equal(aggregated.count, 499)
    assert.deepEqual(aggregated.reasons, {'token expired': 250, 'bad signature': 249})
    assert.equal(aggregated.first, '2024-06-01T00:00:00.020Z')
    assert.ok(aggregated.last! > aggregated.first!)
    assert.equal(aggregatedAgent.count, 2)
    assert.equal(next.count, undefined)
    assert.equal(verifyLive(store.db).ok, true)
  })

  it('bounds the sources tracked per interval; the rest are counted together', async () => {
    const agg = new AuthFailureAudit(audit, silentLogger, {intervalMs: 3_600_000, maxSources: 4})
    for (let i = 0; i < 1000; i++) agg.note({method: 'bearer', reason: `bad token ${i % 20}`, clientAddress: `10.0.${i % 250}.1`})
    await agg.close()
    const rows = failures(store)
    // 4 sources written on their own, their repeats counted per source, one event for the others.
    assert.equal(rows.length, 9)
    assert.equal(total(rows), 1000)
    const others = rows.filter((r) => r.other_sources)
    assert.equal(others.length, 1)
    assert.equal(others[0].client_address, undefined)
    assert.equal(Object.keys(others[0].reasons!).length, 9, 'eight reasons and "(other reasons)"')
    assert.equal(Object.values(others[0].reasons!).reduce((a, b) => a + b, 0), others[0].count)
  })

  it('close() appends what is counted; a failure after close is not silently half-counted', async () => {
    const agg = new AuthFailureAudit(audit, silentLogger)
    for (let i = 0; i < 10; i++) agg.note({method: 'bearer', reason: 'expired', clientAddress: '::1'})
    await agg.close()
    assert.equal(agg.note({method: 'bearer', reason: 'expired', clientAddress: '::1'}), false)
    assert.equal(total(failures(store)), 10)
  })
})
