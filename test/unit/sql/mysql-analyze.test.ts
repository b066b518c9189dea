// The MySQL analyzer must see the dangerous statement however it is worded.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {judgeOperation} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Statement} from '../../../src/policy/types.js'
import {analyzeMysql} from '../../../src/sql/mysql-analyze.js'
import {splitStatements} from '../../../src/sql/mysql-parser.js'
import {newMysqlSession, observeNoBackslashEscapes, observeSqlMode} from '../../../src/sql/mysql-session.js'
import {analyzeMysqlOutputs} from '../../../src/sql/mysql-taint.js'
import {ColumnMatcher} from '../../../src/masking/columns.js'

function find(sql: string, pred: (s: Statement) => boolean, opts = {}): Statement {
  const op = analyzeMysql(sql, opts)
  const s = op.statements.find(pred)
  assert.ok(s, `${sql} => ${JSON.stringify(op)}`)
  return s
}

describe('sql: splitStatements (MySQL lexing)', () => {
  it('splits at top-level semicolons only, drops comments, unwraps executable comments', () => {
    assert.deepEqual(splitStatements(`select ';' as a; select "x;y" -- c;\n; select \`a;b\` # z;\n`), [`select ';' as a`, 'select "x;y"', 'select `a;b`'])
    assert.deepEqual(splitStatements('/*!50000 DROP TABLE t */'), ['DROP TABLE t'])
    assert.deepEqual(splitStatements("select 1 /*!40101 , 'a;b' */; /*M!100100 drop table x */"), ["select 1   , 'a;b'", 'drop table x'])
    assert.deepEqual(splitStatements("select 'it''s', 'a\\'b'"), ["select 'it''s', 'a\\'b'"])
    assert.deepEqual(splitStatements('select 1--1'), ['select 1--1'])
    assert.throws(() => splitStatements("select 'open"), /unterminated/)
    assert.throws(() => splitStatements('select /* open'), /unterminated/)
  })
})

