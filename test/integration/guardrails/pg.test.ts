// Adversarial guardrails against the real PostgreSQL through the engine harness, judged by a real
// policy (the gateway's policyHooks over the real analyzer). The oracle is the target's state —
// rows, tables, columns, large objects, settings, files — read directly, never an error text.
import {strict as assert} from 'node:assert'
import pg from 'pg'
import type {Statement} from '../../../src/policy/types.js'
import {analyzePostgres} from '../../../src/sql/pg-analyze.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'
import {forgetPrepared, rememberPrepared} from '../../../src/sql/prepared.js'
import {startHarness, type Harness} from '../pg/harness.js'
import {analyst, etl, pgAdminQuery as adminQuery, policyJudge} from './judge.js'

const S = `hoop_guard_${process.pid}`
const FILE = `/tmp/${S}.out`

const POLICY = `version: 1
rules:
  - {id: all, effect: allow}
  - {id: etl, subjects: {serviceAccounts: [etl]}, effect: allow, waive: [hoop.no-laundering]}
  - {id: unbounded-writes, effect: block, match: {kinds: [update, delete], where: absent}}
  - {id: no-file-functions, effect: block, match: {functions: [lo_import, "pg_read_*"]}}
  - {id: no-replication-role, effect: block, match: {settings: [session_replication_role]}}
  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}
`

const state = {
  rows: async () => (await adminQuery<{id: number; v: string}>(`SELECT id, v FROM ${S}.t ORDER BY id`)).map((r) => `${r.id}:${r.v}`).join(','),
  largeObjects: async () => Number((await adminQuery<{n: string}>('SELECT count(*) AS n FROM pg_largeobject_metadata'))[0].n),
  relation: async (name: string) => (await adminQuery<{r: string | null}>(`SELECT to_regclass('${S}.${name}')::text AS r`))[0].r,
  columns: async () => (await adminQuery<{c: string}>(`SELECT column_name AS c FROM information_schema.columns WHERE table_schema = '${S}' AND table_name = 'customers' ORDER BY ordinal_position`)).map((r) => r.c).join(','),
  customers: async () => (await adminQuery<{id: number; name: string}>(`SELECT id, name FROM ${S}.customers ORDER BY id`)).map((r) => `${r.id}:${r.name}`).join(','),
  logRows: async () => Number((await adminQuery<{n: string}>(`SELECT count(*) AS n FROM ${S}.log`))[0].n),
  file: async () => (await adminQuery<{f: unknown}>(`SELECT pg_stat_file('${FILE}', true) AS f`))[0].f,
}
const ROWS = '1:a,2:b,3:c'

