// pg_dump and pg_restore (15) through `hoop connect` on connections under a review rule, following
// the recipe in docs/postgres.md: the rule has `scope: session`, so one approval opens a time-boxed
// grant and every statement of the tool runs under it. Built CLI, real gateway, real PostgreSQL; the
// dump is checked by restoring it through hoop into a scratch database and comparing rows.
//
// Regression (issue 17 item 3): with a one-time (`scope: statement`) rule every statement pg_dump
// sends needs its own approval, and pg_dump stops at the first one held; eight approve-and-retry
// rounds produced no dump. Here the first refused run opens one request; after one approval the
// second run dumps. Also `scope: repeat`: one approval of a statement covers each identical run.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {join} from 'node:path'
import {promisify} from 'node:util'
import Database from 'better-sqlite3'
import pg from 'pg'
import type {StoredEvent} from '../../src/audit/events.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'

const run = promisify(execFile)
const SUFFIX = randomBytes(4).toString('hex')
const SRC = `hoop_dump_src_${SUFFIX}`
const DST = `hoop_dump_dst_${SUFFIX}`
const APR = /apr_[A-Za-z0-9_-]{12}/

const CONFIG = `connections:
  - {name: shop, type: postgres, target: 127.0.0.1:5432, database: ${SRC}, username: postgres}
  - {name: shop-scratch, type: postgres, target: 127.0.0.1:5432, database: ${DST}, username: postgres}
  - {name: shop-repeat, type: postgres, target: 127.0.0.1:5432, database: ${SRC}, username: postgres}
policy:
  version: 1
  rules:
    - id: people
      subjects: {groups: [engineering, dba]}
      connections: [shop, shop-scratch, shop-repeat]
      effect: allow
    - id: shop-maintenance
      description: every statement on the shop databases needs a DBA's time-boxed approval
      subjects: {groups: [engineering]}
      connections: [shop, shop-scratch]
      effect: review
      review: {approvers: {groups: [dba]}, ttl: 30m, scope: session}
    - id: repeatable-writes
      subjects: {groups: [engineering]}
      connections: [shop-repeat]
      effect: review
      match: {writes: true}
      review: {approvers: {groups: [dba]}, ttl: 10m, scope: repeat}
`

async function direct<T extends pg.QueryResultRow>(database: string, sql: string): Promise<T[]> {
  const c = new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database})
  await c.connect()
  try {
    return (await c.query<T>(sql)).rows
  } finally {
    await c.end()
  }
}

