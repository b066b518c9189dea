// "No result without a record" over the wire: the PostgreSQL and MySQL engines with the real
// AuditLog (SQLite in a temp dir), the real servers and raw clients that keep every byte they get.
// A trigger makes the commit of a marked statement's record fail for real. Hold mode: the
// statement has run, and not one byte of its response reaches the client, only the
// AUDIT_UNAVAILABLE error (PostgreSQL FATAL ErrorResponse, MySQL ERR), then the close.
// Strict mode: the statement is refused before it runs, and the session goes on.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import pg from 'pg'
import {events} from '../../../src/audit/events.js'
import {AuditLog} from '../../../src/audit/log.js'
import type {AuditMode} from '../../../src/engines/gate.js'
import type {Frame} from '../../../src/protocol/pg/framer.js'
import {B, decodeErrorFields, encodeBind, encodeExecute, encodeParse} from '../../../src/protocol/pg/messages.js'
import {COM} from '../../../src/protocol/mysql/constants.js'
import {encodePacket, type Packet} from '../../../src/protocol/mysql/framer.js'
import {decodeErr} from '../../../src/protocol/mysql/messages.js'
import {PgRawClient} from '../../helpers/pg-raw.js'
import {alice, openDb, tempDir} from '../../unit/audit/_helpers.js'
import {RawClient, startHarness as startMysqlHarness, type Harness as MysqlHarness} from '../mysql/harness.js'
import {startHarness, type Harness} from '../pg/harness.js'

const SCHEMA = `hoop_hold_${process.pid}`
const MARK = 'hoop_fail_record'
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})
const mysqlAdmin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test'})

async function sql(text: string): Promise<number[]> {
  const c = admin()
  await c.connect()
  try {
    return (await c.query<{n: number}>(text)).rows.map((r) => r.n)
  } finally {
    await c.end()
  }
}

const types = (frames: Frame[]) => frames.map((f) => String.fromCharCode(f.type)).join('')