describe('guardrails: PostgreSQL judged as it runs, against the real server (issue 12)', function () {
  const judge = policyJudge('postgres', POLICY, analyst)
  let h: Harness
  let client: pg.Client
  /** Runs SQL through hoop; a refusal or a server error is not the oracle, so it is swallowed. */
  const run = async (sql: string): Promise<pg.QueryResult | undefined> => {
    try {
      return await client.query(sql)
    } catch {
      return undefined
    }
  }

  before(async () => {
    await loadPgParser()
    await adminQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      CREATE TABLE ${S}.t (id int primary key, v text);
      CREATE TABLE ${S}.src (id int primary key, v text);
      CREATE TABLE ${S}.customers (id int primary key, name text, email text);
      CREATE TABLE ${S}.log (a text)`)
    h = await startHarness({judge: (sql) => judge.judge(sql)})
  })
  after(async () => {
    await h.close()
    await adminQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
  })
  let largeObjectsBefore = 0
  beforeEach(async () => {
    await adminQuery(`TRUNCATE ${S}.t, ${S}.src, ${S}.customers, ${S}.log;
      INSERT INTO ${S}.t VALUES (1, 'a'), (2, 'b'), (3, 'c');
      INSERT INTO ${S}.src VALUES (1, 'x'), (2, 'y'), (3, 'z');
      INSERT INTO ${S}.customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com');
      DROP TABLE IF EXISTS ${S}.copy, ${S}.copy2, ${S}.c2; DROP VIEW IF EXISTS ${S}.v`)
    largeObjectsBefore = await state.largeObjects()
    judge.reset()
    client = new pg.Client({host: '127.0.0.1', port: h.port, user: 'postgres', database: 'test'})
    await client.connect()
  })
  afterEach(async () => {
    await client.end().catch(() => undefined)
  })

  describe('EXPLAIN runs what PostgreSQL runs', () => {
    for (const sql of [`EXPLAIN (ANALYZE false, ANALYZE) DELETE FROM ${S}.t`, `EXPLAIN (ANALYZE off, ANALYZE 1) DELETE FROM ${S}.t`, `EXPLAIN (ANALYZE 'off', FORMAT JSON, ANALYZE 'on') DELETE FROM ${S}.t`]) {
      it(`${sql}: rows unchanged`, async () => {
        await run(sql)
        assert.equal(await state.rows(), ROWS)
      })
    }
    it('EXPLAIN (ANALYZE true, ANALYZE false) plans only, and is allowed', async () => {
      assert.ok(await run(`EXPLAIN (ANALYZE true, ANALYZE false) DELETE FROM ${S}.t`))
      assert.equal(await state.rows(), ROWS)
    })
  })

  describe('a WHERE that bounds nothing is no WHERE', () => {
    for (const where of ['1 = 1', "'a' = 'a'", 'id = id', 'id = 1 OR true', 'NOT false', `EXISTS (SELECT 1 FROM ${S}.src)`]) {
      it(`DELETE ... WHERE ${where}: rows unchanged`, async () => {
        await run(`DELETE FROM ${S}.t WHERE ${where}`)
        assert.equal(await state.rows(), ROWS)
      })
    }
    it('a bounded DELETE still runs (control)', async () => {
      await run(`DELETE FROM ${S}.t WHERE id = 1`)
      assert.equal(await state.rows(), '2:b,3:c')
    })
  })

  it('INSERT ... SELECT ... ON CONFLICT DO UPDATE is an unbounded update: rows unchanged', async () => {
    await run(`INSERT INTO ${S}.t SELECT id, 'pwned' FROM ${S}.src ON CONFLICT (id) DO UPDATE SET v = excluded.v`)
    assert.equal(await state.rows(), ROWS)
  })

  it('MERGE ... WHEN MATCHED THEN DELETE (no condition) is an unbounded delete: rows unchanged', async () => {
    await run(`MERGE INTO ${S}.t USING ${S}.src s ON t.id = s.id WHEN MATCHED THEN DELETE`)
    await run(`MERGE INTO ${S}.t USING ${S}.src s ON true WHEN MATCHED AND 1 = 1 THEN UPDATE SET v = 'pwned'`)
    assert.equal(await state.rows(), ROWS)
  })

  it('SQL text run by query_to_xml is judged: no large object imported, literal or computed', async () => {
    await run(`SELECT query_to_xml('select lo_import(''/etc/hostname'')', true, false, '')`)
    await run(`SELECT query_to_xml($q$select pg_catalog.lo_import('/etc/hostname')$q$, true, false, '')`)
    await run(`SELECT query_to_xml(concat('select lo_', 'import(''/etc/hostname'')'), true, false, '')`)
    await run(`SELECT query_to_xmlschema(query => 'select lo_import(''/etc/hostname'')', nulls => true, tableforest => false, targetns => '')`)
    assert.equal(await state.largeObjects(), largeObjectsBefore)
  })

  it('set_config is judged like SET: session_replication_role stays origin', async () => {
    await run(`SELECT set_config('session_replication_role', 'replica', false)`)
    await run('SET session_replication_role = replica')
    await run(`SELECT pg_catalog.set_config('SESSION_REPLICATION_ROLE', 'replica', false)`)
    const r = await client.query(`SELECT current_setting('session_replication_role') AS v`)
    assert.equal(r.rows[0].v, 'origin')
  })

  it('EXECUTE of a statement prepared out of hoop\'s sight is not run', async () => {
    // Prepared by SQL built at run time inside a DO block: the server holds it, hoop never saw it.
    await run(`DO $$ BEGIN EXECUTE 'PREPARE p AS DELETE FROM ${S}.t WHERE id > ' || '0'; END $$`)
    await run('EXECUTE p')
    await run('EXPLAIN ANALYZE EXECUTE p')
    assert.equal(await state.rows(), ROWS)
  })

  describe('no laundering of masked data (built-in rules)', () => {
    it('CREATE TABLE AS / SELECT INTO / materialized view from a masked column: no new relation', async () => {
      await run(`CREATE TABLE ${S}.copy AS SELECT email FROM ${S}.customers`)
      await run(`SELECT upper(email) AS e INTO ${S}.copy2 FROM ${S}.customers`)
      await run(`CREATE MATERIALIZED VIEW ${S}.c2 AS SELECT * FROM ${S}.customers`)
      assert.deepEqual([await state.relation('copy'), await state.relation('copy2'), await state.relation('c2')], [null, null, null])
    })

    it('INSERT ... SELECT and UPDATE from a masked column: nothing written', async () => {
      await run(`INSERT INTO ${S}.log SELECT reverse(email) FROM ${S}.customers`)
      await run(`WITH w AS (SELECT email FROM ${S}.customers) INSERT INTO ${S}.log SELECT * FROM w`)
      await run(`UPDATE ${S}.customers SET name = email WHERE id = 1`)
      assert.equal(await state.logRows(), 0)
      assert.equal(await state.customers(), '1:Ann,2:Bob')
    })

    it('a setting, a large object or a server file from a masked column: nothing stored', async () => {
      await run(`SELECT set_config('hoop.e', email, false) FROM ${S}.customers WHERE id = 1`)
      const r = await client.query(`SELECT current_setting('hoop.e', true) IS NULL OR current_setting('hoop.e', true) = '' AS empty`)
      assert.equal(r.rows[0].empty, true)
      await run(`SELECT lo_from_bytea(0, convert_to(email, 'UTF8')) FROM ${S}.customers`)
      assert.equal(await state.largeObjects(), largeObjectsBefore)
      await run(`COPY (SELECT email FROM ${S}.customers) TO '${FILE}'`)
      assert.equal(await state.file(), null)
    })

    it('DDL that renames or alters the masked table or column is refused', async () => {
      await run(`ALTER TABLE ${S}.customers RENAME COLUMN email TO e`)
      await run(`ALTER TABLE ${S}.customers ALTER COLUMN email TYPE text USING reverse(email)`)
      await run(`ALTER TABLE ${S}.customers RENAME TO c2`)
      await run(`CREATE VIEW ${S}.v AS SELECT email AS e FROM ${S}.customers`)
      assert.equal(await state.columns(), 'id,name,email')
      assert.equal(await state.relation('c2'), null)
      assert.equal(await state.relation('v'), null)
      assert.equal((await adminQuery<{e: string}>(`SELECT email AS e FROM ${S}.customers WHERE id = 1`))[0].e, 'ann@example.com')
    })

    it('statistics views that sample values are refused: no rows reach the client', async () => {
      await adminQuery(`ANALYZE ${S}.customers`)
      assert.equal(await run(`SELECT most_common_vals::text FROM pg_stats WHERE schemaname = '${S}'`), undefined)
      assert.equal(judge.verdicts.at(-1)?.verdict.ruleId, 'hoop.masked-stats')
    })

    it('an allow rule that waives hoop.no-laundering lets its subject copy (control)', async () => {
      const etlJudge = policyJudge('postgres', POLICY, etl)
      const h2 = await startHarness({judge: (sql) => etlJudge.judge(sql)})
      const c = new pg.Client({host: '127.0.0.1', port: h2.port, user: 'postgres', database: 'test'})
      try {
        await c.connect()
        await c.query(`CREATE TABLE ${S}.copy AS SELECT email FROM ${S}.customers`)
        assert.equal(await state.relation('copy'), `${S}.copy`)
      } finally {
        await c.end().catch(() => undefined)
        await h2.close()
      }
    })
  })

  it('an analyser failure (an expression too deep) is refused, and the session stays usable', async () => {
    const deep = `DELETE FROM ${S}.t WHERE ` + '('.repeat(20000) + 'true' + ')'.repeat(20000)
    await run(deep)
    assert.equal(await state.rows(), ROWS)
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1)
  })
})

describe('guardrails: SQL EXECUTE of a protocol-prepared statement is judged as what it runs', function () {
  it('the engine tells the analyser about named Parse and Close, so EXECUTE of the name is judged by its text', async () => {
    await loadPgParser()
    const prepared = new Map<string, Statement[]>()
    const judged: string[] = []
    const h = await startHarness({
      judge: (sql) => {
        judged.push(sql)
        const op = analyzePostgres(sql, {prepared})
        const unseen = op.unparsable !== undefined || op.statements.some((s) => s.unseen !== undefined)
        return unseen ? {effect: 'block', ruleId: 'unseen', message: 'unseen'} : {effect: 'allow', ruleId: 'r', mask: {columns: [], entities: [], ruleIds: []}}
      },
      prepared: {
        parsed: (name, sql) => rememberPrepared(prepared, name, analyzePostgres(sql, {prepared}).statements),
        closed: (name) => forgetPrepared(prepared, name),
      },
    })
    const c = new pg.Client({host: '127.0.0.1', port: h.port, user: 'postgres', database: 'test'})
    await c.connect()
    try {
      await c.query({name: 'named_one', text: 'select 1 as one'})
      // EXECUTE of the protocol-prepared name: judged as `select 1`, so allowed and run.
      const r = await c.query('execute named_one')
      assert.equal(r.rows[0].one, 1)
      // A name never prepared stays unseen: refused.
      await assert.rejects(c.query('execute never_prepared'), /unseen/)
    } finally {
      await c.end()
      await h.close()
    }
  })
})
