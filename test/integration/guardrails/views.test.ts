// hoop.no-laundering through views, against the real PostgreSQL and MariaDB through the engine
// harnesses, judged by a real policy (the gateway's policyHooks over the real analyzers). Policy
// sees names only: with `customers.email` masked, `v.contact` of `CREATE VIEW v AS SELECT email AS
// contact ...` looks unmasked to it, and only the engine's catalog look-up tells. The oracle is the
// target's state — the copy table's rows, relations, settings, large objects, user variables —
// read directly, never an error text alone.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import pg from 'pg'
import {loadPgParser} from '../../../src/sql/pg-parser.js'
import {startHarness as startMysqlHarness, type Harness as MysqlHarness} from '../mysql/harness.js'
import {startHarness as startPgHarness, type Harness as PgHarness} from '../pg/harness.js'
import {analyst, etl, mysqlAdminQuery, pgAdminQuery, policyJudge} from './judge.js'

/** A schema (PostgreSQL) or database (MariaDB) of its own, so that tables keep plain names. */
const S = `hoop_lv_${process.pid}`

const POLICY = `version: 1
rules:
  - {id: all, effect: allow}
  - {id: etl, subjects: {serviceAccounts: [etl]}, effect: allow, waive: [hoop.no-laundering]}
  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}
`

/**
 * The same objects on both targets: a masked column, a view that renames it (`v.contact`), a view
 * over that view (`vv.c`), and a view of unmasked columns (`clean`); `copy` is where values go.
 */
const OBJECTS = `CREATE TABLE ${S}.customers (id int primary key, name text, email text);
  CREATE TABLE ${S}.plain (id int primary key, note text);
  CREATE TABLE ${S}.copy (a text);
  INSERT INTO ${S}.customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com');
  INSERT INTO ${S}.plain VALUES (1, 'n1'), (2, 'n2');
  CREATE VIEW ${S}.v AS SELECT id, email AS contact, name FROM ${S}.customers;
  CREATE VIEW ${S}.vv AS SELECT id, upper(contact) AS c FROM ${S}.v;
  CREATE VIEW ${S}.clean AS SELECT id, note FROM ${S}.plain`

const pgState = {
  copy: async () => (await pgAdminQuery<{a: string}>(`SELECT a FROM ${S}.copy ORDER BY a`)).map((r) => r.a).join(','),
  relation: async (name: string) => (await pgAdminQuery<{r: string | null}>(`SELECT to_regclass('${S}.${name}')::text AS r`))[0].r,
  largeObjects: async () => Number((await pgAdminQuery<{n: string}>('SELECT count(*) AS n FROM pg_largeobject_metadata'))[0].n),
}

