// Masking on every MySQL channel (issue 12): ERR packets and warnings must not carry a masked value
// out, under the gateway's real policy (built-in rules included). The oracle is every byte the
// engine sent to the client (a recording tap in front of the engine), searched for the value and
// simple transforms of it.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import {findLeaks} from '../../helpers/leak-oracle.js'
import {startTap, type Tap} from '../../helpers/tap.js'
import {analyst, policyJudge} from '../guardrails/judge.js'
import {startHarness, type Harness} from './harness.js'

const T = `hoop_mych_${process.pid}`
const SECRET = 'victoria.quill@example.org'
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})
const POLICY = `version: 1
rules:
  - {id: all, effect: allow}
  - {id: pii, effect: mask, mask: {columns: ["${T}.email"]}}
`

describe('mysql engine: masking on every channel (raw bytes, real policy)', function () {
  let h: Harness
  let tap: Tap
  const judge = policyJudge('mysql', POLICY, analyst)
  before(async () => {
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}; CREATE TABLE ${T} (id int primary key, email varchar(100) unique, note text); INSERT INTO ${T} VALUES (1, '${SECRET}', 'plain'), (2, 'other@example.net', 'n2');`)
    await c.end()
    h = await startHarness({judge: (sql) => judge.judge(sql), target: {username: 'root'}, sqlSession: () => judge.mysqlSession()})
    tap = await startTap(h.port)
  })
  after(async () => {
    await tap.close()
    await h.close()
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}`)
    await c.end()
  })

  async function attack(...statements: string[]): Promise<{bytes: Buffer; errors: string[]}> {
    judge.reset()
    tap.reset()
    const errors: string[] = []
    const c = await mysql2.createConnection({host: '127.0.0.1', port: tap.port, user: 'anyone', database: 'test'})
    try {
      for (const sql of statements) await c.query(sql).catch((e: Error) => errors.push(e.message))
    } finally {
      await c.end()
    }
    return {bytes: tap.received(), errors}
  }

  for (const [name, statements] of [
    ['a strict-mode UPDATE quotes the value it compared', [`update ${T} set note = note where id = email`]],
    ['a strict-mode DELETE quotes it too', [`delete from ${T} where id = email`]],
    ['a cast warning, read with SHOW WARNINGS', [`select email + 0 from ${T}`, 'show warnings']],
    ['the same warning through SHOW ERRORS and a disguised SHOW', [`select cast(email as double) from ${T}`, '/* x */ SHOW   WARNINGS', 'show errors']],
    ['a user variable laundering the value (refused by policy)', [`select email into @v from ${T} where id = 1`, 'select @v']],
    ['a duplicate-key error from INSERT ... SELECT (refused by policy)', [`insert into ${T} (id, email) select 3, email from ${T} where id = 1`]],
  ] as const) {
    it(`${name}: no form of the value reaches the client`, async () => {
      const r = await attack(...statements)
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [], r.errors.join(' | '))
    })
  }

  it('after SET sql_mode = ANSI_QUOTES, a double-quoted name is read as the column it is (masked)', async () => {
    tap.reset()
    judge.reset()
    const c = await mysql2.createConnection({host: '127.0.0.1', port: tap.port, user: 'anyone', database: 'test'})
    try {
      await c.query("SET sql_mode = 'ANSI_QUOTES'")
      const [rows] = await c.query(`select concat("email", '') as e from ${T} where id = 1`)
      assert.deepEqual(rows, [{e: '****'}])
    } finally {
      await c.end()
    }
    assert.deepEqual(findLeaks(tap.received(), [SECRET]), [])
  })

  it('a statement that reads no masked column keeps its error text', async () => {
    const r = await attack(`update ${T} set note = note where id = note`)
    // Directly MariaDB answers: Truncated incorrect DECIMAL value: 'plain'
    assert.match(r.errors.join(' | '), /Truncated incorrect DECIMAL value: 'plain'/)
  })
})

describe('mysql engine: client character sets that cannot be read safely', function () {
  it('a client asking for gbk is refused at the handshake; utf8mb4 works', async () => {
    const h = await startHarness({target: {username: 'root'}})
    try {
      await assert.rejects(mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'x', database: 'test', charset: 'GBK_CHINESE_CI'}), /character set/)
      const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'x', database: 'test', charset: 'UTF8MB4_GENERAL_CI'})
      const [rows] = await c.query('select 1 as one')
      assert.deepEqual(rows, [{one: 1}])
      await c.end()
    } finally {
      await h.close()
    }
  })
})
