// Masking through views (issue 12): MariaDB reports a view's column with the view as its origin,
// so a mask rule on `m.email` must follow `CREATE VIEW v AS SELECT email AS contact FROM m` to
// mask `v.contact`, expressions over it, views over it, and errors and warnings quoting it. The
// oracle is the raw bytes the client received, searched for the value and its transforms; each
// case first checks that the direct answer holds the value, so the test could fail.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import type {MaskPlan} from '../../../src/masking/types.js'
import {findLeaks} from '../../helpers/leak-oracle.js'
import {allow, answer, bytesOf, mysql, startHarness, type Harness} from './harness.js'

const T = `hoop_myview_${process.pid}`
const SECRET = 'victoria.quill@example.org'
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})
const plan: MaskPlan = {columns: [`${T}_m.email`], entities: [], ruleIds: ['mask-email']}
/** A chain of views over the unmasked table, `c9` over `c8` ... over `c1`: followed 8 deep, no deeper. */
const CHAIN = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `${T}_c${i}`)
const VIEWS = [...['vvv', 'vv', 'v', 'vj', 'vc', 'vu', 'vp', 'vr', 'vx', "q'v"].map((v) => `\`${T}_${v}\``), ...[...CHAIN].reverse()].join(', ')

describe('mysql engine: masking through views', function () {
  let h: Harness
  before(async () => {
    const c = await admin()
    await c.query(`DROP VIEW IF EXISTS ${VIEWS}; DROP TABLE IF EXISTS ${T}_m, ${T}_p; DROP PROCEDURE IF EXISTS ${T}_viaview;
      CREATE TABLE ${T}_m (id int, email varchar(100)); INSERT INTO ${T}_m VALUES (1, '${SECRET}');
      CREATE TABLE ${T}_p (id int, label varchar(20)); INSERT INTO ${T}_p VALUES (1, 'one'), (2, 'two');
      CREATE VIEW ${T}_v AS SELECT email AS contact, id FROM ${T}_m;
      CREATE VIEW ${T}_vv AS SELECT upper(contact) AS shout, id FROM ${T}_v;
      CREATE VIEW ${T}_vvv AS SELECT concat(shout, '') AS s, id FROM ${T}_vv;
      CREATE VIEW ${T}_vj AS SELECT m.email AS contact, p.label, p.id FROM ${T}_m m JOIN ${T}_p p ON p.id = m.id;
      CREATE VIEW ${T}_vc (a, b) AS SELECT id, email FROM ${T}_m;
      CREATE VIEW ${T}_vu AS SELECT email AS contact, id FROM ${T}_m WHERE id <=> 1;
      CREATE VIEW ${T}_vp AS SELECT id, upper(label) AS u FROM ${T}_p;
      CREATE VIEW ${T}_vr AS SELECT label AS contact FROM ${T}_p WHERE id = 1;
      CREATE VIEW \`${T}_q'v\` AS SELECT email AS contact, id FROM ${T}_m;
      ${CHAIN.map((v, i) => `CREATE VIEW ${v} AS SELECT ${i ? 'l, id' : 'label AS l, id'} FROM ${i ? CHAIN[i - 1] : `${T}_p`};`).join('\n      ')}
      CREATE PROCEDURE ${T}_viaview() BEGIN SELECT concat(contact, '') AS e FROM ${T}_v; END`)
    await c.end()
    h = await startHarness({judge: () => allow(plan), target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    const c = await admin()
    await c.query(`DROP VIEW IF EXISTS ${VIEWS}; DROP TABLE IF EXISTS ${T}_m, ${T}_p; DROP PROCEDURE IF EXISTS ${T}_viaview`)
    await c.end()
  })

  /** The direct answer holds the value; the answer through hoop does not, in any transform. */
  async function noLeak(sql: string | string[]): Promise<void> {
    const direct = await answer(3306, sql)
    assert.ok(findLeaks(bytesOf(direct), [SECRET]).length > 0, 'the direct answer holds the value')
    const through = await answer(h.port, sql)
    assert.deepEqual(findLeaks(bytesOf(through), [SECRET]), [])
  }

  for (const [name, sql] of [
    ['the view column', `SELECT contact FROM ${T}_v`],
    ['the view column by star', `SELECT * FROM ${T}_v`],
    ['an expression over it', `SELECT upper(contact) FROM ${T}_v`],
    ['a subquery over it', `SELECT (SELECT reverse(contact) FROM ${T}_v LIMIT 1) AS r`],
    ['a view over a view', `SELECT shout, lower(shout) FROM ${T}_vv`],
    ['a view over a view over a view', `SELECT s, lower(s) FROM ${T}_vvv`],
    ['a view joining masked and unmasked tables', `SELECT contact, label FROM ${T}_vj`],
    ['a view with a column list', `SELECT b, hex(b) FROM ${T}_vc`],
    ['a view the parser cannot read (masked whole)', `SELECT contact, concat(contact, '') FROM ${T}_vu`],
    ['a CALL whose body reads a view', `CALL ${T}_viaview()`],
    ['an error quoting the view column (a failed cast in a WHERE)', `UPDATE ${T}_p SET label = label WHERE id = (SELECT contact FROM ${T}_v WHERE id = 1)`],
    ['a warning quoting it, read back', [`SELECT id FROM ${T}_v WHERE cast(contact AS signed) = 1`, 'SHOW WARNINGS']],
    ['a statement after one that creates the view', `CREATE OR REPLACE VIEW ${T}_vx AS SELECT email AS contact FROM ${T}_m; SELECT upper(contact), contact FROM ${T}_vx`],
  ] as const) {
    it(`does not leak through ${name}`, async () => {
      await noLeak(sql as string | string[])
    })
  }

  it('keeps the unmasked columns of a view joining masked and unmasked tables', async () => {
    const r = await mysql(h.port, `SELECT label, contact, id FROM ${T}_vj`)
    assert.equal(r.stderr, '')
    assert.equal(r.stdout.trim(), 'one\t****\t1')
    const c = await mysql(h.port, `SELECT a, b FROM ${T}_vc`)
    assert.equal(c.stdout.trim(), '1\t****')
    const q = await mysql(h.port, `SELECT id, contact FROM \`${T}_q'v\``)
    assert.equal(q.stdout.trim(), '1\t****')
  })

  it('follows views over views 8 deep and masks a deeper one whole', async () => {
    const sql = (v: string) => `SELECT l, id FROM ${v} ORDER BY id`
    const direct = await answer(3306, sql(CHAIN[7]))
    assert.ok(direct.length > 4, direct.join(' '))
    assert.deepEqual(await answer(h.port, sql(CHAIN[7])), direct)
    const r = await mysql(h.port, sql(CHAIN[8]))
    assert.equal(r.stdout.trim(), '****\tNULL\n****\tNULL')
  })

  it('masks a view column whose view was replaced after the statement was prepared', async () => {
    const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'root', database: 'test'})
    try {
      const sql = `SELECT contact FROM ${T}_vr`
      assert.deepEqual((await c.execute(sql))[0], [{contact: 'one'}])
      const a = await admin()
      await a.query(`CREATE OR REPLACE VIEW ${T}_vr AS SELECT email AS contact FROM ${T}_m`)
      await a.end()
      assert.deepEqual((await c.execute(sql))[0], [{contact: '****'}])
    } finally {
      await c.end()
    }
  })

  for (const sql of [
    `SELECT id, u FROM ${T}_vp ORDER BY id`,
    `SELECT concat(label, '') AS l, id * 2 FROM ${T}_vj`,
    `SHOW CREATE VIEW ${T}_v`,
    `SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_NAME LIKE '${T}%' ORDER BY TABLE_NAME`,
    `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_NAME = '${T}_v' ORDER BY ORDINAL_POSITION`,
  ]) {
    it(`answers byte for byte what reads no masked value: ${sql.slice(0, 60)}`, async () => {
      const direct = await answer(3306, sql)
      assert.ok(direct.length > 4, direct.join(' '))
      assert.deepEqual(await answer(h.port, sql), direct)
    })
  }
})