describe('audit hold and strict modes with a failing audit store', () => {
  let t: ReturnType<typeof tempDir>
  let db: ReturnType<typeof openDb>
  let log: AuditLog

  before(async () => {
    for (const ddl of [`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`, `CREATE SCHEMA ${SCHEMA}`, `CREATE TABLE ${SCHEMA}.t (n int)`]) await sql(ddl)
    const my = await mysqlAdmin()
    await my.query(`DROP TABLE IF EXISTS ${SCHEMA}`)
    await my.query(`CREATE TABLE ${SCHEMA} (n int)`)
    await my.end()
    t = tempDir()
    db = openDb(t.dir)
    log = AuditLog.open({db, dataDir: t.dir})
    db.exec(`CREATE TRIGGER fail_marked BEFORE INSERT ON audit_events WHEN NEW.payload LIKE '%${MARK}%' BEGIN SELECT RAISE(ABORT, 'disk full'); END`)
  })
  after(async () => {
    await log.close()
    db.close()
    t.cleanup()
    await sql(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
    const my = await mysqlAdmin()
    await my.query(`DROP TABLE IF EXISTS ${SCHEMA}`)
    await my.end()
  })

  /** The gate's record hook, on the real log. */
  const beforeForward = (s: {text: string}, mode: AuditMode) =>
    log.append(events.statement({session: 's', identity: alice, connection: 'db', statementId: '1', text: s.text, decision: 'allow'}), {overlap: mode === 'hold'}).then(() => undefined)
  const harness = (audit: AuditMode) => startHarness({audit, beforeForward})
  const rows = () => sql(`SELECT n FROM ${SCHEMA}.t ORDER BY n`)

  describe('PostgreSQL', () => {
    let h: Harness
    afterEach(() => h.close())

    it('hold: a statement whose record fails ran, but the client gets no byte of its response: only FATAL AUDIT_UNAVAILABLE, then the close', async () => {
      h = await harness('hold')
      const c = await PgRawClient.open(h.port)
      const ok = await c.query(`INSERT INTO ${SCHEMA}.t VALUES (1)`)
      assert.equal(types(ok.frames), 'CZ', 'a recorded statement is answered as usual')
      const withheld = await c.query(`INSERT INTO ${SCHEMA}.t VALUES (2) -- ${MARK}`)
      assert.equal(types(withheld.frames), 'E', 'one ErrorResponse and nothing else (no CommandComplete, no ReadyForQuery)')
      const e = decodeErrorFields(withheld.frames[0])
      assert.equal(e.S, 'FATAL')
      assert.equal(e.C, '42501')
      assert.match(e.M, /^hoop: AUDIT_UNAVAILABLE: .*withheld/)
      assert.ok(!withheld.bytes.includes('INSERT 0 1'), 'the command tag never leaves')
      assert.deepEqual(await rows(), [1, 2], 'the statement did run: its response existed and was withheld')
      c.close()
      const other = await PgRawClient.open(h.port)
      assert.equal(types((await other.query('SELECT 1')).frames), 'TDCZ', 'the gateway keeps serving other sessions')
      other.close()
    })

    it('hold: a pipeline with a failing record in the middle: none of the pipeline\'s answers reach the client', async () => {
      h = await harness('hold')
      const c = await PgRawClient.open(h.port)
      const step = (name: string, n: number, mark = '') => [encodeParse(name, `INSERT INTO ${SCHEMA}.t VALUES (${n})${mark}`), encodeBind('', name), encodeExecute('', 0)]
      const got = await c.send(...step('a', 3), ...step('b', 4, ` -- ${MARK}`), ...step('c', 5))
      assert.equal(types(got.frames), 'E', 'no ParseComplete, BindComplete, CommandComplete or ReadyForQuery')
      assert.equal(decodeErrorFields(got.frames[0]).S, 'FATAL')
      c.close()
      await sql(`DELETE FROM ${SCHEMA}.t`)
    })

    it('hold: a pipeline whose records all commit is answered byte for byte as PostgreSQL answers it, in order', async () => {
      h = await harness('hold')
      const pipeline = Array.from({length: 40}, (_, i) => [encodeParse('', `SELECT ${i} AS n, repeat('x', ${i}) AS pad`), encodeBind('', ''), encodeExecute('', 0)]).flat()
      const direct = await PgRawClient.open(5432)
      const via = await PgRawClient.open(h.port)
      const want = await direct.send(...pipeline)
      const got = await via.send(...pipeline)
      assert.equal(types(want.frames), '12DC'.repeat(40) + 'Z')
      assert.ok(got.bytes.equals(want.bytes), 'held, not changed or reordered')
      direct.close()
      via.close()
    })

    it('strict: a statement whose record fails is refused before it runs, and the session goes on', async () => {
      h = await harness('strict')
      const c = await PgRawClient.open(h.port)
      const refused = await c.query(`INSERT INTO ${SCHEMA}.t VALUES (6) -- ${MARK}`)
      assert.equal(types(refused.frames), 'EZ')
      const e = decodeErrorFields(refused.frames[0])
      assert.equal(e.S, 'ERROR')
      assert.match(e.M, /^hoop: AUDIT_UNAVAILABLE: .*not run/)
      assert.equal(refused.frames[1].type, B.ReadyForQuery)
      assert.deepEqual(await rows(), [], 'never reached the database')
      assert.equal(types((await c.query(`INSERT INTO ${SCHEMA}.t VALUES (7)`)).frames), 'CZ')
      assert.deepEqual(await rows(), [7])
      c.close()
    })
  })

  describe('MySQL', () => {
    let h: MysqlHarness
    /** The first packet of the answer (an INSERT's is its only one: OK or ERR). */
    const query = async (c: RawClient, text: string): Promise<Packet | undefined> => {
      c.sock.write(encodePacket(Buffer.concat([Buffer.from([COM.QUERY]), Buffer.from(text)]), 0).bytes)
      return c.read()
    }
    const myRows = async () => {
      const my = await mysqlAdmin()
      const [r] = await my.query(`SELECT n FROM ${SCHEMA} ORDER BY n`)
      await my.end()
      return (r as {n: number}[]).map((x) => x.n)
    }
    afterEach(() => h.close())

    it('hold: a statement whose record fails ran, but the client gets only an ERR saying AUDIT_UNAVAILABLE, then the close', async () => {
      h = await startMysqlHarness({audit: 'hold', beforeForward, target: {username: 'root'}})
      const c = await RawClient.open(h.port)
      const ok = await query(c, `INSERT INTO ${SCHEMA} VALUES (1)`)
      assert.deepEqual([ok?.payload[0], ok?.seq], [0x00, 1], 'a recorded statement gets its OK')
      const withheld = await query(c, `INSERT INTO ${SCHEMA} VALUES (2) -- ${MARK}`)
      assert.equal(withheld?.payload[0], 0xff, 'an ERR, not the OK')
      assert.equal(withheld.seq, 1, 'numbered as the first packet of the response')
      assert.match(decodeErr(withheld.payload).message, /^hoop: AUDIT_UNAVAILABLE: .*withheld/)
      assert.deepEqual(await c.untilClose(), [], 'nothing after it but the close')
      assert.deepEqual(await myRows(), [1, 2], 'the statement did run: its OK existed and was withheld')
    })

    it('strict: a statement whose record fails is refused before it runs, and the session goes on', async () => {
      h = await startMysqlHarness({audit: 'strict', beforeForward, target: {username: 'root'}})
      const c = await RawClient.open(h.port)
      const refused = await query(c, `INSERT INTO ${SCHEMA} VALUES (3) -- ${MARK}`)
      assert.match(decodeErr(refused!.payload).message, /^hoop: AUDIT_UNAVAILABLE: .*not run/)
      assert.deepEqual(await myRows(), [1, 2])
      assert.equal((await query(c, `INSERT INTO ${SCHEMA} VALUES (4)`))?.payload[0], 0x00)
      assert.deepEqual(await myRows(), [1, 2, 4])
      c.sock.destroy()
    })
  })
})
