// The MySQL engine against the real MariaDB, the real `mysql` client and the mysql2 driver:
// queries, multi-statements, prepared statements, credential injection, guardrails against
// rewording (judged by the real policy module and the MySQL analyzer), malformed input.
import {strict as assert} from 'node:assert'
import * as net from 'node:net'
import mysql2 from 'mysql2/promise'
import type {Verdict as StatementVerdict} from '../../../src/engines/gate.js'
import type {Identity} from '../../../src/identity/types.js'
import {judgeOperation} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Statement} from '../../../src/policy/types.js'
import {COM, ER_NET_PACKET_TOO_LARGE, ER_TABLEACCESS_DENIED_ERROR} from '../../../src/protocol/mysql/constants.js'
import {encodePacket, PacketFramer, type Packet} from '../../../src/protocol/mysql/framer.js'
import {decodeErr} from '../../../src/protocol/mysql/messages.js'
import {analyzeMysql} from '../../../src/sql/mysql-analyze.js'
import {allow, connect, mysql, mysqlScript, RawClient, startHarness, tableJudge, type Harness} from './harness.js'

const T = `hoop_mys_${process.pid}`
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})

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
  - id: opaque-writes
    match: {kinds: [other, execute], writes: true}
    effect: block
  - id: no-server-files
    match: {copyFile: true}
    effect: block
  - id: review-grants
    match: {kinds: [grant]}
    effect: review
    review: {approvers: {groups: [dba]}}
`,
  'p.yaml',
)
const alice: Identity = {kind: 'user', subject: 'a', name: 'alice', email: 'alice@example.com', groups: []}
/** One analyzer state per test run (the gateway keeps one per session). */
const prepared = new Map<string, Statement[]>()
const variables = new Map<string, string>()
function policyJudge(sql: string): StatementVerdict {
  const d = judgeOperation(policy, alice, {name: 'db', type: 'mysql'}, analyzeMysql(sql, {prepared, variables}))
  const mask = {columns: d.mask.columns.map((c) => c.text), entities: d.mask.entities, ruleIds: d.mask.ruleIds}
  if (d.effect === 'allow') return {effect: 'allow', ruleId: d.ruleId, mask}
  if (d.effect === 'review') return {effect: 'review', ruleId: d.ruleId, message: d.message, approvalId: 'apr_9'}
  return {effect: 'block', ruleId: d.ruleId, message: d.message}
}

async function rowCount(): Promise<number> {
  const c = await admin()
  try {
    const [rows] = await c.query(`SELECT count(*) AS n FROM ${T}`)
    return Number((rows as {n: number}[])[0].n)
  } finally {
    await c.end()
  }
}

async function tableExists(): Promise<boolean> {
  const c = await admin()
  try {
    const [rows] = await c.query(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'test' AND table_name = ?`, [T])
    return Number((rows as {n: number}[])[0].n) === 1
  } finally {
    await c.end()
  }
}

