// Just-in-time approvals end to end with the built CLI and real PostgreSQL: two service accounts
// (engineering asks, dba approves), `hoop exec` through the gateway's PostgreSQL engine, and
// `hoop approvals` as both identities. One-time approvals cannot be replayed, nor stretched to
// another statement; self-approval is refused; a rejection ends a request; --wait runs the
// statement once approved.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {join} from 'node:path'
import pg from 'pg'
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
    } finally {
      await p.stop()
    }
  })
})