describe('no laundering through views: PostgreSQL (issue 12)', function () {
  const judge = policyJudge('postgres', POLICY, analyst)
  let h: PgHarness
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
    await pgAdminQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      ${OBJECTS}`)
    h = await startPgHarness({judge: (sql) => judge.judge(sql)})
  })
  after(async () => {
    await h.close()
    await pgAdminQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
  })
  let largeObjectsBefore = 0
  beforeEach(async () => {
    await pgAdminQuery(`TRUNCATE ${S}.copy; DROP TABLE IF EXISTS ${S}.t2, ${S}.t3; DROP VIEW IF EXISTS ${S}.w`)
    largeObjectsBefore = await pgState.largeObjects()
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
    assert.equal(await pgState.copy(), '')
    // The session stays usable.
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1)
  })

  it('CREATE TABLE AS and SELECT INTO from such a view column: no new relation', async () => {
    await run(`CREATE TABLE ${S}.t2 AS SELECT contact FROM ${S}.v`)
    await run(`SELECT c INTO ${S}.t3 FROM ${S}.vv`)
    assert.deepEqual([await pgState.relation('t2'), await pgState.relation('t3')], [null, null])
  })

  it('a setting or a large object from such a view column: nothing stored', async () => {
    await run(`SELECT set_config('hoop.lv', contact, false) FROM ${S}.v WHERE id = 1`)
    const r = await client.query(`SELECT coalesce(current_setting('hoop.lv', true), '') AS s`)
    assert.equal(r.rows[0].s, '')
    await run(`SELECT lo_from_bytea(0, convert_to(contact, 'UTF8')) FROM ${S}.v`)
    assert.equal(await pgState.largeObjects(), largeObjectsBefore)
  })

  it('a view nested deeper than hoop follows counts as masked whole: refused (fail closed)', async () => {
    // Nine views over the unmasked `name`, each over the one before: past the depth of 8.
    const chain = Array.from({length: 9}, (_, k) => `CREATE VIEW ${S}.deep${k + 1} AS SELECT id, name FROM ${S}.${k === 0 ? 'customers' : `deep${k}`}`)
    await pgAdminQuery(chain.join(';'))
    try {
      await run(`INSERT INTO ${S}.copy SELECT name FROM ${S}.deep9`)
      assert.equal(await pgState.copy(), '')
      assert.equal(await run(`INSERT INTO ${S}.copy SELECT name FROM ${S}.deep2`), undefined) // within the depth: runs
      assert.equal(await pgState.copy(), 'Ann,Bob')
    } finally {
      await pgAdminQuery(`DROP VIEW IF EXISTS ${S}.deep1 CASCADE`)
    }
  })

  it('a view over such a view column is refused with hoop.masked-ddl', async () => {
    const err = await run(`CREATE VIEW ${S}.w AS SELECT contact AS x FROM ${S}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.masked-ddl: /)
    assert.equal(await pgState.relation('w'), null)
  })

  it('the same statements over unmasked view columns run (control)', async () => {
    assert.equal(await run(`INSERT INTO ${S}.copy SELECT note FROM ${S}.clean`), undefined)
    assert.equal(await run(`INSERT INTO ${S}.copy SELECT name FROM ${S}.v`), undefined) // an unmasked column of a view with a masked one
    assert.equal(await run(`CREATE TABLE ${S}.t2 AS SELECT note FROM ${S}.clean`), undefined)
    assert.equal(await pgState.copy(), 'Ann,Bob,n1,n2')
    assert.equal(await pgState.relation('t2'), `${S}.t2`)
  })

  it('an allow rule that waives hoop.no-laundering lets its subject copy through the view (control)', async () => {
    const etlJudge = policyJudge('postgres', POLICY, etl)
    const h2 = await startPgHarness({judge: (sql) => etlJudge.judge(sql)})
    const c = new pg.Client({host: '127.0.0.1', port: h2.port, user: 'postgres', database: 'test'})
    try {
      await c.connect()
      await c.query(`INSERT INTO ${S}.copy SELECT contact FROM ${S}.v`)
      assert.equal(await pgState.copy(), 'ann@example.com,bob@example.com')
    } finally {
      await c.end().catch(() => undefined)
      await h2.close()
    }
  })
})

