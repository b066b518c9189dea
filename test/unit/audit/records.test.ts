// Complete records (issue 14, item 4), asserted on the stored events: the approval id on the
// statement it authorised and the policy version on every decision (the gateway's deciders over a
// real audit log and approval service), sessions left open by a crash closed on restart, and the
// policy version itself.
import assert from 'node:assert/strict'
import {ApprovalService, approvalAuditEvents, approvalResolver, approvalStoreFor} from '../../../src/approvals/index.js'
import type {StoredEvent} from '../../../src/audit/events.js'
import {events} from '../../../src/audit/events.js'
import {AuditLog} from '../../../src/audit/log.js'
import {policyVersion} from '../../../src/audit/policy-version.js'
import {SessionRecorder} from '../../../src/audit/recorder.js'
import {ReportBuilder} from '../../../src/audit/reports.js'
import {verifyLive} from '../../../src/audit/verify.js'
import {policyHooks} from '../../../src/engines/gate.js'
import {closeUnendedSessions, UNRECORDED_END} from '../../../src/gateway/sessions.js'
import {parsePolicy, type Operation} from '../../../src/policy/index.js'
import {silentLogger} from '../../../src/shared/log.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {alice, bob, tempDir} from './_helpers.js'

const POLICY = `version: 1
rules:
  - {id: people, subjects: {groups: [dev, dba]}, connections: [prod-db], effect: allow}
  - id: writes
    effect: review
    match: {writes: true}
    review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}
  - {id: no-drop, effect: block, match: {kinds: [drop]}}
`

/** A stand-in for the SQL analyser: UPDATE writes, DROP drops, the rest reads. */
function analyze(sql: string): Operation {
  const kind = /^update/i.test(sql) ? 'update' : /^drop/i.test(sql) ? 'drop' : 'select'
  return {engine: 'postgres', statements: [{kind, command: kind.toUpperCase(), tables: ['t'], writes: kind !== 'select', functions: [], index: 0}]}
}

function stored(store: SqliteStore, kind?: string): StoredEvent[] {
  const rows = store.db.prepare(`SELECT body FROM audit_events ${kind ? 'WHERE kind = ?' : ''} ORDER BY seq`).all(...(kind ? [kind] : [])) as {body: string}[]
  return rows.map((r) => JSON.parse(r.body) as StoredEvent)
}

