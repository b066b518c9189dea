// Masking against the real MariaDB: origin masking from column definitions (org_table, org_name)
// so aliases do not unmask, taint through the parse tree for computed columns (CONCAT, UPPER,
// subqueries, derived tables, UNION), value detectors on every text cell, text and binary rows.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import type {MaskPlan} from '../../../src/masking/types.js'
import {allow, mysql, startHarness, type Harness} from './harness.js'

const T = `hoop_mym_${process.pid}`
const EMAIL = 'alice@example.com'
const CARD = '4111111111111111'
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})

const columnsOnly: MaskPlan = {columns: [`test.${T}.email`, `${T}.card`, '*.secret_num'], entities: [], ruleIds: ['mask-pii']}
const withDetectors: MaskPlan = {...columnsOnly, entities: ['email', 'phone', 'card', 'iban', 'ssn', 'jwt', 'api_key']}

describe('mysql engine: masking', function () {
  let cols: Harness
  let all: Harness
  let plain: Harness
  before(async () => {
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}; CREATE TABLE ${T} (id int, email varchar(100), card varchar(30), secret_num int, note text);
      INSERT INTO ${T} VALUES (1, '${EMAIL}', '${CARD}', 1234, 'mail bob@corp.example, iban GB82 WEST 1234 5698 7654 32, ssn 123-45-6789')`)
    await c.end()
    cols = await startHarness({judge: () => allow(columnsOnly), target: {username: 'root'}})
    all = await startHarness({judge: () => allow(withDetectors), target: {username: 'root'}})
    plain = await startHarness({target: {username: 'root'}})
  })
  after(async () => {
    await Promise.all([cols.close(), all.close(), plain.close()])
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}`)
    await c.end()
  })

  const q = async (h: Harness, sql: string) => {
    const r = await mysql(h.port, sql)
    assert.equal(r.stderr, '', r.stderr)
    return r.stdout.trim()
  }

  it('masks a column by its origin, under an alias, and leaves other columns alone', async () => {
    assert.equal(await q(cols, `select id, email from ${T}`), '1\t****')
    assert.equal(await q(cols, `select c.email as not_an_email, c.id as n from ${T} c`), '****\t1')
    assert.equal(await q(cols, `select secret_num, id from ${T}`), 'NULL\t1') // int column: NULL
    assert.equal(await q(cols, `select * from ${T}`).then((s) => s.split('\t').slice(0, 4).join('|')), '1|****|****|NULL')
    assert.equal(await q(plain, `select email from ${T}`), EMAIL)
  })

  for (const [name, sql] of [
    ['UPPER', `select upper(email) from ${T}`],
    ['CONCAT', `select concat('x', email, 'y') as c from ${T}`],
    ['CONCAT_WS over an alias', `select concat_ws('-', c.id, c.email) from ${T} c`],
    ['scalar subquery', `select (select email from ${T} limit 1) as e`],
    ['derived table', `select lower(e) from (select email as e from ${T}) s`],
    ['derived table with a plain column', `select e from (select email as e from ${T}) s`],
    ['CTE', `with w as (select email from ${T}) select concat(email, '') from w`],
    ['UNION', `select 'none' union select email from ${T}`],
    ['SUBSTRING pieces', `select substring(card, 1, 4), right(card, 4) from ${T}`],
    ['GROUP_CONCAT', `select group_concat(email) from ${T}`],
  ] as const) {
    it(`masks through ${name}`, async () => {
      const out = await q(cols, sql)
      assert.ok(!out.includes('alice') && !out.includes('4111'), out)
      assert.match(out, /\*\*\*\*/)
    })
  }

  it('leaves computed columns that read no masked column alone', async () => {
    assert.equal(await q(cols, `select upper('abc'), id + 1 from ${T}`), 'ABC\t2')
  })

  it('value detectors mask PII in any text cell, keeping the rest of the text', async () => {
    const out = await q(all, `select note from ${T}`)
    assert.ok(!out.includes('bob@corp.example'), out)
    assert.ok(!out.includes('123-45-6789'), out)
    assert.match(out, /^mail \*\*\*\*@\*\*\*\*, iban GB\*\*/)
    assert.equal(await q(all, `select 'write to eve@example.org' as m`), 'write to ****@****')
  })

  it('binary rows from prepared statements (mysql2 execute) are masked by origin, taint and detectors', async () => {
    const c = await mysql2.createConnection({host: '127.0.0.1', port: all.port, user: 'dev', database: 'test'})
    try {
      const [rows] = await c.execute(`SELECT id, email AS e, upper(card) AS k, secret_num, note FROM ${T} WHERE id = ?`, [1])
      const r = (rows as Record<string, unknown>[])[0]
      assert.equal(r.id, 1)
      assert.equal(r.e, '****')
      assert.equal(r.k, '****')
      assert.equal(r.secret_num, null)
      assert.ok(!String(r.note).includes('bob@corp.example'))
      const [txt] = await c.query(`SELECT email, id FROM ${T}`)
      assert.deepEqual(txt, [{email: '****', id: 1}])
    } finally {
      c.destroy()
    }
    await all.settle().catch(() => undefined)
    const ev = all.events.find((e) => e.hook === 'afterStatement' && e.sql.includes('upper(card)') && e.masked && Object.keys(e.masked).length)
    assert.ok(ev, JSON.stringify(all.events.slice(-4)))
    assert.equal(ev.masked?.[`column:test.${T}.email`], 1)
    assert.equal(ev.masked?.[`derived:${T}.card`], 1)
  })

  it('multi-statement results are masked per statement', async () => {
    const r = await mysql(cols.port, `select id from ${T}; select upper(email) from ${T}; select 'plain'$$`, {extra: ['--delimiter=$$']})
    assert.equal(r.stdout, '1\n****\nplain\n')
  })

  it('the masking report of the session counts masked cells', async () => {
    const h = await startHarness({judge: () => allow(columnsOnly), target: {username: 'root'}})
    try {
      await q(h, `select email, upper(email) from ${T}`)
      await h.settle()
    } finally {
      await h.close()
    }
    assert.deepEqual(h.results[0].maskingReport, {[`column:test.${T}.email`]: 1, [`derived:test.${T}.email`]: 1})
  })
})
