// Just-in-time approvals end to end with the built CLI and real PostgreSQL: two service accounts
// (engineering asks, dba approves), `hoop exec` through the gateway's PostgreSQL engine, and
// `hoop approvals` as both identities. One-time approvals cannot be replayed, nor stretched to
// another statement; self-approval is refused; a rejection ends a request; --wait runs the
// statement once approved.
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {randomBytes} from 'node:crypto'
import {join} from 'node:path'
import pg from 'pg'
import type {StoredEvent} from '../../src/audit/events.js'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'

const TABLE = `hoop_apr_e2e_${randomBytes(4).toString('hex')}`

const CONFIG = `connections:
  - name: pg
    type: postgres
    target: 127.0.0.1:5432
    database: test
    username: postgres
  - name: pg-window
    type: postgres
    target: 127.0.0.1:5432
    database: test
    username: postgres
policy:
  version: 1
  rules:
    - id: people
      subjects: {groups: [engineering, dba]}
      connections: [pg, pg-window]
      effect: allow
    - id: no-drop
      effect: block
      connections: [pg]
      match: {kinds: [drop]}
    - id: writes-need-approval
      effect: review
      connections: [pg]
      match: {writes: true}
      review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}
    - id: window-writes
      effect: review
      connections: [pg-window]
      match: {writes: true}
      review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h, scope: session}
`

const APR = /apr_[A-Za-z0-9_-]{12}/

async function direct<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const c = new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})
  await c.connect()
  try {
    return (await c.query<T>(sql)).rows
  } finally {
    await c.end()
  }
}