const mysqlState = {
  copy: async () => (await mysqlAdminQuery<{a: string}>(`SELECT a FROM ${S}.copy ORDER BY a`)).map((r) => r.a).join(','),
  exists: async (table: string) => Number((await mysqlAdminQuery<{n: number}>(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '${S}' AND table_name = '${table}'`))[0].n) === 1,
}

describe('no laundering through views: MariaDB (issue 12)', function () {
  const judge = policyJudge('mysql', POLICY, analyst)
  let h: MysqlHarness
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
  const connectTo = (port: number) => mysql2.createConnection({host: '127.0.0.1', port, user: 'anyone', database: S, multipleStatements: true})

  before(async () => {
    await mysqlAdminQuery(`DROP DATABASE IF EXISTS ${S}; CREATE DATABASE ${S};
      ${OBJECTS}`)
    h = await startMysqlHarness({judge: (sql) => judge.judge(sql), target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    await mysqlAdminQuery(`DROP DATABASE IF EXISTS ${S}`)
  })
  beforeEach(async () => {
    await mysqlAdminQuery(`DELETE FROM ${S}.copy; DROP TABLE IF EXISTS ${S}.t2; DROP VIEW IF EXISTS ${S}.w`)
    judge.reset()
    client = await connectTo(h.port)
  })
  afterEach(() => client.destroy())

  it('INSERT / REPLACE ... SELECT from a view column derived from a masked one: refused, the copy table stays empty', async () => {
    const err = await run(`INSERT INTO ${S}.copy (a) SELECT contact FROM ${S}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.no-laundering: INSERT copies .*v\.contact, a view column that derives from data masked for you/)
    await run('INSERT INTO copy (a) SELECT c FROM vv') // a view over the view, names unqualified
    await run(`REPLACE INTO ${S}.copy (a) SELECT LOWER(contact) FROM ${S}.v`)
    await run(`INSERT INTO ${S}.copy (a) SELECT x FROM (SELECT contact AS x FROM ${S}.v) d`)
    assert.equal(await mysqlState.copy(), '')
    assert.ok(await client.query('SELECT 1')) // the session stays usable
  })

  it('CREATE TABLE ... SELECT from such a view column: no new table', async () => {
    await run(`CREATE TABLE ${S}.t2 AS SELECT contact FROM ${S}.v`)
    assert.equal(await mysqlState.exists('t2'), false)
  })

  it('user variables from such a view column stay empty', async () => {
    await run(`SELECT contact INTO @x FROM ${S}.v WHERE id = 1`)
    await run(`SET @y = (SELECT c FROM ${S}.vv WHERE id = 1)`)
    await run(`SELECT @z := contact FROM ${S}.v WHERE id = 1`)
    const [rows] = await client.query('SELECT @x IS NULL AS x, @y IS NULL AS y, @z IS NULL AS z')
    assert.deepEqual({...(rows as Array<Record<string, number>>)[0]}, {x: 1, y: 1, z: 1})
  })

  it('a view hoop cannot analyse counts as masked whole: refused (fail closed)', async () => {
    // node-sql-parser does not read `<=>`, so the definition of `u` cannot be analysed.
    await mysqlAdminQuery(`CREATE OR REPLACE VIEW ${S}.u AS SELECT id, email <=> 'x' AS e, name FROM ${S}.customers`)
    try {
      await run(`INSERT INTO ${S}.copy (a) SELECT name FROM ${S}.u`)
      assert.equal(await mysqlState.copy(), '')
    } finally {
      await mysqlAdminQuery(`DROP VIEW IF EXISTS ${S}.u`)
    }
  })

  it('a prepared statement (COM_STMT_PREPARE) from such a view column: refused, nothing written', async () => {
    await client.execute(`INSERT INTO ${S}.copy (a) SELECT contact FROM ${S}.v WHERE id = ?`, [1]).catch(() => undefined)
    assert.equal(await mysqlState.copy(), '')
  })

  it('a view over such a view column is refused with hoop.masked-ddl', async () => {
    const err = await run(`CREATE VIEW ${S}.w AS SELECT contact AS x FROM ${S}.v`)
    assert.match(err ?? '', /^hoop: blocked by policy rule hoop\.masked-ddl: /)
    assert.equal(await mysqlState.exists('w'), false)
  })

  it('the same statements over unmasked view columns run (control)', async () => {
    assert.equal(await run(`INSERT INTO ${S}.copy (a) SELECT note FROM ${S}.clean`), undefined)
    assert.equal(await run(`INSERT INTO ${S}.copy (a) SELECT name FROM ${S}.v`), undefined) // an unmasked column of a view with a masked one
    assert.equal(await run(`CREATE TABLE ${S}.t2 AS SELECT note FROM ${S}.clean`), undefined)
    assert.equal(await run(`SELECT note INTO @n FROM ${S}.clean WHERE id = 1`), undefined)
    assert.equal(await mysqlState.copy(), 'Ann,Bob,n1,n2')
    assert.equal(await mysqlState.exists('t2'), true)
  })

  it('an allow rule that waives hoop.no-laundering lets its subject copy through the view (control)', async () => {
    const etlJudge = policyJudge('mysql', POLICY, etl)
    const h2 = await startMysqlHarness({judge: (sql) => etlJudge.judge(sql), target: {username: 'root'}})
    const c = await connectTo(h2.port)
    try {
      await c.query(`INSERT INTO ${S}.copy (a) SELECT contact FROM ${S}.v`)
      assert.equal(await mysqlState.copy(), 'ann@example.com,bob@example.com')
    } finally {
      c.destroy()
      await h2.close()
    }
  })
})
