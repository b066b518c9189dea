// Masking against the real server: origin masking through RowDescription + catalog, taint through
// the parse tree for computed columns, value detectors for everything else, COPY, binary results.
import {strict as assert} from 'node:assert'
import pg from 'pg'
import type {MaskPlan} from '../../../src/masking/types.js'
import {B} from '../../../src/protocol/pg/messages.js'
import {PgRawClient} from '../../helpers/pg-raw.js'
import {allow, psql, psqlScript, startHarness, type Harness} from './harness.js'

const S = `hoop_pgm_${process.pid}`
const EMAIL = 'alice@example.com'
const CARD = '4111111111111111'
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})

const columnsOnly: MaskPlan = {columns: [`${S}.customers.email`, 'customers.card', '*.secret_num'], entities: [], ruleIds: ['mask-pii']}
const withDetectors: MaskPlan = {...columnsOnly, entities: ['email', 'phone', 'card', 'iban', 'ssn', 'jwt', 'api_key']}

describe('pg engine: masking', function () {
  let cols: Harness
  let all: Harness
  before(async () => {
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      CREATE TABLE ${S}.customers (id int, email text, card text, secret_num int, note text);
      INSERT INTO ${S}.customers VALUES (1, '${EMAIL}', '${CARD}', 1234, 'call +44 20 7946 0958 or mail bob@corp.example, iban GB82 WEST 1234 5698 7654 32, ssn 123-45-6789');
      CREATE VIEW ${S}.v AS SELECT id, email AS contact FROM ${S}.customers;
      CREATE VIEW ${S}.v2 AS SELECT id, lower(contact) AS c2 FROM ${S}.v;`)
    await c.end()
    cols = await startHarness({judge: () => allow(columnsOnly)})
    all = await startHarness({judge: () => allow(withDetectors)})
  })
  after(async () => {
    await cols.close()
    await all.close()
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await c.end()
  })

  const q = async (h: Harness, sql: string) => {
    const r = await psql(h.port, sql)
    assert.equal(r.stderr, '', r.stderr)
    return r.stdout.trim()
  }

  it('masks a column by its origin, under an alias, and leaves other columns alone', async () => {
    assert.equal(await q(cols, `select id, email from ${S}.customers`), '1|****')
    assert.equal(await q(cols, `select c.email as not_an_email, c.id as n from ${S}.customers c`), '****|1')
    assert.equal(await q(cols, `select secret_num from ${S}.customers`), '') // int column: NULL
  })

  for (const [name, sql] of [
    ['cast', `select email::varchar(100) from ${S}.customers`],
    ['function', `select upper(email) from ${S}.customers`],
    ['concatenation', `select 'x' || email || 'y' from ${S}.customers`],
    ['scalar subquery', `select (select email from ${S}.customers limit 1)`],
    ['FROM subquery', `select lower(e) from (select email as e from ${S}.customers) s`],
    ['CTE', `with w as (select email from ${S}.customers) select concat(email, '') from w`],
    ['view', `select contact from ${S}.v`],
    ['a function of a view column', `select upper(contact) from ${S}.v`],
    ['a view over a view', `select c2 from ${S}.v2`],
    ['a function of a view-over-view column', `select upper(c2) || '' from ${S}.v2`],
    ["a field of a view's whole row", `select (w).contact from ${S}.v w`],
  ] as const) {
    it(`masks through ${name}`, async () => {
      const out = await q(cols, sql)
      assert.ok(!out.includes('alice'), out)
      assert.match(out, /\*\*\*\*/)
    })
  }

  /** The first cell of each DataRow the statements' last answer holds, as the client got it (null for NULL). */
  const firstCells = async (port: number, statements: string[]) => {
    const c = await PgRawClient.open(port)
    try {
      let frames: {type: number; bytes: Buffer}[] = []
      for (const sql of statements) frames = (await c.query(sql)).frames
      return frames.filter((f) => f.type === B.DataRow).map((f) => (f.bytes.readInt32BE(7) < 0 ? null : f.bytes.toString('utf8', 11, 11 + f.bytes.readInt32BE(7))))
    } finally {
      c.close()
    }
  }

  describe('whole-row references mask only the masked fields', () => {
    const masked = (text: string, json: boolean) => {
      const q = (v: string) => (json ? `"${v}"` : v)
      return text.replace(q(EMAIL), q('****')).replace(q(CARD), q('****')).replace(/(: ?)1234\b/, '$1"****"').replace(/,1234,/, ',****,')
    }
    for (const [name, sql, json] of [
      ['row_to_json(c)', `select row_to_json(c) from ${S}.customers c`, true],
      ['to_jsonb(c)', `select to_jsonb(c) from ${S}.customers c`, true],
      ['pg_catalog.to_json(c.*)', `select pg_catalog.to_json(c.*) from ${S}.customers c`, true],
      ['ROW(c.*)', `select row(c.*) from ${S}.customers c`, false],
      ['c as a column', `select c from ${S}.customers c`, false],
    ] as const) {
      it(`${name}: the rest is the server's text byte for byte`, async () => {
        const [direct] = await firstCells(5432, [sql])
        const [through] = await firstCells(cols.port, [sql])
        assert.ok(direct?.includes(EMAIL) && direct.includes('call +44'), direct ?? 'NULL')
        assert.equal(through, masked(direct ?? '', json))
        assert.ok(!through?.includes('alice') && !through?.includes(CARD), through ?? 'NULL')
      })
    }

    it("a view's whole row masks the column it derives from a masked one", async () => {
      const [through] = await firstCells(cols.port, [`select to_json(v) from ${S}.v v`])
      assert.equal(through, '{"id":1,"contact":"****"}')
    })

    for (const [name, statements] of [
      ['a column added in the open transaction (a key the catalog does not know)', ['begin', `alter table ${S}.customers add column extra text`, `select row_to_json(c) from ${S}.customers c`]],
      ['a client encoding other than UTF-8', ['set client_encoding to latin1', `select row_to_json(c) from ${S}.customers c`]],
      ['a composite once the session read masked data', [`select email from ${S}.customers`, `select row(c.*) from ${S}.customers c`]],
    ] as const) {
      it(`masks the whole value for ${name}`, async () => {
        const cells = await firstCells(cols.port, [...statements])
        // JSON becomes "****"; a composite (not a text type) NULL.
        assert.ok(cells[0] === '"****"' || cells[0] === null, String(cells[0]))
      })
    }

    it('masks the whole value in binary format', async () => {
      const c = new pg.Client({host: '127.0.0.1', port: cols.port, user: 'postgres', database: 'test'})
      await c.connect()
      try {
        const r = await c.query({text: `select row_to_json(c) as j from ${S}.customers c where id = $1`, values: [1], binary: true} as pg.QueryConfig)
        const text = JSON.stringify(r.rows[0].j instanceof Buffer ? r.rows[0].j.toString() : r.rows[0].j)
        assert.ok(!text.includes('alice') && !text.includes('call +44'), text)
      } finally {
        await c.end()
      }
    })
  })

  it('a view looked up under one mask plan is analysed again under another (catalog cache keyed by plan)', async () => {
    // First statement masks nothing on the view's source; the second masks customers.email. The
    // catalog's cached view analysis must not carry the first plan's answer over to the second.
    let n = 0
    const h = await startHarness({judge: () => allow(n++ === 0 ? {columns: ['other.unrelated'], entities: [], ruleIds: ['r1']} : columnsOnly)})
    try {
      const r = await psqlScript(h.port, `select contact from ${S}.v;\nselect contact from ${S}.v;\n`)
      assert.deepEqual(r.stdout.trim().split('\n'), [EMAIL, '****'])
    } finally {
      await h.close()
    }
  })

  it('a table made in the open transaction after the session read masked data is masked (it may hold a copy)', async () => {
    const r = await psqlScript(
      cols.port,
      `begin;\ncreate table ${S}.copyhole (x text);\ninsert into ${S}.copyhole select email from ${S}.customers;\nselect x from ${S}.copyhole;\nrollback;\n`,
    )
    assert.ok(!r.stdout.includes('alice'), r.stdout)
    assert.match(r.stdout, /\*\*\*\*/)
  })

  it('masks a card number split into pieces', async () => {
    const out = await q(cols, `select substring(card, 1, 4), substring(card, 5, 4), substr(card, 9, 4), right(card, 4) from ${S}.customers`)
    assert.equal(out, '****|****|****|****')
  })

  it('masks rows fetched from a cursor', async () => {
    const r = await psqlScript(cols.port, `begin;\ndeclare cur cursor for select id, upper(email) as e from ${S}.customers;\nfetch all from cur;\ncommit;\n`)
    assert.equal(r.stdout.trim(), '1|****')
  })

  it('masks COPY TO STDOUT for a table and for a query', async () => {
    assert.equal((await q(cols, `copy ${S}.customers (id, email, card) to stdout`)).split('\t').join('|'), '1|****|****')
    assert.equal((await q(cols, `copy (select id, lower(email) from ${S}.customers) to stdout with (format csv)`)), '1,****')
  })

  it('masks every row of a COPY TO of many rows, which reach the engine as runs of CopyData, and counts each row', async () => {
    const sql = `copy (select g, email, 'x' || g from ${S}.customers, generate_series(1, 20000) g) to stdout`
    const lines = (await q(cols, sql)).split('\n')
    assert.equal(lines.length, 20000)
    lines.forEach((l, i) => assert.equal(l, `${i + 1}\t****\tx${i + 1}`))
    const after = cols.events.filter((e) => e.hook === 'afterStatement' && e.sql === sql)
    assert.equal(after.length, 1)
    assert.equal(after[0].rows, 20000)
    assert.deepEqual(after[0].masked, {[`derived:${S}.customers.email`]: 20000})
  })

  it('masks only the rows of a COPY TO that hold a match and leaves the rows around them byte for byte (runs with masked and unmasked rows)', async () => {
    const sql = `copy (select g, case when g % 3 = 0 then 'mail bob@corp.example' else 'plain text ' || g end from generate_series(1, 9000) g) to stdout`
    const lines = (await q(all, sql)).split('\n')
    assert.equal(lines.length, 9000)
    lines.forEach((l, i) => assert.equal(l, (i + 1) % 3 === 0 ? `${i + 1}\tmail ****@****` : `${i + 1}\tplain text ${i + 1}`))
    const after = all.events.filter((e) => e.hook === 'afterStatement' && e.sql === sql)
    assert.deepEqual([after.length, after[0].rows, after[0].masked], [1, 9000, {'entity:email': 3000}])
  })

  it('passes a COPY TO of many rows with no masked column through unchanged, and counts each row', async () => {
    const sql = `copy (select g, md5(g::text) from generate_series(1, 20000) g) to stdout`
    const direct = await psql(5432, sql)
    assert.equal(direct.stderr, '')
    assert.equal(await q(cols, sql), direct.stdout.trim())
    const after = cols.events.filter((e) => e.hook === 'afterStatement' && e.sql === sql)
    assert.deepEqual([after.length, after[0].rows, after[0].masked], [1, 20000, {}])
  })

  it('masks binary-format results from the pg driver (text types replaced, others NULL)', async () => {
    const c = new pg.Client({host: '127.0.0.1', port: cols.port, user: 'postgres', database: 'test'})
    await c.connect()
    try {
      const config = {text: `select id, email, secret_num from ${S}.customers where id = $1`, values: [1], binary: true} as pg.QueryConfig
      const r = await c.query(config)
      assert.equal(r.rows[0].email.toString(), '****')
      assert.equal(r.rows[0].secret_num, null)
      assert.equal(r.rows[0].id, 1) // binary int4, decoded by the driver: untouched
    } finally {
      await c.end()
    }
  })

  it('value detectors catch PII that arrives any other way and replace only the match', async () => {
    const out = await q(all, `select note from ${S}.customers`)
    assert.ok(!out.includes('bob@corp.example'), out)
    assert.ok(!out.includes('7946 0958'), out)
    assert.ok(!out.includes('123-45-6789'), out)
    assert.ok(!out.includes('WEST 1234'), out)
    assert.match(out, /^call .* or mail \*\*\*\*@\*\*\*\*, iban GB/)
    const json = await q(all, `select json_build_object('k', note, 'c', '4111-1111-1111-1111')::text from ${S}.customers`)
    assert.ok(!json.includes('4111-1111-1111-'), json)
    assert.match(json, /1111/) // last four kept
  })

  it('keeps a per-session masking report', async () => {
    const h = await startHarness({judge: () => allow(withDetectors)})
    await psqlScript(h.port, `select email, note from ${S}.customers;\nselect upper(email) from ${S}.customers;\n`)
    await h.close()
    const rep = h.results[0].maskingReport
    assert.equal(rep[`column:${S}.customers.email`], 1)
    assert.ok(rep['entity:email'] >= 1)
    assert.ok(Object.keys(rep).some((k) => k.startsWith('derived:')), JSON.stringify(rep))
    const after = h.events.filter((e) => e.hook === 'afterStatement')
    assert.equal(after[0].masked?.[`column:${S}.customers.email`], 1)
  })
})