describe('sql: analyzeMysql rewordings', () => {
  const dangerous: Array<[string, (s: Statement) => boolean]> = [
    ['dRoP tAbLe x', (s) => s.kind === 'drop' && s.command === 'DROP TABLE' && s.tables.includes('x')],
    ['DROP/*c*/TABLE `X`', (s) => s.kind === 'drop' && s.tables.includes('X')],
    ['drop # comment\n table db1.x', (s) => s.kind === 'drop' && s.tables.includes('db1.x')],
    ['/*!50000 DROP TABLE t */', (s) => s.kind === 'drop' && s.tables.includes('t')],
    ['/*!DROP DATABASE prod */', (s) => s.kind === 'drop' && s.command === 'DROP DATABASE' && s.tables.includes('prod')],
    ['select 1; drop table x', (s) => s.kind === 'drop' && s.index === 1],
    ["PREPARE s FROM 'DELETE FROM t'", (s) => s.kind === 'delete' && s.via === 'prepare' && s.hasWhere === false],
    ['PREPARE s FROM "DROP TABLE t"', (s) => s.kind === 'drop' && s.via === 'prepare'],
    ["PREPARE s FROM '/*!50000 TRUNCATE t */'", (s) => s.kind === 'truncate' && s.via === 'prepare'],
    ['PREPARE s FROM @sql', (s) => s.kind === 'other' && s.writes && s.opaque === true],
    ["SET @q = 'DROP TABLE t'; PREPARE s FROM @q", (s) => s.kind === 'drop' && s.via === 'prepare'],
    ["PREPARE s FROM 'DELETE FROM t'; EXECUTE s", (s) => s.kind === 'delete' && s.via === 'execute' && s.index === 1],
    ['EXECUTE never_seen', (s) => s.kind === 'execute' && s.writes],
    ['HANDLER t OPEN', (s) => s.kind === 'select' && s.command === 'HANDLER OPEN' && s.tables.includes('t')],
    ["LOAD DATA INFILE '/etc/passwd' INTO TABLE t", (s) => s.kind === 'copy' && s.copyFile === true && s.writes && s.tables.includes('t')],
    ["LOAD DATA LOCAL INFILE 'x' INTO TABLE t", (s) => s.kind === 'copy' && s.copyFile === false],
    ["SELECT * FROM t INTO OUTFILE '/tmp/x'", (s) => s.kind === 'copy' && s.copyFile === true && s.writes],
    ['ANALYZE DELETE FROM t', (s) => s.kind === 'delete' && s.via === 'explain' && s.command === 'ANALYZE DELETE'],
    ['EXPLAIN ANALYZE UPDATE t SET a = 1', (s) => s.kind === 'update' && s.hasWhere === false],
    ['CREATE PROCEDURE p() BEGIN DELETE FROM t; END', (s) => s.kind === 'ddl' && s.opaque === true && s.command === 'CREATE PROCEDURE'],
    ['CREATE DEFINER=root@localhost PROCEDURE p() BEGIN DELETE FROM t; END', (s) => s.kind === 'delete' && s.via === 'function'],
    ['CALL do_things()', (s) => s.kind === 'call' && s.writes && s.functions.includes('do_things')],
    ['select sleep(10), load_file(\'/etc/passwd\')', (s) => s.functions.includes('sleep') && s.functions.includes('load_file')],
    ['DO get_lock("x", 10)', (s) => s.kind === 'other' && s.functions.includes('get_lock') && s.writes],
    ['SELECT * FROM t FOR UPDATE', (s) => s.kind === 'select' && s.locksRows === true && s.writes],
    ["GRANT ALL ON *.* TO 'x'@'%'", (s) => s.kind === 'grant' && s.writes],
    ['DROP USER x', (s) => s.kind === 'drop' && s.command === 'DROP USER'],
    ['SET GLOBAL read_only = 0', (s) => s.kind === 'set' && s.writes],
    ['SET sql_log_bin = 0', (s) => s.kind === 'set' && s.writes && s.settings?.includes('sql_log_bin') === true],
    ['SET SESSION TRANSACTION READ WRITE', (s) => s.kind === 'set' && s.writes],
    ['REPLACE INTO audit.log SELECT * FROM t', (s) => s.kind === 'insert' && s.tables.includes('audit.log') && s.tables.includes('t')],
    ['UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = 1', (s) => s.kind === 'update' && s.hasWhere === false && s.tables.includes('t2')],
    ['with w as (select 1) select * from w', (s) => s.kind === 'select' && s.tables.length === 0],
    ['FLUSH PRIVILEGES', (s) => s.kind === 'maintenance' && s.writes],
    ['KILL 42', (s) => s.kind === 'other' && s.writes],
    ['SHOW FULL COLUMNS FROM t', (s) => s.kind === 'show' && !s.writes],
    ['USE test', (s) => s.command === 'USE' && !s.writes],
  ]
  for (const [sql, pred] of dangerous) {
    it(`sees through: ${sql.replace(/\n/g, ' ')}`, () => {
      find(sql, pred, {prepared: new Map(), variables: new Map()})
    })
  }

  it('tells DELETE with a WHERE from DELETE without one', () => {
    assert.equal(find('DELETE FROM t WHERE id = 1', (s) => s.kind === 'delete').hasWhere, true)
    assert.equal(find('delete from t', (s) => s.kind === 'delete').hasWhere, false)
  })

  it('EXECUTE of a statement prepared earlier in the session is judged as that statement', () => {
    const prepared = new Map<string, Statement[]>()
    analyzeMysql("PREPARE Del FROM 'DELETE FROM t'", {prepared})
    const s = find('execute del', (x) => x.kind === 'delete', {prepared})
    assert.equal(s.via, 'execute')
  })

  it('text that does not parse is unparsable, with the reason', () => {
    assert.ok(analyzeMysql('SELEC 1').unparsable)
    assert.match(analyzeMysql("select 'open").unparsable?.reason ?? '', /unterminated/)
    assert.ok(analyzeMysql('PREPARE s FROM 1 + 1').unparsable)
  })
})

