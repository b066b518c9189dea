// Adversarial guardrails against the real MariaDB through the engine harness, judged by a real
// policy (the gateway's policyHooks over the real analyzer, with per-session state). The oracle is
// the target's state — tables, rows, columns, user variables — read directly, never an error text.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import {startHarness, type Harness} from '../mysql/harness.js'
import {analyst, mysqlAdminQuery as adminQuery, policyJudge} from './judge.js'

/** A database of its own, so that tables keep their plain names (the mask names customers.email). */
const D = `hoop_guard_${process.pid}`

const POLICY = `version: 1
rules:
  - {id: all, effect: allow}
  - {id: no-drop, effect: block, match: {kinds: [drop, truncate]}}
  - {id: unbounded-writes, effect: block, match: {kinds: [update, delete], where: absent}}
  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}
`

const state = {
  exists: async (table: string) => Number((await adminQuery<{n: number}>(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '${D}' AND table_name = '${table.replace(`${D}.`, '')}'`))[0].n) === 1,
  rows: async () => (await adminQuery<{id: number; v: string}>(`SELECT id, v FROM ${D}.t ORDER BY id`)).map((r) => `${r.id}:${r.v}`).join(','),
  columns: async () => (await adminQuery<{c: string}>(`SELECT column_name AS c FROM information_schema.columns WHERE table_schema = '${D}' AND table_name = 'customers' ORDER BY ordinal_position`)).map((r) => r.c).join(','),
  logRows: async () => Number((await adminQuery<{n: number}>(`SELECT count(*) AS n FROM ${D}.log`))[0].n),
}
const ROWS = '1:a,2:b,3:c'

describe('guardrails: MariaDB judged as it runs, against the real server (issue 12)', function () {
  const judge = policyJudge('mysql', POLICY, analyst)
  let h: Harness
  let client: mysql2.Connection
  /** Runs SQL through hoop; a refusal or a server error is not the oracle, so it is swallowed. */
  const run = async (sql: string): Promise<unknown> => {
    try {
      const [rows] = await client.query(sql)
      return rows
    } catch {
      return undefined
    }
  }

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${D}; CREATE DATABASE ${D};
      CREATE TABLE ${D}.t (id int primary key, v text);
      CREATE TABLE ${D}.src (id int primary key, v text);
      CREATE TABLE ${D}.customers (id int primary key, name text, email text);
      CREATE TABLE ${D}.log (a text)`)
    h = await startHarness({judge: (sql) => judge.judge(sql), target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    await adminQuery(`DROP DATABASE IF EXISTS ${D}`)
  })
  beforeEach(async () => {
    await adminQuery(`CREATE TABLE IF NOT EXISTS ${D}.t (id int primary key, v text);
      DELETE FROM ${D}.t; DELETE FROM ${D}.src; DELETE FROM ${D}.customers; DELETE FROM ${D}.log;
      DROP TABLE IF EXISTS ${D}.copy, ${D}.c2;
      INSERT INTO ${D}.t VALUES (1, 'a'), (2, 'b'), (3, 'c');
      INSERT INTO ${D}.src VALUES (1, 'x'), (2, 'y'), (3, 'z');
      INSERT INTO ${D}.customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com')`)
    judge.reset()
    client = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'anyone', database: D, multipleStatements: true})
  })
  afterEach(() => client.destroy())

  describe('sql_mode: a quote trick cannot hide a second statement', () => {
    const cases: Array<[string, string]> = [
      // In the default mode each trick is one SELECT (of a string, or with a string alias); in the
      // new mode the first statement is valid on its own and the DROP runs after it.
      ["SET sql_mode = 'ANSI_QUOTES'", `SELECT 1 AS "x\\" ; DROP TABLE ${D}.t; -- "`],
      ["SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", `SELECT 'x\\' ; DROP TABLE ${D}.t; -- '`],
      ["SET @@session.sql_mode = 'ANSI'", `SELECT 1 AS "x\\" ; DROP TABLE ${D}.t; -- "`],
      ["SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')", `SELECT 'x\\' ; DROP TABLE ${D}.t; -- '`],
    ]
    for (const [set, trick] of cases) {
      it(`${set}, then ${trick}: the table still exists`, async () => {
        await run(set)
        await run(trick)
        assert.equal(await state.exists(`${D}.t`), true)
      })
      it(`${set}; ${trick} in one text: the table still exists`, async () => {
        await run(`${set}; ${trick}`)
        assert.equal(await state.exists(`${D}.t`), true)
      })
    }
    it('in the default mode such a text is one harmless SELECT, and passes (control)', async () => {
      const rows = await run(`SELECT 'x\\' ; DROP TABLE ${D}.t; -- '`)
      assert.ok(rows)
      assert.equal(await state.exists(`${D}.t`), true)
    })
  })

  describe('REPLACE and ON DUPLICATE KEY UPDATE are updates', () => {
    it('REPLACE ... SELECT and INSERT ... SELECT ... ON DUPLICATE KEY UPDATE (unbounded): rows unchanged', async () => {
      await run(`REPLACE INTO ${D}.t SELECT id, 'pwned' FROM ${D}.src`)
      await run(`INSERT INTO ${D}.t SELECT id, 'pwned' FROM ${D}.src ON DUPLICATE KEY UPDATE v = VALUES(v)`)
      assert.equal(await state.rows(), ROWS)
    })
    it('REPLACE of listed rows passes (control)', async () => {
      await run(`REPLACE INTO ${D}.t VALUES (1, 'A')`)
      assert.equal(await state.rows(), '1:A,2:b,3:c')
    })
  })

  it('a WHERE that bounds nothing is no WHERE: rows unchanged', async () => {
    for (const where of ['1 = 1', "'a' = 'a'", 'id = id', 'id = 1 OR 1 = 1', 'TRUE']) await run(`DELETE FROM ${D}.t WHERE ${where}`)
    await run(`UPDATE ${D}.t SET v = 'pwned' WHERE 2 > 1`)
    assert.equal(await state.rows(), ROWS)
  })

  it('PREPARE FROM a variable holding text computed at run time is not run', async () => {
    await run(`SELECT CONCAT('DROP TABLE ', '${D}.t') INTO @q`)
    await run('PREPARE s FROM @q')
    await run('EXECUTE s')
    assert.equal(await state.exists(`${D}.t`), true)
  })

  describe('no laundering of masked data (built-in rules)', () => {
    it('user variables: SELECT ... INTO @v, SET @v = (SELECT ...), @v := ... stay empty', async () => {
      await run(`SELECT email INTO @v FROM ${D}.customers WHERE id = 1`)
      await run(`SET @w = (SELECT email FROM ${D}.customers WHERE id = 1)`)
      await run(`SELECT @u := email FROM ${D}.customers WHERE id = 1`)
      const rows = (await run('SELECT @v IS NULL AS v, @w IS NULL AS w, @u IS NULL AS u')) as Array<Record<string, number>>
      assert.deepEqual(rows[0], {v: 1, w: 1, u: 1})
    })

    it('tables: CREATE TABLE ... SELECT, INSERT ... SELECT, UPDATE from the masked column write nothing', async () => {
      await run(`CREATE TABLE ${D}.copy AS SELECT email FROM ${D}.customers`)
      await run(`INSERT INTO ${D}.log (a) SELECT REVERSE(email) FROM ${D}.customers`)
      await run(`UPDATE ${D}.customers SET name = email WHERE id = 1`)
      assert.equal(await state.exists(`${D}.copy`), false)
      assert.equal(await state.logRows(), 0)
      assert.deepEqual((await adminQuery<{name: string}>(`SELECT name FROM ${D}.customers WHERE id = 1`))[0].name, 'Ann')
    })

    it('DDL that renames or alters the masked table is refused', async () => {
      await run(`RENAME TABLE ${D}.customers TO ${D}.c2`)
      await run(`ALTER TABLE ${D}.customers CHANGE email e text`)
      assert.equal(await state.exists(`${D}.customers`), true)
      assert.equal(await state.columns(), 'id,name,email')
    })
  })

  it('an analyser failure (an expression too deep) is refused, and the session stays usable', async () => {
    await run(`DELETE FROM ${D}.t WHERE ` + '('.repeat(5000) + 'id > 0' + ')'.repeat(5000))
    assert.equal(await state.rows(), ROWS)
    assert.ok(await run('SELECT 1'))
  })
})
