// The statement gate's audit modes over the real AuditLog (SQLite in a temp dir): in hold mode a
// statement is admitted before its record is durable and `untilDurable` holds its response until
// it is; in strict mode `admit` itself waits. Commit failures are real: a trigger that aborts the
// insert, and an event the log cannot encode (refused alone while its group commits).
import {strict as assert} from 'node:assert'
import {AuditLog} from '../../../src/audit/log.js'
import {AUDIT_UNAVAILABLE_RULE, policyHooks, refuseStoredFromViews, ResponseWithheld, StatementGate, type AuditMode, type Verdict} from '../../../src/engines/gate.js'
import {silentLogger} from '../../../src/shared/log.js'
import {alice, openDb, tempDir} from '../audit/_helpers.js'

const allow: Verdict = {effect: 'allow', ruleId: 'r-allow', mask: {columns: [], entities: [], ruleIds: []}}

describe('statement gate: audit modes', () => {
  let t: ReturnType<typeof tempDir>
  let db: ReturnType<typeof openDb>
  let log: AuditLog
  beforeEach(() => {
    t = tempDir()
    db = openDb(t.dir)
    log = AuditLog.open({db, dataDir: t.dir})
    // A real commit failure for any record whose text says so.
    db.exec("CREATE TRIGGER fail_marked BEFORE INSERT ON audit_events WHEN NEW.payload LIKE '%fail_me%' BEGIN SELECT RAISE(ABORT, 'disk full'); END")
  })
  afterEach(async () => {
    await log.close()
    db.close()
    t.cleanup()
  })

  /** The gateway's own hooks (policyHooks) writing to the real log, with every statement allowed. */
  const gateFor = (mode: AuditMode) => {
    const unused = () => {
      throw new Error('not called: the judge is replaced')
    }
    const hooks = policyHooks({session: 's', identity: alice, connection: {name: 'c', type: 'postgres'}, policy: unused, analyze: unused, describe: (sql: string) => sql, audit: log, logger: silentLogger, protocol: 'postgres'})
    return new StatementGate({...hooks, judge: async () => allow}, silentLogger, mode)
  }
  const recorded = (kind = 'statement') => (db.prepare('SELECT count(*) AS n FROM audit_events WHERE kind = ?').get(kind) as {n: number}).n
  const admitted = async (gate: StatementGate, text: string) => gate.admit(await gate.judge(text))
  const ran = {rows: 1, bytes: 10, masked: {}}

  it('hold: admits before the record is durable; untilDurable resolves once it is, then costs nothing', async () => {
    const gate = gateFor('hold')
    assert.equal(gate.untilDurable(), undefined, 'nothing admitted: nothing to wait for')
    const stmt = await gate.judge('insert 1')
    assert.equal(await gate.admit(stmt), undefined)
    assert.equal(recorded(), 0, 'admitted (forwarded) before its record is committed')
    gate.finish(stmt, ran)
    const wait = gate.untilDurable()
    assert.ok(wait, 'the response must wait')
    await wait
    assert.equal(recorded(), 1, 'released only once the record is committed')
    await Promise.resolve()
    assert.equal(gate.untilDurable(), undefined, 'all durable: no promise, no await')
    await log.flush()
    assert.equal(recorded('statement.result'), 1, 'its result is reported once the record is durable')
  })

  it('hold: a record that fails to commit withholds the response and its result event, and later statements are refused', async () => {
    const gate = gateFor('hold')
    const stmt = await gate.judge('insert fail_me')
    assert.equal(await gate.admit(stmt), undefined)
    gate.finish(stmt, ran)
    await assert.rejects(gate.untilDurable()!, (err: unknown) => err instanceof ResponseWithheld && /^hoop: AUDIT_UNAVAILABLE: /.test(err.message))
    const refused = await admitted(gate, 'insert 2')
    assert.equal(refused?.ruleId, AUDIT_UNAVAILABLE_RULE)
    await assert.rejects(gate.untilDurable()!, ResponseWithheld, 'the failure is never forgotten')
    await log.flush()
    assert.equal(recorded('statement.result'), 0, 'no result reported for a response the client never got')
  })

  it('hold: an earlier record that fails is not covered up by a later one that commits', async () => {
    const gate = gateFor('hold')
    // A lone surrogate cannot be encoded: that event is refused alone, the rest of its group commits.
    await admitted(gate, 'insert \ud800')
    await admitted(gate, 'insert 2')
    await assert.rejects(gate.untilDurable()!, ResponseWithheld)
    assert.equal(recorded(), 1, 'the later record did commit')
  })

  it('strict: the record is durable before admit returns; a failed record refuses the statement', async () => {
    const gate = gateFor('strict')
    assert.equal(await admitted(gate, 'insert 1'), undefined)
    assert.equal(recorded(), 1, 'durable before the statement may be forwarded')
    assert.equal(gate.untilDurable(), undefined, 'nothing is ever held')
    assert.equal((await admitted(gate, 'insert fail_me'))?.ruleId, AUDIT_UNAVAILABLE_RULE)
    assert.equal(await admitted(gate, 'insert 3'), undefined, 'the session goes on')
  })

  it('both modes refuse at once, before forwarding, when the log cannot take a record (closed)', async () => {
    await log.close()
    for (const mode of ['hold', 'strict'] as const) assert.equal((await admitted(gateFor(mode), 'insert 1'))?.ruleId, AUDIT_UNAVAILABLE_RULE, mode)
  })
})

describe('statement gate: stored values read through views (hoop.no-laundering)', () => {
  const mask = {columns: ['customers.email'], entities: [], ruleIds: ['pii']}
  const stored = (table: string | undefined, column: string) => ({from: {...(table === undefined ? {} : {schema: 's', table}), column}, ruleId: 'hoop.no-laundering' as const, command: 'INSERT', into: 'a table (INSERT)'})
  const storing = (...values: ReturnType<typeof stored>[]): Verdict => ({effect: 'allow', ruleId: 'all', mask, stored: values})

  it('asks the catalog about the relations the values come from, once each, and refuses one derived from a masked column', async () => {
    const asked: unknown[] = []
    const r = await refuseStoredFromViews(storing(stored('t', 'a'), stored('v', 'contact'), stored('v', 'id')), async (rels, m) => {
      asked.push(rels, m.columns)
      return ['s.v.contact']
    }, silentLogger)
    assert.deepEqual(asked, [[{schema: 's', table: 't'}, {schema: 's', table: 'v'}], ['customers.email']])
    assert.equal(r?.effect, 'block')
    assert.equal(r?.ruleId, 'hoop.no-laundering')
  })

  it('lets values from underived view columns pass, and asks nothing when nothing is stored from a relation', async () => {
    assert.equal(await refuseStoredFromViews(storing(stored('v', 'id')), async () => ['s.v.contact'], silentLogger), undefined)
    const never = async (): Promise<string[]> => assert.fail('no look-up expected')
    assert.equal(await refuseStoredFromViews(allow, never, silentLogger), undefined)
    assert.equal(await refuseStoredFromViews(storing(stored(undefined, 'x')), never, silentLogger), undefined)
  })

  it('refuses when the look-up fails (fail closed)', async () => {
    const r = await refuseStoredFromViews(storing(stored('t', 'a')), async () => Promise.reject(new Error('catalog down')), silentLogger)
    assert.deepEqual([r?.effect, r?.ruleId], ['block', 'hoop.no-laundering'])
  })
})