describe('approvals end to end (built CLI, two identities, real PostgreSQL)', function () {
  this.timeout(240_000)
  const dir = tempDir('hoop-e2e-approvals-')
  let gw: GatewayProc
  let dev: Record<string, string>
  let dba: Record<string, string>
  const update = `UPDATE ${TABLE} SET n = n + 1 WHERE id = 1`

  const exec = (env: Record<string, string>, ...args: string[]) => runHoop(['exec', 'pg', '--gateway', gw.url, ...args], {env})
  const approvals = (env: Record<string, string>, ...args: string[]) => runHoop(['approvals', ...args, '--gateway', gw.url], {env})
  const counter = async () => Number((await direct<{n: number}>(`SELECT n FROM ${TABLE} WHERE id = 1`))[0].n)

  before(async () => {
    await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, n int NOT NULL); INSERT INTO ${TABLE} VALUES (1, 0), (2, 0)`)
    const dataDir = join(dir.path, 'data')
    dev = {HOOP_TOKEN: await createSecret('service-accounts', 'dev-bot', dataDir, ['engineering'])}
    dba = {HOOP_TOKEN: await createSecret('service-accounts', 'dba-bot', dataDir, ['dba'])}
    gw = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
  })

  after(async () => {
    await gw?.stop()
    await direct(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => {})
    dir.cleanup()
  })

  it('runs reads without review and prints them', async () => {
    const r = await exec(dev, '-e', `SELECT id, n FROM ${TABLE} ORDER BY id`, '--json')
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as {statements: Array<{command: string; fields: string[]; rows: string[][]}>}
    assert.deepEqual(out.statements[0].fields, ['id', 'n'])
    assert.deepEqual(out.statements[0].rows, [['1', '0'], ['2', '0']])
  })

  it('holds a write for approval, refuses self-approval, runs it once approved, and never twice', async () => {
    const first = await exec(dev, '-e', update)
    assert.equal(first.code, 17, first.stdout + first.stderr)
    const id = APR.exec(first.stderr)?.[0]
    assert.ok(id, `no approval id in: ${first.stderr}`)
    assert.match(first.stderr, new RegExp(`hoop approvals approve ${id}`))
    assert.equal(await counter(), 0, 'the held statement did not run')

    const listed = await approvals(dba, 'list', '--json')
    assert.equal(listed.code, 0, listed.stderr)
    const pending = (JSON.parse(listed.stdout) as {approvals: Array<{id: string; statement: string; requester: {name: string}}>}).approvals
    const mine = pending.find((a) => a.id === id)
    assert.ok(mine, 'the dba sees the request')
    assert.equal(mine.statement, update)
    assert.equal(mine.requester.name, 'dev-bot')

    const self = await approvals(dev, 'approve', id, '--reason', 'trust me')
    assert.equal(self.code, 15, self.stdout + self.stderr)
    assert.match(self.stderr, /dev-bot \(service-account\) requested apr_\S+ and cannot approve it/)

    const noReason = await approvals(dba, 'approve', id)
    assert.equal(noReason.code, 2, 'no reason off a terminal is an error')
    assert.match(noReason.stderr, /--reason/)

    const ok = await approvals(dba, 'approve', id, '--reason', 'change ticket OPS-7')
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, new RegExp(`${id} approved`))

    const run = await exec(dev, '-e', update)
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /UPDATE 1/)
    assert.equal(await counter(), 1)

    const replay = await exec(dev, '-e', update)
    assert.equal(replay.code, 17, 'a one-time approval cannot be replayed')
    const again = APR.exec(replay.stderr)?.[0]
    assert.ok(again && again !== id, 'the replay opened a new request')
    assert.equal(await counter(), 1)

    const shown = await approvals(dev, 'show', id, '--json')
    const rec = JSON.parse(shown.stdout) as {state: string; usedAt?: string; decisions: Array<{approver: {name: string}; reason: string}>}
    assert.equal(rec.state, 'used')
    assert.ok(rec.usedAt)
    assert.deepEqual(rec.decisions.map((d) => [d.approver.name, d.reason]), [['dba-bot', 'change ticket OPS-7']])
  })

  it('an approval does not cover a different statement', async () => {
    const a = await exec(dev, '-e', `UPDATE ${TABLE} SET n = n + 1 WHERE id = 2`)
    assert.equal(a.code, 17)
    const id = APR.exec(a.stderr)![0]
    assert.equal((await approvals(dba, 'approve', id, '--reason', 'ok')).code, 0)
    const other = await exec(dev, '-e', `UPDATE ${TABLE} SET n = n + 100 WHERE id = 2`)
    assert.equal(other.code, 17, 'the approval names another statement')
    assert.notEqual(APR.exec(other.stderr)![0], id)
    assert.equal(Number((await direct<{n: number}>(`SELECT n FROM ${TABLE} WHERE id = 2`))[0].n), 0)
  })

  it('a rejected request stays rejected and the statement does not run', async () => {
    const sql = `DELETE FROM ${TABLE} WHERE id = 2`
    const a = await exec(dev, '-e', sql)
    const id = APR.exec(a.stderr)![0]
    const no = await approvals(dba, 'reject', id, '--reason', 'not during the freeze', '--json')
    assert.equal(no.code, 0, no.stderr)
    const rec = JSON.parse(no.stdout) as {state: string; decisions: Array<{decision: string; reason: string}>}
    assert.equal(rec.state, 'rejected')
    assert.deepEqual(rec.decisions.map((d) => [d.decision, d.reason]), [['reject', 'not during the freeze']])
    const b = await exec(dev, '-e', sql)
    assert.equal(b.code, 17)
    assert.notEqual(APR.exec(b.stderr)![0], id, 'asking again is a new request')
    assert.equal((await direct(`SELECT 1 FROM ${TABLE} WHERE id = 2`)).length, 1)
  })

  it('--wait waits for the decision, then runs the statement', async () => {
    const sql = `UPDATE ${TABLE} SET n = n + 10 WHERE id = 1`
    const before = await counter()
    const p = spawnHoop(['exec', 'pg', '--gateway', gw.url, '-e', sql, '--wait'], {env: dev})
    const m = await p.waitFor(/waiting for approval (apr_[A-Za-z0-9_-]{12})/)
    const ok = await approvals(dba, 'approve', m[1], '--reason', 'go ahead')
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(await p.exited, 0, p.stderr())
    assert.match(p.stdout(), /UPDATE 1/)
    assert.equal(await counter(), before + 10)
  })

  it('exec --json gives the approval id as its own field: in the error while held, in the result once run', async () => {
    const sql = `UPDATE ${TABLE} SET n = n + 1000 WHERE id = 2`
    const held = await exec(dev, '-e', sql, '--json')
    assert.equal(held.code, 17, held.stdout + held.stderr)
    const err = (JSON.parse(held.stdout) as {error: {code: string; approvalId: string}}).error
    assert.equal(err.code, 'APPROVAL_REQUIRED')
    assert.match(err.approvalId, new RegExp(`^${APR.source}$`))
    assert.equal((await approvals(dba, 'approve', err.approvalId, '--reason', 'json')).code, 0)
    const ran = await exec(dev, '-e', sql, '--json')
    assert.equal(ran.code, 0, ran.stderr)
    const out = JSON.parse(ran.stdout) as {approvalId?: string; approvals: string[]}
    assert.equal(out.approvalId, err.approvalId)
    assert.deepEqual(out.approvals, [err.approvalId])
    const plain = await exec(dev, '-e', `SELECT 1`, '--json')
    assert.equal((JSON.parse(plain.stdout) as {approvalId?: string}).approvalId, undefined, 'no approval, no id')
  })

  it('blocks a guarded statement with exit 16 and no approval', async () => {
    const r = await exec(dev, '-e', `DROP TABLE ${TABLE}`)
    assert.equal(r.code, 16, r.stderr)
    assert.match(r.stderr, /no-drop/)
    assert.doesNotMatch(r.stderr, APR)
  })

  it('connect --request-access waits for a time-boxed grant, then writes run without one-time approvals', async () => {
    const before0 = await counter()
    const denied = await runHoop(['exec', 'pg-window', '--gateway', gw.url, '-e', `UPDATE ${TABLE} SET n = n + 100 WHERE id = 1`], {env: dev})
    assert.equal(denied.code, 17, 'without a grant the write waits for review')
    assert.equal(await counter(), before0)
    const p = spawnHoop(['connect', 'pg-window', '--gateway', gw.url, '--port', '0', '--json', '--request-access', '--reason', 'INC-42 hotfix', '--duration', '30m'], {env: dev})
    try {
      const m = await p.waitFor(/waiting for approval (apr_[A-Za-z0-9_-]{12})/)
      const ok = await approvals(dba, 'approve', m[1], '--reason', 'incident window')
      assert.equal(ok.code, 0, ok.stderr)
      await p.waitFor(/\{"connection".*\}/)
      const before = await counter()
      const run = () => runHoop(['exec', 'pg-window', '--gateway', gw.url, '-e', `UPDATE ${TABLE} SET n = n + 100 WHERE id = 1`], {env: dev})
      const r = await run()
      assert.equal(r.code, 0, r.stderr)
      const again = await run()
      assert.equal(again.code, 0, again.stderr)
      assert.equal(await counter(), before + 200)
      const json = await runHoop(['exec', 'pg-window', '--gateway', gw.url, '-e', `SELECT 1`, '--json'], {env: dev})
      assert.equal((JSON.parse(json.stdout) as {approvalId?: string}).approvalId, undefined, 'a read needs no grant')
      const w = await runHoop(['exec', 'pg-window', '--gateway', gw.url, '-e', `UPDATE ${TABLE} SET n = n WHERE id = 1`, '--json'], {env: dev})
      assert.equal((JSON.parse(w.stdout) as {approvalId?: string}).approvalId, m[1], 'a write under the grant names it')
    } finally {
      await p.stop()
    }
  })

  it('the audit log has the approval id on each statement it authorised, approval.used, sessions and the policy version', async () => {
    const db = new Database(join(gw.dataDir, 'hoop.db'), {readonly: true})
    try {
      const all = (db.prepare('SELECT body FROM audit_events ORDER BY seq').all() as {body: string}[]).map((r) => JSON.parse(r.body) as StoredEvent)
      const byId = new Map<string, StoredEvent[]>()
      for (const e of all) if (typeof e.data.approval_id === 'string') byId.set(e.data.approval_id, [...(byId.get(e.data.approval_id) ?? []), e])
      // Each approval that ran something: requested (with its session), approved (valid from/until), used, then the statement.
      const ran = all.filter((e) => e.kind === 'statement' && e.data.approval_id)
      assert.ok(ran.length >= 4, `statements run under an approval: ${ran.length}`)
      for (const st of ran) {
        const trail = byId.get(st.data.approval_id as string)!
        const requested = trail.find((e) => e.kind === 'approval.requested')!
        assert.ok(requested.session, 'the request names the session that asked')
        const approved = trail.find((e) => e.kind === 'approval.decided' && e.data.outcome === 'approved')!
        assert.ok(approved.data.valid_from && approved.data.valid_until)
        const used = trail.filter((e) => e.kind === 'approval.used' && e.session === st.session)
        assert.equal(used.length, 1, 'approval.used in the session that ran it')
        assert.ok(used[0].seq < st.seq)
        assert.equal(st.data.decision, 'allow')
      }
      const decisions = all.filter((e) => e.kind === 'statement')
      assert.ok(decisions.every((e) => typeof e.data.policy_version === 'string' && /^[0-9a-f]{64}$/.test(e.data.policy_version)), 'every decision names the policy version')
      assert.equal(new Set(decisions.map((e) => e.data.policy_version)).size, 1)
      const start = all.find((e) => e.kind === 'policy.reload')!
      assert.equal(start.data.trigger, 'start')
      assert.equal(start.data.new_version, decisions[0].data.policy_version)
    } finally {
      db.close()
    }
  })
})
