// hoop.no-laundering through views, against the real PostgreSQL through the engine harness, judged
// by a real policy (the gateway's policyHooks over the real analyzer). Policy sees names only: with
// `customers.email` masked, `v.contact` of `CREATE VIEW v AS SELECT email AS contact ...` looks
// unmasked to it, and only the engine's catalog look-up tells. The oracle is the target's state —
// the copy table's rows, relations, settings, large objects — read directly, never an error text.
import {strict as assert} from 'node:assert'
import pg from 'pg'
import type {Identity} from '../../../src/identity/types.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'
import {startHarness, type Harness} from '../pg/harness.js'
import {analyst, policyJudge} from './judge.js'

const S = `hoop_lv_${process.pid}`
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})

const POLICY = `version: 1
rules:
  - {id: all, effect: allow}
  - {id: etl, subjects: {serviceAccounts: [etl]}, effect: allow, waive: [hoop.no-laundering]}
  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}
`
const etl: Identity = {kind: 'service-account', subject: 'sa_etl', name: 'etl', groups: []}

async function adminQuery<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const c = admin()
  await c.connect()
  try {
    return (await c.query(sql)).rows as T[]
  } finally {
    await c.end()
  }
}

const state = {
  copy: async () => (await adminQuery<{a: string}>(`SELECT a FROM ${S}.copy ORDER BY a`)).map((r) => r.a).join(','),
  relation: async (name: string) => (await adminQuery<{r: string | null}>(`SELECT to_regclass('${S}.${name}')::text AS r`))[0].r,
  largeObjects: async () => Number((await adminQuery<{n: string}>('SELECT count(*) AS n FROM pg_largeobject_metadata'))[0].n),
}

describe('no laundering through views: PostgreSQL (issue 12)', function () {
  const judge = policyJudge('postgres', POLICY, analyst)
  let h: Harness
  let client: pg.Client
  /** Runs SQL through hoop: the error's text, or undefined when it ran. */
  const run = async (sql: string, values?: unknown[]): Promise<string | undefined> => {
    try {
      await client.query(sql, values)
      return undefined
    } catch (err) {
      return (err as Error).message
    }
  }

  before(async () => {
    await loadPgParser()
    await adminQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      CREATE TABLE ${S}.customers (id int primary key, name text, email text);
      CREATE TABLE ${S}.plain (id int primary key, note text);
      CREATE TABLE ${S}.copy (a text);
      INSERT INTO ${S}.customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com');
      INSERT INTO ${S}.plain VALUES (1, 'n1'), (2, 'n2');
      CREATE VIEW ${S}.v AS SELECT id, email AS contact, name FROM ${S}.customers;
      CREATE VIEW ${S}.vv AS SELECT id, upper(contact) AS c FROM ${S}.v;
      CREATE VIEW ${S}.clean AS SELECT id, note FROM ${S}.plain`)
    h = await startHarness({judge: (sql) => judge.judge(sql)})
  })
  after(async () => {
    await h.close()
    await adminQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
  })
  let largeObjectsBefore = 0
  beforeEach(async () => {
    await adminQuery(`TRUNCATE ${S}.copy; DROP TABLE IF EXISTS ${S}.t2, ${S}.t3; DROP VIEW IF EXISTS ${S}.w`)
    largeObjectsBefore = await state.largeObjects()
    judge.reset()
    client = new pg.Client({host: '127.0.0.1', port: h.port, user: 'postgres', database: 'test'})
    await client.connect()
  })
  afterEach(async () => {
    await client.end().catch(() => undefined)
  })

  it('INSERT ... SELECT from a view column derived from a masked one: refused, the copy table stays empty', async () => {
    const err = await run(`INSERT INTO ${S}.copy SELECT contact FROM ${S}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.no-laundering: INSERT copies .*v\.contact, a view column that derives from data masked for you/)
    await run(`INSERT INTO ${S}.copy SELECT c FROM ${S}.vv`) // a view over the view
    await run(`WITH w AS (SELECT lower(contact) AS x FROM ${S}.v) INSERT INTO ${S}.copy SELECT x FROM w`)
    await run(`INSERT INTO ${S}.copy SELECT contact FROM ${S}.v WHERE id = $1`, [1]) // extended protocol
    await run(`PREPARE p AS INSERT INTO ${S}.copy SELECT contact FROM ${S}.v; EXECUTE p`)
    assert.equal(await state.copy(), '')
    // The session stays usable.
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1)
  })

  it('CREATE TABLE AS and SELECT INTO from such a view column: no new relation', async () => {
    await run(`CREATE TABLE ${S}.t2 AS SELECT contact FROM ${S}.v`)
    await run(`SELECT c INTO ${S}.t3 FROM ${S}.vv`)
    assert.deepEqual([await state.relation('t2'), await state.relation('t3')], [null, null])
  })

  it('a setting or a large object from such a view column: nothing stored', async () => {
    await run(`SELECT set_config('hoop.lv', contact, false) FROM ${S}.v WHERE id = 1`)
    const r = await client.query(`SELECT coalesce(current_setting('hoop.lv', true), '') AS s`)
    assert.equal(r.rows[0].s, '')
    await run(`SELECT lo_from_bytea(0, convert_to(contact, 'UTF8')) FROM ${S}.v`)
    assert.equal(await state.largeObjects(), largeObjectsBefore)
  })

  it('a view over such a view column is refused with hoop.masked-ddl', async () => {
    const err = await run(`CREATE VIEW ${S}.w AS SELECT contact AS x FROM ${S}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.masked-ddl: /)
    assert.equal(await state.relation('w'), null)
  })

  it('the same statements over unmasked view columns run (control)', async () => {
    assert.equal(await run(`INSERT INTO ${S}.copy SELECT note FROM ${S}.clean`), undefined)
    assert.equal(await run(`INSERT INTO ${S}.copy SELECT name FROM ${S}.v`), undefined) // an unmasked column of a view with a masked one
    assert.equal(await run(`CREATE TABLE ${S}.t2 AS SELECT note FROM ${S}.clean`), undefined)
    assert.equal(await state.copy(), 'Ann,Bob,n1,n2')
    assert.equal(await state.relation('t2'), `${S}.t2`)
  })

  it('an allow rule that waives hoop.no-laundering lets its subject copy through the view (control)', async () => {
    const etlJudge = policyJudge('postgres', POLICY, etl)
    const h2 = await startHarness({judge: (sql) => etlJudge.judge(sql)})
    const c = new pg.Client({host: '127.0.0.1', port: h2.port, user: 'postgres', database: 'test'})
    try {
      await c.connect()
      await c.query(`INSERT INTO ${S}.copy SELECT contact FROM ${S}.v`)
      assert.equal(await state.copy(), 'ann@example.com,bob@example.com')
    } finally {
      await c.end().catch(() => undefined)
      await h2.close()
    }
  })
})