describe('sql + policy: MySQL guardrails hold against rewording', () => {
  const policy = parsePolicy(
    `version: 1
rules:
  - {id: all, effect: allow}
  - {id: no-drop, effect: block, match: {kinds: [drop, truncate]}}
  - {id: unbounded-writes, effect: block, match: {kinds: [update, delete], where: absent}}
  - {id: opaque-writes, effect: block, match: {kinds: [other, execute], writes: true}}
  - {id: no-files, effect: block, match: {copyFile: true}}
`,
    'p.yaml',
  )
  const alice: Identity = {kind: 'user', subject: 'a', name: 'alice', email: 'alice@example.com', groups: []}
  const judge = (sql: string) => judgeOperation(policy, alice, {name: 'db', type: 'mysql'}, analyzeMysql(sql))
  const cases: Array<[string, string]> = [
    ['dRoP tAbLe x', 'no-drop'],
    ['/*!50000 DROP TABLE t */', 'no-drop'],
    ['select 1; drop table x', 'no-drop'],
    ["PREPARE s FROM 'DELETE FROM t'", 'unbounded-writes'],
    ['PREPARE s FROM @sql', 'opaque-writes'],
    ["LOAD DATA INFILE '/etc/passwd' INTO TABLE t", 'no-files'],
    ['DELETE FROM t', 'unbounded-writes'],
    ['DELETE FROM t WHERE id = 1', 'all'],
    ['select * from t', 'all'],
    ['SELEC 1', 'default-unparsable'],
  ]
  for (const [sql, ruleId] of cases) {
    it(`${sql} -> ${ruleId}`, () => {
      const d = judge(sql)
      assert.equal(d.ruleId, ruleId, JSON.stringify(d))
    })
  }
})

