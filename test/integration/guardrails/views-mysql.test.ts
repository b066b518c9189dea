// hoop.no-laundering through views, against the real MariaDB through the engine harness, judged by
// a real policy (the gateway's policyHooks over the real analyzer, with per-session state). Policy
// sees names only: with `customers.email` masked, `v.contact` of `CREATE VIEW v AS SELECT email AS
// contact ...` looks unmasked to it, and only the engine's catalog look-up tells. The oracle is
// the target's state — the copy table's rows, tables, user variables — read directly.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import type {Identity} from '../../../src/identity/types.js'
import {startHarness, type Harness} from '../mysql/harness.js'
import {analyst, policyJudge} from './judge.js'

/** A database of its own, so that tables keep their plain names (the mask names customers.email). */
const D = `hoop_lv_${process.pid}`
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})

const POLICY = `version: 1
rules:
  - {id: all, effect: allow}
  - {id: etl, subjects: {serviceAccounts: [etl]}, effect: allow, waive: [hoop.no-laundering]}
  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}
`
const etl: Identity = {kind: 'service-account', subject: 'sa_etl', name: 'etl', groups: []}

async function adminQuery<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const c = await admin()
  try {
    const [rows] = await c.query(sql)
    return rows as T[]
  } finally {
    await c.end()
  }
}

const state = {
  copy: async () => (await adminQuery<{a: string}>(`SELECT a FROM ${D}.copy ORDER BY a`)).map((r) => r.a).join(','),
  exists: async (table: string) => Number((await adminQuery<{n: number}>(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '${D}' AND table_name = '${table}'`))[0].n) === 1,
}

describe('no laundering through views: MariaDB (issue 12)', function () {
  const judge = policyJudge('mysql', POLICY, analyst)
  let h: Harness
  let client: mysql2.Connection
  /** Runs SQL through hoop: the error's text, or undefined when it ran. */
  const run = async (sql: string): Promise<string | undefined> => {
    try {
      await client.query(sql)
      return undefined
    } catch (err) {
      return (err as Error).message
    }
  }
  const connectTo = (port: number) => mysql2.createConnection({host: '127.0.0.1', port, user: 'anyone', database: D, multipleStatements: true})

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${D}; CREATE DATABASE ${D};
      CREATE TABLE ${D}.customers (id int primary key, name text, email text);
      CREATE TABLE ${D}.plain (id int primary key, note text);
      CREATE TABLE ${D}.copy (a text);
      INSERT INTO ${D}.customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com');
      INSERT INTO ${D}.plain VALUES (1, 'n1'), (2, 'n2');
      CREATE VIEW ${D}.v AS SELECT id, email AS contact, name FROM ${D}.customers;
      CREATE VIEW ${D}.vv AS SELECT id, UPPER(contact) AS c FROM ${D}.v;
      CREATE VIEW ${D}.clean AS SELECT id, note FROM ${D}.plain`)
    h = await startHarness({judge: (sql) => judge.judge(sql), target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    await adminQuery(`DROP DATABASE IF EXISTS ${D}`)
  })
  beforeEach(async () => {
    await adminQuery(`DELETE FROM ${D}.copy; DROP TABLE IF EXISTS ${D}.t2; DROP VIEW IF EXISTS ${D}.w`)
    judge.reset()
    client = await connectTo(h.port)
  })
  afterEach(() => client.destroy())

  it('INSERT / REPLACE ... SELECT from a view column derived from a masked one: refused, the copy table stays empty', async () => {
    const err = await run(`INSERT INTO ${D}.copy (a) SELECT contact FROM ${D}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.no-laundering: INSERT copies .*v\.contact, a view column that derives from data masked for you/)
    await run('INSERT INTO copy (a) SELECT c FROM vv') // a view over the view, names unqualified
    await run(`REPLACE INTO ${D}.copy (a) SELECT LOWER(contact) FROM ${D}.v`)
    await run(`INSERT INTO ${D}.copy (a) SELECT x FROM (SELECT contact AS x FROM ${D}.v) d`)
    assert.equal(await state.copy(), '')
    assert.ok(await client.query('SELECT 1')) // the session stays usable
  })

  it('CREATE TABLE ... SELECT from such a view column: no new table', async () => {
    await run(`CREATE TABLE ${D}.t2 AS SELECT contact FROM ${D}.v`)
    assert.equal(await state.exists('t2'), false)
  })

  it('user variables from such a view column stay empty', async () => {
    await run(`SELECT contact INTO @x FROM ${D}.v WHERE id = 1`)
    await run(`SET @y = (SELECT c FROM ${D}.vv WHERE id = 1)`)
    await run(`SELECT @z := contact FROM ${D}.v WHERE id = 1`)
    const [rows] = await client.query('SELECT @x IS NULL AS x, @y IS NULL AS y, @z IS NULL AS z')
    assert.deepEqual({...(rows as Array<Record<string, number>>)[0]}, {x: 1, y: 1, z: 1})
  })

  it('a view over such a view column is refused with hoop.masked-ddl', async () => {
    const err = await run(`CREATE VIEW ${D}.w AS SELECT contact AS x FROM ${D}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.masked-ddl: /)
    assert.equal(await state.exists('w'), false)
  })

  it('the same statements over unmasked view columns run (control)', async () => {
    assert.equal(await run(`INSERT INTO ${D}.copy (a) SELECT note FROM ${D}.clean`), undefined)
    assert.equal(await run(`INSERT INTO ${D}.copy (a) SELECT name FROM ${D}.v`), undefined) // an unmasked column of a view with a masked one
    assert.equal(await run(`CREATE TABLE ${D}.t2 AS SELECT note FROM ${D}.clean`), undefined)
    assert.equal(await run(`SELECT note INTO @n FROM ${D}.clean WHERE id = 1`), undefined)
    assert.equal(await state.copy(), 'Ann,Bob,n1,n2')
    assert.equal(await state.exists('t2'), true)
  })

  it('an allow rule that waives hoop.no-laundering lets its subject copy through the view (control)', async () => {
    const etlJudge = policyJudge('mysql', POLICY, etl)
    const h2 = await startHarness({judge: (sql) => etlJudge.judge(sql), target: {username: 'root'}})
    const c = await connectTo(h2.port)
    try {
      await c.query(`INSERT INTO ${D}.copy (a) SELECT contact FROM ${D}.v`)
      assert.equal(await state.copy(), 'ann@example.com,bob@example.com')
    } finally {
      c.destroy()
      await h2.close()
    }
  })
})