describe('complete records on the stored events', () => {
  let t: ReturnType<typeof tempDir>
  let store: SqliteStore
  let log: AuditLog
  beforeEach(() => {
    t = tempDir()
    store = new SqliteStore(t.dir)
    log = AuditLog.open({db: store.db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
  })
  afterEach(async () => {
    await log.close()
    store.close()
    t.cleanup()
  })

  it('the policy version is the same for the same rules wherever they are written, and new for any change', async () => {
    const a = parsePolicy(POLICY, '/etc/hoop/a.yaml')
    const b = parsePolicy(`# moved and commented\n${POLICY}`, '/srv/b.yaml')
    const c = parsePolicy(POLICY.replace('ttl: 1h', 'ttl: 2h'), '/etc/hoop/a.yaml')
    assert.match(policyVersion(a), /^[0-9a-f]{64}$/)
    assert.equal(policyVersion(a), policyVersion(b))
    assert.notEqual(policyVersion(a), policyVersion(c))
  })

  it('a statement run under an approval carries its id; every decision carries the policy version; approval.used precedes it', async () => {
    const approvals = new ApprovalService(approvalStoreFor(store), {
      onEvent: (k, r, d, u) => {
        for (const e of approvalAuditEvents(k, r, d, u)) void log.append(e)
      },
    })
    const policy = parsePolicy(POLICY, '/etc/hoop/policy.yaml')
    const hooks = (session: string) =>
      policyHooks({session, identity: alice, connection: {name: 'prod-db', type: 'postgres'}, policy: () => policy, analyze, describe: (s) => s, audit: log, approvals: approvalResolver(approvals), logger: silentLogger, protocol: 'postgres'})
    const run = async (session: string, sql: string) => {
      const h = hooks(session)
      const verdict = await h.judge(sql)
      if (verdict.effect === 'allow') await h.beforeForward({text: sql, verdict}, 'strict')
      else h.refused({text: sql, verdict})
      await log.flush()
      return verdict
    }
    const update = 'UPDATE t SET x = 1'
    const held = await run('ses_ASK000000000', update)
    assert.equal(held.effect, 'review')
    await approvals.approve(held.effect === 'review' ? held.approvalId! : '', bob, 'ok')
    await run('ses_RUN000000000', update)
    await run('ses_RUN000000000', 'SELECT 1')
    await run('ses_RUN000000000', 'DROP TABLE t')
    // A refusal the engine makes without a judgement (a Bind of a statement it never saw parsed).
    hooks('ses_RUN000000000').refused({text: '<bind of statement "s1">', verdict: {effect: 'block', ruleId: 'hoop.unknown-statement', message: 'not prepared with a protocol Parse'}})
    await log.flush()

    const version = policyVersion(policy)
    const statements = stored(store, 'statement')
    assert.deepEqual(statements.map((e) => [e.session, e.data.decision, e.data.approval_id ?? null]), [
      ['ses_ASK000000000', 'review', null],
      ['ses_RUN000000000', 'allow', held.effect === 'review' ? held.approvalId : 'x'],
      ['ses_RUN000000000', 'allow', null],
      ['ses_RUN000000000', 'block', null],
      ['ses_RUN000000000', 'block', null],
    ])
    assert.ok(statements.every((e) => e.data.policy_version === version), 'every decision names the policy version, refusals the engine made included')
    const all = stored(store)
    const usedAt = all.findIndex((e) => e.kind === 'approval.used')
    const ranAt = all.findIndex((e) => e.kind === 'statement' && e.data.approval_id)
    assert.ok(usedAt >= 0 && usedAt < ranAt, 'approval.used is recorded before the statement it authorised')
    assert.equal(all[usedAt].session, 'ses_RUN000000000')

    // The reports an auditor gets: the session column filled, the approval and policy version on the decision.
    const reports = new ReportBuilder()
    for (const e of all) reports.add(e)
    const rows = reports.approvals.jsonl.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | null>)
    assert.deepEqual(rows.map((r) => [r.event, r.session]), [
      ['requested', 'ses_ASK000000000'],
      ['approved', 'ses_ASK000000000'],
      ['used', 'ses_RUN000000000'],
    ])
    assert.ok(rows[1].valid_from && rows[1].valid_until)
    const ran = reports.sessionLog.jsonl.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | null>).find((r) => r.approval_id)
    assert.equal(ran?.policy_version, version)
    assert.equal(verifyLive(store.db).ok, true)
  })

  it('a session the gateway left open when it stopped is closed on the next start, with its reason and recording', async () => {
    const started = '2025-01-01T10:00:00.000Z'
    await store.startSession({id: 'ses_CRASHED00000', subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', clientAddress: '10.0.0.7', startedAt: started})
    await log.append(events.sessionStart({at: started, session: 'ses_CRASHED00000', identity: alice, connection: 'prod-db', agent: 'embedded', clientAddress: '10.0.0.7'}))
    await log.append(events.statement({at: '2025-01-01T10:00:05.000Z', session: 'ses_CRASHED00000', identity: alice, connection: 'prod-db', statementId: 's1', text: 'SELECT 1', decision: 'allow'}))
    const rec = new SessionRecorder({db: store.db, sessionId: 'ses_CRASHED00000', connection: 'prod-db'})
    rec.record('client', 'statement', 'SELECT 1')
    ;(rec as unknown as {flush(): void}).flush()
    // A session that ended normally, and one refused before its start was recorded.
    await store.startSession({id: 'ses_FINE00000000', subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: started})
    await store.endSession('ses_FINE00000000', {endedAt: started, bytesUp: 1, bytesDown: 1, endReason: 'closed'})
    await store.startSession({id: 'ses_REFUSED00000', subject: alice.subject, identityKind: 'user', connection: 'prod-db', agent: 'embedded', startedAt: started})

    assert.equal(await closeUnendedSessions(store, store.db, log, silentLogger), 1)
    const [end] = stored(store, 'session.end')
    assert.equal(end.session, 'ses_CRASHED00000')
    assert.equal(end.data.reason, UNRECORDED_END)
    assert.equal(end.data.reason, 'gateway restarted; session ended without a record of its end')
    assert.equal(end.data.unrecorded, true)
    assert.equal(end.data.started_at, started)
    assert.equal(end.data.last_event_at, '2025-01-01T10:00:05.000Z')
    assert.equal(end.actor?.subject, alice.subject)
    const recording = end.data.recording as {chunks: number; truncated: boolean; failed: string}
    assert.equal(recording.chunks, 1)
    assert.equal(recording.failed, UNRECORDED_END)
    const open = store.db.prepare('SELECT id FROM sessions WHERE ended_at IS NULL').all()
    assert.deepEqual(open, [], 'no session is left open')
    assert.equal(await closeUnendedSessions(store, store.db, log, silentLogger), 0, 'the next start finds nothing to close')
    const reports = new ReportBuilder()
    for (const e of stored(store)) reports.add(e)
    assert.match(reports.sessionLog.csv, /reason=gateway restarted; session ended without a record of its end last_event_at=2025-01-01T10:00:05.000Z/)
  })
})
