// One parse per statement text (issue 15): the per-session parse cache is bounded, keeps nothing
// it was told not to, hands both analysers the same frozen tree, and never carries an analysis
// over a change of session state (only the parse is kept; the analyses walk it again).
import {strict as assert} from 'node:assert'
import {ColumnMatcher} from '../../../src/masking/columns.js'
import type {Statement} from '../../../src/policy/types.js'
import {analyzeMysql} from '../../../src/sql/mysql-analyze.js'
import {parseMysql, splitStatements} from '../../../src/sql/mysql-parser.js'
import {newMysqlSession} from '../../../src/sql/mysql-session.js'
import {analyzeMysqlOutputs} from '../../../src/sql/mysql-taint.js'
import {ParseCache} from '../../../src/sql/parse-cache.js'
import {analyzePostgres} from '../../../src/sql/pg-analyze.js'
import {loadPgParser, parsePg, type PgParse} from '../../../src/sql/pg-parser.js'
import {analyzeSql} from '../../../src/sql/pg-taint.js'

const PG_CORPUS = [
  'SELECT upper(email), row_to_json(c) FROM customers c WHERE id = $1',
  'WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d',
  'INSERT INTO t (a, b) SELECT email, ssn FROM customers ON CONFLICT (a) DO UPDATE SET b = excluded.b WHERE t.a > 0',
  'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 0 THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)',
  'EXPLAIN (ANALYZE false, ANALYZE) UPDATE t SET v = 1 WHERE true',
  'PREPARE p AS SELECT email FROM customers; EXECUTE p; DEALLOCATE p',
  'CREATE TABLE x AS EXECUTE p',
  "SELECT query_to_xml('select email from customers', true, true, '')",
  "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'search_path'",
  "DO $$ BEGIN EXECUTE 'delete from t'; PERFORM lo_import('/etc/passwd'); END $$",
  "COPY (SELECT email || '' FROM customers) TO STDOUT WITH (FORMAT csv)",
  'DECLARE c CURSOR FOR SELECT ssn FROM people; FETCH 10 FROM c',
  'SELECT a.email FROM customers a JOIN LATERAL (SELECT * FROM orders o WHERE o.c = a.id) x ON true UNION ALL SELECT 1',
  'CREATE VIEW v AS SELECT email AS contact FROM customers',
  'ALTER TABLE customers RENAME COLUMN email TO e',
  'SET standard_conforming_strings = off',
  'SELECT (SELECT max(ssn) FROM people), count(*) OVER (PARTITION BY email) FROM customers FOR UPDATE',
]
const MYSQL_CORPUS = [
  'SELECT name, upper(email) FROM customers WHERE id = 1',
  "SET @q = 'SELECT email FROM customers'; PREPARE s FROM @q; EXECUTE s; DEALLOCATE PREPARE s",
  'INSERT INTO t (a) SELECT email FROM customers ON DUPLICATE KEY UPDATE a = VALUES(a)',
  'SELECT x.e FROM (SELECT concat(email, ssn) AS e FROM customers) x UNION SELECT 1',
  'WITH w AS (SELECT email FROM customers) SELECT lower(email) FROM w',
  'REPLACE INTO t SELECT * FROM customers',
  'UPDATE customers SET name = email WHERE id = 1',
  "SET sql_mode = 'ANSI_QUOTES'",
  'SELECT email INTO @v FROM customers LIMIT 1',
  'DELETE FROM t WHERE 1 = 1',
]

/** A pg parse cache that counts the parses it makes. */
function countingPg(limits?: ConstructorParameters<typeof ParseCache>[1]) {
  const parsed: string[] = []
  const cache = new ParseCache<PgParse>((sql) => {
    parsed.push(sql)
    return parsePg(sql)
  }, limits)
  return {cache, parsed}
}