/** Every table's row count and an order-independent digest of its rows. */
async function fingerprint(database: string): Promise<Record<string, string>> {
  const tables = await direct<{t: string}>(database, `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
  const out: Record<string, string> = {}
  for (const {t} of tables) {
    const [r] = await direct<{n: string; h: string}>(database, `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS h FROM public.${t} x`)
    out[t] = `${r.n} ${r.h}`
  }
  return out
}

describe('pg_dump and pg_restore through hoop under a review rule (scope: session)', function () {
  this.timeout(90_000)
  const dir = tempDir('hoop-e2e-pgdump-')
  const dumpFile = join(dir.path, 'shop.dump')
  let gw: GatewayProc
  let dev: Record<string, string>
  let dba: Record<string, string>
  const procs: Proc[] = []

  const approvals = (env: Record<string, string>, ...args: string[]) => runHoop(['approvals', ...args, '--gateway', gw.url], {env})
  /** `hoop connect NAME --port 0 --json [...]` as the requester; resolves with the local port once it listens. */
  async function connect(name: string, ...extra: string[]): Promise<{proc: Proc; port: number}> {
    const proc = spawnHoop(['connect', name, '--gateway', gw.url, '--port', '0', '--json', ...extra], {env: dev})
    procs.push(proc)
    return {proc, port: Number((await proc.waitFor(/"port":(\d+)/, 30_000))[1])}
  }
  const pgEnv = {...process.env, PGPASSWORD: '', PGCONNECT_TIMEOUT: '10'}

  before(async () => {
    await direct('postgres', `CREATE DATABASE ${SRC}`)
    await direct('postgres', `CREATE DATABASE ${DST}`)
    await direct(
      SRC,
      `CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, created date NOT NULL);
       CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), total numeric(10,2), note text);
       CREATE INDEX orders_customer ON orders(customer_id);
       CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 500;
       INSERT INTO customers (email, created) SELECT 'c' || g || '@example.com', date '2024-01-01' + g FROM generate_series(1, 500) g;
       INSERT INTO orders (customer_id, total, note) SELECT 1 + g % 500, (g * 7) % 1000, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g || E'\\ttab' END FROM generate_series(1, 3000) g;`,
    )
    const dataDir = join(dir.path, 'data')
    dev = {HOOP_TOKEN: await createSecret('service-accounts', 'dev-bot', dataDir, ['engineering'])}
    dba = {HOOP_TOKEN: await createSecret('service-accounts', 'dba-bot', dataDir, ['dba'])}
    gw = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
  })

  after(async () => {
    for (const p of procs) await p.stop()
    await gw?.stop()
    await direct('postgres', `DROP DATABASE IF EXISTS ${SRC} WITH (FORCE)`).catch(() => {})
    await direct('postgres', `DROP DATABASE IF EXISTS ${DST} WITH (FORCE)`).catch(() => {})
    dir.cleanup()
  })

  it('pg_dump: the first run opens one time-boxed request, one approval later the second run dumps', async () => {
    const {port} = await connect('shop')
    const dump = () => run('pg_dump', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'shop', '-Fc', '--no-owner', '-f', dumpFile], {env: pgEnv})

    const refused = await dump().then(
      () => assert.fail('pg_dump ran without an approval'),
      (err: {stderr: string}) => err.stderr,
    )
    assert.match(refused, /time-boxed access request apr_/, refused)
    const id = APR.exec(refused)![0]

    // What the approver sees: the request, its rule and scope, the statement that asked.
    const listed = await approvals(dba, 'list')
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, new RegExp(`${id}\\s+pending\\s+dev-bot\\s+shop\\s+shop-maintenance`))
    const shown = await approvals(dba, 'show', id)
    assert.match(shown.stdout, /scope session/)
    assert.match(shown.stdout, /duration\s+30m/)

    assert.equal((await approvals(dev, 'approve', id, '--reason', 'me')).code, 15, 'self-approval stays refused')
    const ok = await approvals(dba, 'approve', id, '--reason', 'nightly copy OPS-99')
    assert.equal(ok.code, 0, ok.stderr)

    await dump()
    const {stdout: toc} = await run('pg_restore', ['-l', dumpFile])
    assert.match(toc, /TABLE DATA public customers/)
    assert.match(toc, /TABLE DATA public orders/)
    assert.match(toc, /VIEW public big_orders/)
  })

  it('pg_restore: --request-access first, then the restore into a scratch database matches the source row for row', async () => {
    const p = spawnHoop(['connect', 'shop-scratch', '--gateway', gw.url, '--port', '0', '--json', '--request-access', '--reason', 'restore drill', '--duration', '10m'], {env: dev})
    procs.push(p)
    const id = (await p.waitFor(/waiting for approval (apr_[A-Za-z0-9_-]{12})/))[1]
    const ok = await approvals(dba, 'approve', id, '--reason', 'drill window')
    assert.equal(ok.code, 0, ok.stderr)
    const port = Number((await p.waitFor(/"port":(\d+)/, 30_000))[1])

    await run('pg_restore', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'shop-scratch', '--no-owner', '--exit-on-error', '--single-transaction', dumpFile], {env: pgEnv})

    const [src, dst] = [await fingerprint(SRC), await fingerprint(DST)]
    assert.deepEqual(Object.keys(dst), ['customers', 'orders'])
    assert.deepEqual(dst, src)
    assert.match(src.orders, /^3000 /)
    const [seq] = await direct<{v: string}>(DST, `SELECT last_value AS v FROM orders_id_seq`)
    assert.equal(seq.v, '3000', 'sequences restored too')
  })

  it('scope repeat: one approval of a statement covers each identical run until its ttl, and no other text', async () => {
    const exec = (sql: string) => runHoop(['exec', 'shop-repeat', '--gateway', gw.url, '-e', sql, '--json'], {env: dev})
    const touch = `UPDATE customers SET created = created WHERE id = 1`
    const held = await exec(touch)
    assert.equal(held.code, 17, held.stdout + held.stderr)
    const id = (JSON.parse(held.stdout) as {error: {approvalId: string}}).error.approvalId
    assert.equal((await approvals(dba, 'approve', id, '--reason', 'repeatable')).code, 0)
    for (let i = 0; i < 2; i++) {
      const r = await exec(touch)
      assert.equal(r.code, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as {approvalId?: string}).approvalId, id)
    }
    const shown = JSON.parse((await approvals(dba, 'show', id, '--json')).stdout) as {state: string; scope: string}
    assert.deepEqual([shown.state, shown.scope], ['approved', 'repeat'])
    assert.equal((await exec(`${touch} `)).code, 17, 'another text needs its own approval')
  })

  it('every session that ran under an approval has its approval.used event, and its statements name the approval', () => {
    const db = new Database(join(gw.dataDir, 'hoop.db'), {readonly: true})
    try {
      const all = (db.prepare('SELECT body FROM audit_events ORDER BY seq').all() as {body: string}[]).map((r) => JSON.parse(r.body) as StoredEvent)
      const ran = all.filter((e) => e.kind === 'statement' && typeof e.data.approval_id === 'string')
      assert.ok(ran.length > 20, `statements under a grant: ${ran.length}`)
      const sessions = new Set(ran.map((e) => `${e.session} ${String(e.data.approval_id)}`))
      for (const key of sessions) {
        const [session, approval] = key.split(' ')
        const used = all.filter((e) => e.kind === 'approval.used' && e.session === session && e.data.approval_id === approval)
        assert.equal(used.length, 1, `approval.used once in session ${session}`)
      }
      assert.equal(new Set(ran.map((e) => e.data.approval_id)).size, 3, 'one grant for the dump, one for the restore, one repeat approval')
      const repeatUses = all.filter((e) => e.kind === 'approval.used' && e.data.scope === 'repeat')
      assert.equal(repeatUses.length, 2, 'each run of the repeat approval is audited')
    } finally {
      db.close()
    }
  })
})
