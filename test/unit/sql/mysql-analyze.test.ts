// The MySQL analyzer must see the dangerous statement however it is worded.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {judgeOperation} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Statement} from '../../../src/policy/types.js'
import {analyzeMysql} from '../../../src/sql/mysql-analyze.js'
import {splitStatements} from '../../../src/sql/mysql-parser.js'

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