describe('mysql engine: protocol and guardrails', function () {
  let h: Harness
  before(async () => {
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}; CREATE TABLE ${T} (id int primary key, v varchar(50))`)
    await c.end()
    h = await startHarness({judge: policyJudge, target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}`)
    await c.end()
  })
  beforeEach(async () => {
    const c = await admin()
    await c.query(`DELETE FROM ${T}; INSERT INTO ${T} VALUES (1, 'one'), (2, 'two')`)
    await c.end()
  })

  it('mysql -e: queries, and a multi-statement COM_QUERY with several result sets', async () => {
    const r = await mysql(h.port, `select id, v from ${T} order by id`)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, '1\tone\n2\ttwo\n')
    // With another delimiter the client sends "select 1; select 2" as one COM_QUERY (multi-results).
    const m = await mysql(h.port, `select 'a' as x; select count(*) from ${T}; select 'z'$$`, {extra: ['--delimiter=$$']})
    assert.equal(m.code, 0, m.stderr)
    assert.equal(m.stdout, 'a\n2\nz\n')
    assert.ok(h.events.some((e) => e.hook === 'afterStatement' && e.sql.startsWith(`select 'a' as x; select count(*)`) && e.rows === 3))
  })

  it('a blocked DROP answers ERR 1142/42000 naming the rule; the table survives and the session goes on', async () => {
    const r = await mysqlScript(h.port, `drop table ${T};\nselect 'still here';\n`)
    assert.match(r.stderr, /ERROR 1142 \(42000\).*hoop: blocked by policy rule no-drop/)
    assert.equal(r.stdout, 'still here\n')
    assert.ok(await tableExists())
    assert.ok(h.events.some((e) => e.hook === 'refused' && e.sql === `drop table ${T}`))
  })

  const rewordings: [string, string][] = [
    [`DrOp TaBlE ${T}`, 'no-drop'],
    [`DROP/* a comment */TABLE ${T}`, 'no-drop'],
    [`/*!50000 DROP TABLE ${T} */`, 'no-drop'],
    [`/*M!100000 TRUNCATE ${T} */`, 'no-drop'],
    [`select 1; drop table ${T}`, 'no-drop'],
    [`DELETE -- no where\n FROM ${T}`, 'unbounded-writes'],
    [`PREPARE s FROM 'DELETE FROM ${T}'`, 'unbounded-writes'],
    [`PREPARE s FROM @hoop_sql`, 'opaque-writes'],
    [`SELECT * FROM ${T} INTO OUTFILE '/tmp/hoop_${process.pid}.txt'`, 'no-server-files'],
    [`LOAD DATA INFILE '/etc/passwd' INTO TABLE ${T}`, 'no-server-files'],
    [`GRANT SELECT ON test.* TO 'nobody'@'%'`, 'review-grants'],
  ]
  for (const [sql, rule] of rewordings) {
    it(`refuses ${JSON.stringify(sql)} by rule ${rule}, nothing reaches the target`, async () => {
      const r = await mysql(h.port, sql + '$$', {extra: ['--delimiter=$$']})
      assert.match(r.stderr, new RegExp(`ERROR 1142 \\(42000\\).*policy rule ${rule}`), r.stderr)
      assert.equal(await rowCount(), 2)
      assert.ok(await tableExists())
    })
  }

  it('SET @v = literal then PREPARE FROM @v is refused; an allowed PREPARE/EXECUTE runs', async () => {
    const r = await mysqlScript(h.port, `SET @q = 'DELETE FROM ${T}';\nPREPARE s FROM @q;\nEXECUTE s;\nPREPARE ok FROM 'SELECT count(*) FROM ${T} WHERE id > ?';\nSET @a = 0;\nEXECUTE ok USING @a;\n`)
    assert.match(r.stderr, /policy rule (opaque-writes|unbounded-writes)/)
    assert.equal(r.stdout.trim().split('\n').pop(), '2')
    assert.equal(await rowCount(), 2)
  })

  it('review verdicts carry the approval id and the command to approve', async () => {
    const r = await mysql(h.port, `GRANT SELECT ON test.* TO 'nobody'@'%'`)
    assert.match(r.stderr, /review required by policy rule review-grants/)
    assert.match(r.stderr, /hoop approvals approve apr_9/)
  })

  it('mysql2: text queries, prepared statements (binary protocol), a blocked prepare, then the session is usable', async () => {
    const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'anyone', database: 'test', multipleStatements: true})
    try {
      const [rows] = await c.query(`SELECT id, v FROM ${T} ORDER BY id`)
      assert.deepEqual(rows, [{id: 1, v: 'one'}, {id: 2, v: 'two'}])
      const [multi] = (await c.query(`SELECT 1 AS a; SELECT v FROM ${T} WHERE id = 2`)) as unknown as [[{a: number}[], {v: string}[]]]
      assert.equal(multi[0][0].a, 1)
      assert.equal(multi[1][0].v, 'two')
      const [ex] = await c.execute(`SELECT id, v, ? + 1 AS n FROM ${T} WHERE id = ?`, [41, 2])
      assert.deepEqual(ex, [{id: 2, v: 'two', n: 42}])
      await c.execute(`INSERT INTO ${T} VALUES (?, ?)`, [3, 'three'])
      await assert.rejects(c.execute(`DELETE FROM ${T}`), (e: Error & {errno?: number; sqlState?: string}) => e.errno === ER_TABLEACCESS_DENIED_ERROR && e.sqlState === '42000' && /unbounded-writes/.test(e.message))
      await assert.rejects(c.query(`TRUNCATE ${T}`), /no-drop/)
      const [after] = await c.execute(`SELECT count(*) AS n FROM ${T} WHERE id > ?`, [0])
      assert.equal(Number((after as {n: number}[])[0].n), 3)
      await c.changeUser({database: 'test'}).catch(() => undefined)
    } finally {
      c.destroy()
    }
  })

  it('COM_INIT_DB is judged as USE and passes; an unknown database errors from the server', async () => {
    const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'x'})
    try {
      await c.query('USE test')
      const [r] = await c.query('SELECT database() AS d')
      assert.equal((r as {d: string}[])[0].d, 'test')
    } finally {
      c.destroy()
    }
    const r = await mysql(h.port, 'select 1', {db: 'no_such_db_hoop'})
    assert.match(r.stderr, /Unknown database/)
  })
})