describe('sql: MySQL judged as the server reads it (issue 12)', () => {
  const only = (sql: string, opts = {}) => {
    const op = analyzeMysql(sql, opts)
    assert.ok(!op.unparsable, `${sql} => ${JSON.stringify(op)}`)
    return op.statements
  }

  describe('sql_mode: splitting and quoting follow the session', () => {
    it('splits in the mode given: ANSI_QUOTES identifiers and NO_BACKSLASH_ESCAPES strings', () => {
      const ansi = {ansiQuotes: true, noBackslashEscapes: false}
      const nbe = {ansiQuotes: false, noBackslashEscapes: true}
      assert.deepEqual(splitStatements('select "a\\"; drop table t; -- "', ansi), ['select `a\\`', 'drop table t'])
      assert.deepEqual(splitStatements("select 'a\\'; drop table t; -- '", nbe), ["select 'a\\\\'", 'drop table t'])
      assert.deepEqual(splitStatements("select 'a\\'; drop table t; -- '"), ["select 'a\\'; drop table t; -- '"])
      assert.deepEqual(splitStatements('select "it""s"', ansi), ['select `it"s`'])
    })

    it('after SET sql_mode, a quote trick cannot hide a second statement', () => {
      for (const [set, trick] of [
        // In the default mode each trick is one SELECT of a string; in the new mode the DROP runs.
        ["SET sql_mode = 'ANSI_QUOTES'", 'SELECT "x\\" ; DROP TABLE t; -- "'],
        ["SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", "SELECT 'x\\' ; DROP TABLE t; -- '"],
        ["SET @@session.sql_mode = 'ANSI'", 'SELECT "x\\" ; DROP TABLE t; -- "'],
        ["SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')", "SELECT 'x\\' ; DROP TABLE t; -- '"],
        ["SET @m = 'ANSI_QUOTES'; SET sql_mode = @m", 'SELECT "x\\" ; DROP TABLE t; -- "'],
      ]) {
        const session = newMysqlSession()
        only(set, {session})
        // The SET may not have run (refused, or an earlier statement failed): both readings are possible.
        const op = analyzeMysql(trick, {session})
        assert.ok(op.unparsable || op.statements.some((s) => s.kind === 'drop'), `${set}; ${trick} => ${JSON.stringify(op)}`)
        // Once the server confirms the mode, the text is read in it alone.
        observeSqlMode(session, set.includes('NO_BACKSLASH') ? 'NO_BACKSLASH_ESCAPES' : 'ANSI_QUOTES')
        assert.ok(only(trick, {session}).some((s) => s.kind === 'drop'), `${set}; ${trick}`)
      }
    })

    it('follows a mode change in the middle of one text, as the server parses statement by statement', () => {
      const op = analyzeMysql("SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'x\\' ; DROP TABLE t; -- '", {session: newMysqlSession()})
      assert.ok(op.unparsable || op.statements.some((s) => s.kind === 'drop'), JSON.stringify(op))
    })

    it('reads text under every mode still possible, and narrows with what the server reports', () => {
      const session = newMysqlSession()
      only("SET sql_mode = 'ANSI_QUOTES'", {session})
      assert.deepEqual([...session.modes].sort(), ['', 'A'])
      // Ordinary text reads alike in both: judged as the union.
      assert.deepEqual(only('SELECT "email" FROM customers', {session}).length, 1)
      observeNoBackslashEscapes(session, false)
      assert.deepEqual([...session.modes].sort(), ['', 'A'])
      observeSqlMode(session, 'STRICT_TRANS_TABLES')
      assert.deepEqual([...session.modes], [''])
      only("SET @saved = @@sql_mode; SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SET sql_mode = @saved", {session})
      assert.deepEqual([...session.modes].sort(), ['', 'N'])
      only('SET sql_mode = DEFAULT', {session})
    })

    it('keeps the state beside the variables map engines already pass once per session', () => {
      const variables = new Map<string, string>()
      only("SET sql_mode = 'ANSI_QUOTES'", {variables})
      assert.ok(analyzeMysql('SELECT "x\\" ; DROP TABLE t; -- "', {variables}).unparsable)
    })

    it('masking reads the text in the modes its policy analysis started from', () => {
      const session = newMysqlSession()
      observeSqlMode(session, 'ANSI_QUOTES')
      const sql = 'SELECT UPPER("email") FROM customers'
      only(sql, {session})
      const m = new ColumnMatcher(['customers.email'])
      assert.equal((analyzeMysqlOutputs(sql, m, session)?.[0].outputs?.[0] as {source?: string}).source, 'customers.email')
      assert.equal((analyzeMysqlOutputs(sql, m)?.[0].outputs?.[0] as {source?: string}).source, undefined) // default mode: a string
    })

    it('character sets that hide quotes in multibyte characters are unseen', () => {
      for (const sql of ['SET NAMES gbk', "SET NAMES 'sjis'", 'SET CHARACTER SET big5', "SET character_set_client = 'cp932'", 'SET character_set_client = @@character_set_results']) {
        assert.ok(only(sql)[0].unseen, sql)
      }
      assert.equal(only('SET NAMES utf8mb4')[0].unseen, undefined)
    })
  })

  it('REPLACE and INSERT ... ON DUPLICATE KEY UPDATE are also updates', () => {
    const upsert = (sql: string) => only(sql).find((s) => s.via === 'upsert')
    assert.deepEqual([upsert('INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1')?.kind, upsert('INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1')?.hasWhere], ['update', true])
    assert.equal(upsert('INSERT INTO t SELECT * FROM u ON DUPLICATE KEY UPDATE a = 0')?.hasWhere, false)
    assert.deepEqual([upsert('REPLACE INTO t VALUES (1)')?.kind, upsert('REPLACE INTO t VALUES (1)')?.hasWhere], ['update', true])
    assert.equal(upsert('REPLACE INTO t SELECT * FROM u')?.hasWhere, false)
    assert.equal(upsert('INSERT INTO t VALUES (1)'), undefined)
    assert.equal(only('REPLACE INTO t VALUES (1)')[0].kind, 'insert')
  })

  it('a WHERE that bounds nothing is absent', () => {
    const cases: Array<[string, boolean]> = [
      ['DELETE FROM t WHERE 1 = 1', false],
      ['DELETE FROM t WHERE TRUE', false],
      ["DELETE FROM t WHERE 'a' = 'a'", false],
      ['DELETE FROM t WHERE id = id', false],
      ['DELETE FROM t WHERE id = 1 OR 1 = 1', false],
      ['DELETE FROM t WHERE RAND() < 2', false],
      ['DELETE FROM t WHERE EXISTS (SELECT 1 FROM u)', false],
      ['UPDATE t SET a = 1 WHERE NOT (1 = 0)', false],
      ['UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = 1 WHERE t2.x = 1', false],
      ['DELETE FROM t WHERE id = 1', true],
      ['DELETE FROM t WHERE 1 = 1 AND id = 1', true],
      ['UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = 1 WHERE t1.id = 3', true],
      ['DELETE FROM t WHERE id IN (SELECT id FROM u WHERE u.t_id = t.id)', true],
    ]
    for (const [sql, bounded] of cases) assert.equal(only(sql)[0].hasWhere, bounded, sql)
  })

  describe('prepared statements and user variables', () => {
    it('EXECUTE of a name never prepared through hoop is unseen; DEALLOCATE retires a name', () => {
      assert.match(only('EXECUTE nope')[0].unseen ?? '', /EXECUTE nope/)
      const prepared = new Map<string, Statement[]>()
      only("PREPARE s FROM 'DELETE FROM t'", {prepared})
      only('DEALLOCATE PREPARE s', {prepared})
      assert.equal(prepared.has('s'), false)
      assert.deepEqual(only('EXECUTE s', {prepared}).map((s) => s.kind), ['delete'])
      only("PREPARE s FROM 'SELECT 1'", {prepared})
      assert.deepEqual(only('EXECUTE s', {prepared}).map((s) => s.kind).sort(), ['delete', 'select'])
      only('DROP PREPARE s', {prepared})
      assert.equal(prepared.has('s'), false)
    })

    it('PREPARE FROM @var judges every literal the variable may hold, and is unseen when it may hold anything', () => {
      const session = newMysqlSession()
      only("SET @q = 'SELECT 1'", {session})
      only("SET @q = 'DROP TABLE t'", {session})
      assert.deepEqual(only('PREPARE s FROM @q', {session}).map((s) => s.kind), ['other', 'select', 'drop'])
      for (const assign of ["SELECT 'DROP TABLE t' INTO @q", "SELECT @q := 'DROP TABLE t'", 'SET @q = CONCAT(\'DROP \', \'TABLE t\')', "DO @q := 'x'"]) {
        const s2 = newMysqlSession()
        only("SET @q = 'SELECT 1'", {session: s2})
        only(assign, {session: s2})
        assert.ok(only('PREPARE s FROM @q', {session: s2})[0].unseen, assign)
      }
      const s3 = newMysqlSession()
      only("SET @q = 'SELECT 1'", {session: s3})
      only('CALL p()', {session: s3})
      assert.ok(only('PREPARE s FROM @q', {session: s3})[0].unseen, 'after CALL')
    })
  })

  describe('laundering facts', () => {
    const stores = (sql: string) => only(sql).flatMap((s) => (s.stores ?? []).map((st) => `${st.stores}<-${st.flows.map((f) => `${f.from.table ?? '?'}.${f.from.column}${f.into ? `>${f.into.column}` : ''}`).join(',')}`))
    const cases: Array<[string, string[]]> = [
      ['CREATE TABLE x AS SELECT email FROM customers', ['table<-customers.email']],
      ['CREATE TABLE x SELECT * FROM customers', ['table<-customers.*']],
      ['INSERT INTO log (a) SELECT upper(email) FROM customers', ['table<-customers.email>a']],
      ['REPLACE INTO log SELECT email FROM customers', ['table<-customers.email']],
      ['INSERT INTO log (a) VALUES ((SELECT email FROM customers LIMIT 1))', ['table<-customers.email>a']],
      ['UPDATE customers SET name = email WHERE id = 1', ['table<-customers.email>name']],
      ['UPDATE log JOIN customers c ON c.id = log.id SET log.a = c.email', ['table<-customers.email>a']],
      ['SELECT email INTO @v FROM customers LIMIT 1', ['variable<-customers.email']],
      ['SELECT email FROM customers LIMIT 1 INTO @v', ['variable<-customers.email']],
      ['SET @v = (SELECT email FROM customers LIMIT 1)', ['variable<-customers.email']],
      ['SELECT @v := email FROM customers', ['variable<-customers.email']],
      ["SELECT email FROM customers INTO OUTFILE '/tmp/x'", ['file<-customers.email']],
      ['CREATE VIEW v AS SELECT email FROM customers', ['view<-customers.email']],
      ['SELECT email FROM customers', []],
      ["UPDATE customers SET name = 'x' WHERE email = 'a@b.c'", []],
    ]
    for (const [sql, want] of cases) it(sql, () => assert.deepEqual(stores(sql), want))

    it('names renamed and altered tables, and statistics reads', () => {
      assert.deepEqual(only('RENAME TABLE customers TO c2')[0].alters, [{table: 'customers', column: '*'}])
      assert.deepEqual(only('ALTER TABLE shop.customers CHANGE email e text')[0].alters, [{schema: 'shop', table: 'customers', column: '*'}])
      assert.deepEqual(only('CREATE TRIGGER tr BEFORE UPDATE ON customers FOR EACH ROW SET @x = OLD.email')[0].alters, [{table: 'customers', column: '*'}])
      for (const sql of ['SELECT * FROM mysql.column_stats', 'SELECT histogram FROM information_schema.COLUMN_STATISTICS']) assert.ok(only(sql)[0].readsStatistics, sql)
    })
  })

  it('never throws: any analyser failure is unparsable', () => {
    const deep = 'SELECT ' + '('.repeat(3000) + '1' + ')'.repeat(3000)
    const op = analyzeMysql(deep)
    assert.ok(op.unparsable || op.statements.length === 1)
    assert.doesNotThrow(() => analyzeMysqlOutputs(deep, new ColumnMatcher(['*.email'])))
  })
})