describe('sql: one parse per statement text (parse cache)', () => {
  before(() => loadPgParser())

  it('policy and masking analyses of a statement share one parse, and a repeated text is not parsed again', () => {
    const {cache, parsed} = countingPg()
    const m = new ColumnMatcher(['customers.email'])
    for (let i = 0; i < 3; i++) {
      const sql = 'SELECT upper(email) FROM customers WHERE id = $1'
      assert.equal(analyzePostgres(sql, {parses: cache}).statements[0].kind, 'select')
      const out = analyzeSql(sql, m, undefined, cache)?.[0].outputs?.[0]
      assert.ok(out && 'source' in out && out.source === 'customers.email')
    }
    assert.deepEqual(parsed, ['SELECT upper(email) FROM customers WHERE id = $1'])
  })

  it('keeps a text from its second parse on, so texts that never repeat keep no tree', () => {
    const {cache, parsed} = countingPg()
    for (let i = 0; i < 3; i++) {
      cache.get('SELECT 1')
      cache.get('SELECT 2')
    }
    assert.deepEqual(parsed, ['SELECT 1', 'SELECT 2', 'SELECT 1', 'SELECT 2'])
  })

  it('is bounded: least recently used texts go first, by count and by total text', () => {
    const {cache, parsed} = countingPg({entries: 3, entryChars: 100, totalChars: 1000})
    // A text parsed twice is kept; a long one between keeps the latest slot from serving the second.
    const long = `SELECT 0 /* ${'z'.repeat(100)} */`
    const keep = (sql: string) => [cache.get(sql), cache.get(long), cache.get(sql)]
    for (const n of [1, 2, 3]) keep(`SELECT ${n}`)
    cache.get('SELECT 1') // now the most recent
    keep('SELECT 4') // evicts SELECT 2
    parsed.length = 0
    for (const n of [1, 3, 4]) cache.get(`SELECT ${n}`)
    assert.deepEqual(parsed, [])
    cache.get('SELECT 2')
    assert.deepEqual(parsed, ['SELECT 2'])

    const bytes = countingPg({entries: 100, entryChars: 100, totalChars: 60})
    const text = (n: number) => `SELECT ${n} /* ${'x'.repeat(20)} */` // 35 characters: two exceed the total
    for (const n of [1, 2, 1, 2]) bytes.cache.get(text(n))
    bytes.parsed.length = 0
    bytes.cache.get(text(2))
    bytes.cache.get(text(1))
    assert.deepEqual(bytes.parsed, [text(1)], 'the older text was dropped to keep the total under the cap')
  })

  it('keeps no text longer than the entry cap, except the latest parse (for the second analysis of the same statement) up to the total cap', () => {
    const {cache, parsed} = countingPg({entries: 10, entryChars: 20, totalChars: 1000})
    const long = `SELECT 1 /* ${'y'.repeat(40)} */`
    cache.get(long)
    cache.get(long)
    assert.equal(parsed.length, 1, 'the latest parse serves the second analysis')
    for (let i = 0; i < 3; i++) {
      cache.get('SELECT 2')
      cache.get(long)
    }
    assert.equal(parsed.length, 5, 'a long text is parsed again each time another came between')

    const huge = `SELECT 1 /* ${'h'.repeat(2000)} */`
    cache.get(huge)
    cache.get(huge)
    assert.equal(parsed.length, 7, 'a text over the total cap is not held even as the latest parse')
  })

  it('the analysers only read the tree: a corpus analysed from one shared parse leaves every tree as parsed', () => {
    const m = new ColumnMatcher(['customers.email', '*.ssn'])
    const pg = countingPg()
    for (const sql of PG_CORPUS) {
      const tree = pg.cache.get(sql)
      assert.ok('stmts' in tree, sql)
      const before = JSON.stringify(tree)
      const prepared = new Map<string, Statement[]>()
      analyzePostgres(sql, {prepared, parses: pg.cache})
      analyzeSql(sql, m, undefined, pg.cache)
      analyzePostgres(sql, {prepared, parses: pg.cache})
      assert.equal(JSON.stringify(tree), before, sql)
    }
    const session = newMysqlSession()
    const parse = (text: string) => {
      try {
        return parseMysql(text, session.parses)
      } catch (err) {
        return String(err) // read by keyword instead (PREPARE, EXECUTE...)
      }
    }
    const trees = (sql: string) => JSON.stringify(splitStatements(sql).map(parse))
    for (const sql of MYSQL_CORPUS) {
      const before = trees(sql)
      analyzeMysql(sql, {session, prepared: new Map()})
      analyzeMysqlOutputs(sql, m, session)
      assert.equal(trees(sql), before, sql)
    }
  })

  it('PostgreSQL: the same EXECUTE text is judged by what the name holds now (PREPARE, DEALLOCATE, PREPARE again)', () => {
    const {cache} = countingPg()
    const prepared = new Map<string, Statement[]>()
    const judge = (sql: string) => analyzePostgres(sql, {prepared, parses: cache})
    assert.ok(judge('EXECUTE p').statements[0].unseen, 'never prepared: unseen')
    judge('PREPARE p AS SELECT v FROM t')
    assert.deepEqual(judge('EXECUTE p').statements.map((s) => [s.kind, s.tables]), [['select', ['t']]])
    judge('DEALLOCATE p')
    judge('PREPARE p AS DELETE FROM secrets')
    const now = judge('EXECUTE p').statements.map((s) => s.kind)
    assert.ok(now.includes('delete'), `EXECUTE p may run the DELETE now: ${now.join(',')}`)
  })

  it('MySQL: the same text is read in the sql_mode in force, and PREPARE FROM @v by what @v holds now', () => {
    const session = newMysqlSession()
    const prepared = new Map<string, Statement[]>()
    const m = new ColumnMatcher(['customers.email'])
    const read = (sql: string) => {
      const op = analyzeMysql(sql, {session, prepared})
      return {op, out: analyzeMysqlOutputs(sql, m, session)}
    }
    const q = 'SELECT "email" FROM customers'
    const before = read(q).out?.[0].outputs?.[0]
    assert.ok(before && 'source' in before && before.source === undefined, 'a string literal in the default mode')
    read("SET sql_mode = 'ANSI_QUOTES'")
    session.modes = new Set(['A']) // the server confirmed it (the engine observes @@sql_mode)
    const after = read(q).out?.[0].outputs?.[0]
    assert.ok(after && 'source' in after && after.source === 'customers.email', `the column under ANSI_QUOTES: ${JSON.stringify(after)}`)

    read("SET @q = 'SELECT id FROM t'")
    read('PREPARE s FROM @q')
    assert.deepEqual(read('EXECUTE s').op.statements.flatMap((s) => s.tables), ['t'])
    read("SET @q = 'SELECT email FROM secrets'")
    const tables = read('PREPARE s FROM @q').op.statements.flatMap((s) => s.tables)
    assert.ok(tables.includes('secrets'), `PREPARE FROM @q reads what @q holds now: ${tables.join(',')}`)
  })
})