describe('mysql engine: credential injection', function () {
  const PW = 'Inj3cted-pw-' + process.pid
  before(async () => {
    const c = await admin()
    await c.query(`CREATE USER IF NOT EXISTS hoop_t@'%' IDENTIFIED BY '${PW}'; GRANT ALL ON test.* TO hoop_t@'%'`)
    await c.end()
  })
  after(async () => {
    const c = await admin()
    await c.query(`DROP USER IF EXISTS hoop_t@'%'`)
    await c.end()
  })

  it('logs in as the stored user with mysql_native_password; the client sends no password', async () => {
    const h = await startHarness({target: {username: 'hoop_t', password: PW}})
    try {
      const r = await mysql(h.port, 'select current_user()', {user: 'developer'})
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.trim(), 'hoop_t@%')
      assert.equal(h.results.length >= 0, true)
    } finally {
      await h.close()
    }
    assert.equal(h.results[0]?.startupUser, 'developer')
  })

  it('a wrong stored password: the client gets the target\'s refusal, never the password', async () => {
    const wrong = 'Wr0ng-secret-' + process.pid
    const h = await startHarness({target: {username: 'hoop_t', password: wrong}})
    try {
      const r = await mysql(h.port, 'select 1')
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /hoop: the target refused the login: Access denied for user 'hoop_t'/)
      assert.ok(!r.stderr.includes(wrong))
    } finally {
      await h.close()
    }
  })

  it('an unreachable target: ERR with "hoop: cannot reach target"', async () => {
    const h = await startHarness({openUpstream: () => connect(1)})
    try {
      const r = await mysql(h.port, 'select 1')
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /hoop: cannot reach target: .*ECONNREFUSED/)
    } finally {
      await h.close()
    }
  })
})

describe('mysql engine: malformed input', function () {
  let h: Harness
  before(async () => {
    h = await startHarness({judge: tableJudge([], allow()), maxPacketBytes: 1 << 20, target: {username: 'root'}})
  })
  after(() => h.close())

  it('an unknown command gets ERR and the session stays usable', async () => {
    const c = await RawClient.open(h.port)
    c.sock.write(encodePacket(Buffer.from([0x99, 1, 2, 3]), 0).bytes)
    const err = await c.read()
    assert.equal(err?.payload[0], 0xff)
    assert.match(decodeErr(err!.payload).message, /hoop: unsupported command 0x99/)
    c.sock.write(encodePacket(Buffer.from([COM.BINLOG_DUMP, 0, 0, 0, 0]), 0).bytes)
    assert.match(decodeErr((await c.read())!.payload).message, /unsupported command COM_BINLOG_DUMP/)
    c.sock.write(encodePacket(Buffer.from([COM.STMT_EXECUTE, 1]), 0).bytes)
    assert.match(decodeErr((await c.read())!.payload).message, /malformed COM_STMT_EXECUTE/)
    c.sock.write(encodePacket(Buffer.from([COM.STMT_EXECUTE, 77, 0, 0, 0, 0, 1, 0, 0, 0]), 0).bytes)
    assert.match(decodeErr((await c.read())!.payload).message, /unknown prepared statement handler \(77\)/)
    c.sock.write(encodePacket(Buffer.concat([Buffer.from([COM.QUERY]), Buffer.from("select 'alive'")]), 0).bytes)
    const first = await c.read()
    assert.equal(first?.payload[0], 1) // one column
    c.sock.destroy()
  })

  it('an oversized packet is refused from its header (ERR 1153, then close), before any buffering', async () => {
    const c = await RawClient.open(h.port)
    const head = Buffer.from([0xff, 0xff, 0x7f, 0]) // 8 MiB declared, limit 1 MiB
    c.sock.write(head)
    const rest = await c.untilClose()
    assert.equal(rest.length, 1)
    assert.equal(decodeErr(rest[0].payload).code, ER_NET_PACKET_TOO_LARGE)
    assert.match(decodeErr(rest[0].payload).message, /exceeds the limit of 1048576/)
  })

  it('a truncated packet followed by close, a garbage handshake: no crash, sessions end', async () => {
    const c = await RawClient.open(h.port)
    c.sock.end(Buffer.from([50, 0, 0, 0, COM.QUERY, 0x73]))
    await c.untilClose()
    const s = net.connect(h.port, '127.0.0.1')
    const got: Buffer[] = []
    s.on('data', (d) => got.push(d))
    await new Promise((r) => s.once('connect', r))
    s.write(encodePacket(Buffer.from('garbage'), 1).bytes)
    await new Promise((r) => s.once('close', r))
    const all = Buffer.concat(got)
    const packets: Packet[] = []
    new PacketFramer(1 << 24).push(all, (p) => packets.push(p))
    const last = packets[packets.length - 1]
    assert.equal(last.payload[0], 0xff)
    assert.match(decodeErr(last.payload).message, /hoop: invalid handshake response/)
    // And the harness still serves.
    const r = await mysql(h.port, 'select 7')
    assert.equal(r.stdout, '7\n')
  })
})