describe('sql + policy: MySQL masked data cannot be laundered', () => {
  const policy = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: pii, effect: mask, mask: {columns: ["customers.email"]}}\n', 'p.yaml')
  const alice: Identity = {kind: 'user', subject: 'a', name: 'alice', email: 'alice@example.com', groups: []}
  const judge = (sql: string) => judgeOperation(policy, alice, {name: 'db', type: 'mysql'}, analyzeMysql(sql))
  const cases: Array<[string, string]> = [
    ['SELECT email INTO @v FROM customers LIMIT 1', 'hoop.no-laundering'],
    ['SET @v = (SELECT email FROM customers LIMIT 1)', 'hoop.no-laundering'],
    ['CREATE TABLE x AS SELECT email FROM customers', 'hoop.no-laundering'],
    ['INSERT INTO log (a) SELECT email FROM customers', 'hoop.no-laundering'],
    ['UPDATE customers SET name = email WHERE id = 1', 'hoop.no-laundering'],
    ['RENAME TABLE customers TO c2', 'hoop.masked-ddl'],
    ['ALTER TABLE customers RENAME COLUMN email TO e', 'hoop.masked-ddl'],
    ['SELECT * FROM mysql.column_stats', 'hoop.masked-stats'],
    ['SELECT email FROM customers', 'all'],
    ['INSERT INTO log (a) SELECT id FROM customers', 'all'],
  ]
  for (const [sql, ruleId] of cases) it(`${sql} -> ${ruleId}`, () => assert.equal(judge(sql).ruleId, ruleId, JSON.stringify(judge(sql))))
})
