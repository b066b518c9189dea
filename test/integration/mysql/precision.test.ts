// Precision and masking of CALL (issue 12): a CALL's result sets come from its procedure's body.
// With a column mask active, a CALL of a procedure whose body hoop reads in full and which reads no
// masked column is answered byte for byte as MariaDB answers it directly; any other CALL (a body
// reading a masked column, procedural code, a stored function, a masked argument) keeps its
// computed columns masked. The oracle is the packets themselves.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import type {MaskPlan} from '../../../src/masking/types.js'
import {encodeCommand} from '../../../src/protocol/mysql/commands.js'
import {CAP, COM, STATUS} from '../../../src/protocol/mysql/constants.js'
import {encodePacket} from '../../../src/protocol/mysql/framer.js'
import {isErr, isResultTerminator, statusOf} from '../../../src/protocol/mysql/messages.js'
import {findLeaks} from '../../helpers/leak-oracle.js'
import {allow, RawClient, startHarness, type Harness} from './harness.js'

const T = `hoop_myprec_${process.pid}`
const SECRET = 'victoria.quill@example.org'
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})
const plan: MaskPlan = {columns: [`${T}_m.email`], entities: [], ruleIds: ['mask-email']}

/** Every packet of a COM_QUERY's answer, each result in turn until one without MORE_RESULTS ("seq:hex"). */
async function answer(port: number, sql: string): Promise<string[]> {
  const c = await RawClient.open(port, {username: 'root', caps: CAP.MULTI_RESULTS})
  const out: Buffer[] = []
  const next = async () => {
    const p = await c.read()
    if (!p) throw new Error(`the connection closed after ${out.length} packets`)
    out.push(Buffer.concat([Buffer.from([p.seq]), p.payload]))
    return p.payload
  }
  try {
    c.sock.write(encodePacket(encodeCommand(COM.QUERY, sql), 0).bytes)
    for (;;) {
      let end = await next()
      if (isErr(end)) break
      if (end[0] !== 0x00) {
        // A result set (no CLIENT_DEPRECATE_EOF): column count, definitions, EOF, rows, EOF.
        const n = end[0]
        for (let i = 0; i <= n; i++) await next()
        while (!isResultTerminator((end = await next()), false));
      }
      if (!((statusOf(end) ?? 0) & STATUS.MORE_RESULTS_EXISTS)) break
    }
  } finally {
    c.sock.destroy()
  }
  return out.map((b) => `${b[0]}:${b.subarray(1).toString('hex')}`)
}

/** The payload bytes of an answer, for the leak oracle. */
const bytesOf = (packets: string[]) => Buffer.concat(packets.map((x) => Buffer.from(x.split(':')[1], 'hex')))

describe('mysql engine: CALL results (precision and masking)', function () {
  let h: Harness
  before(async () => {
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}_p, ${T}_m; DROP PROCEDURE IF EXISTS ${T}_clean; DROP PROCEDURE IF EXISTS ${T}_dirty;
      DROP PROCEDURE IF EXISTS ${T}_procedural; DROP PROCEDURE IF EXISTS ${T}_viafn; DROP PROCEDURE IF EXISTS ${T}_echo; DROP FUNCTION IF EXISTS ${T}_f;
      CREATE TABLE ${T}_p (id int, label varchar(20)); INSERT INTO ${T}_p VALUES (1, 'one'), (2, 'two');
      CREATE TABLE ${T}_m (id int, email varchar(100)); INSERT INTO ${T}_m VALUES (1, '${SECRET}');`)
    await c.query(`CREATE PROCEDURE ${T}_clean() BEGIN SELECT id, upper(label) AS u, id * 2 AS d FROM ${T}_p ORDER BY id; SELECT concat(label, '!') FROM ${T}_p; END`)
    await c.query(`CREATE PROCEDURE ${T}_dirty() BEGIN SELECT upper(label) FROM ${T}_p; SELECT concat(email, '') AS e FROM ${T}_m; END`)
    await c.query(`CREATE PROCEDURE ${T}_procedural() BEGIN DECLARE v varchar(100); SELECT email INTO v FROM ${T}_m LIMIT 1; SELECT concat(v, '') AS e; END`)
    await c.query(`CREATE FUNCTION ${T}_f() RETURNS varchar(100) READS SQL DATA RETURN (SELECT email FROM ${T}_m LIMIT 1)`)
    await c.query(`CREATE PROCEDURE ${T}_viafn() BEGIN SELECT concat(${T}_f(), '') AS e; END`)
    await c.query(`CREATE PROCEDURE ${T}_echo(x varchar(100)) BEGIN SELECT concat(x, '') AS e; END`)
    await c.end()
    h = await startHarness({judge: () => allow(plan), target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}_p, ${T}_m; DROP PROCEDURE IF EXISTS ${T}_clean; DROP PROCEDURE IF EXISTS ${T}_dirty;
      DROP PROCEDURE IF EXISTS ${T}_procedural; DROP PROCEDURE IF EXISTS ${T}_viafn; DROP PROCEDURE IF EXISTS ${T}_echo; DROP FUNCTION IF EXISTS ${T}_f`)
    await c.end()
  })

  for (const sql of [`CALL ${T}_clean()`, `call test.${T}_clean`, `CALL ${T}_echo('plain')`]) {
    it(`${sql}: reads no masked column, answered byte for byte`, async () => {
      const direct = await answer(3306, sql)
      assert.ok(direct.length > 4, direct.join(' '))
      assert.deepEqual(await answer(h.port, sql), direct)
    })
  }

  for (const [name, sql] of [
    ['a body that reads the masked column', `CALL ${T}_dirty()`],
    ['a procedural body', `CALL ${T}_procedural()`],
    ['a body calling a stored function that reads it', `CALL ${T}_viafn()`],
    ['an argument that reads it', `CALL ${T}_echo((SELECT email FROM ${T}_m LIMIT 1))`],
  ] as const) {
    it(`${name}: computed columns stay masked`, async () => {
      const direct = await answer(3306, sql)
      assert.ok(findLeaks(bytesOf(direct), [SECRET]).length > 0, 'the direct answer holds the value')
      const through = await answer(h.port, sql)
      assert.ok(through.length > 4, through.join(' '))
      assert.deepEqual(findLeaks(bytesOf(through), [SECRET]), [])
    })
  }
})
