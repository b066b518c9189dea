// Precision (issue 12): with a mask rule active that matches none of the columns a statement
// touches, the statement is answered byte for byte as PostgreSQL answers it directly. Masking that
// breaks unrelated results gets turned off, so this suite guards against over-masking.
import {strict as assert} from 'node:assert'
import pg from 'pg'
import type {MaskPlan} from '../../../src/masking/types.js'
import {B} from '../../../src/protocol/pg/messages.js'
import {PgRawClient, type RawExchange} from '../../helpers/pg-raw.js'
import {allow, startHarness, type Harness} from './harness.js'

const S = `hoop_pgprec_${process.pid}`
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})
/** A plan that masks a column of another table: active, but touching nothing here. */
const elsewhere: MaskPlan = {columns: [`${S}.secrets.value`], entities: [], ruleIds: ['mask-elsewhere']}

/**
 * The exchange's bytes with RowDescription table OIDs zeroed: a table created in each run has its
 * own OID, the only byte that may differ between the two runs.
 */
function withoutTableOids(r: RawExchange): string {
  return r.frames
    .map((f) => {
      if (f.type !== B.RowDescription) return f.bytes.toString('latin1')
      const b = Buffer.from(f.bytes)
      let at = 7
      for (let i = 0; i < b.readInt16BE(5); i++) {
        at = b.indexOf(0, at) + 1 // field name
        b.writeUInt32BE(0, at)
        at += 18
      }
      return b.toString('latin1')
    })
    .join('')
}

describe('pg engine: precision (unmasked statements answered byte-identically under an active mask rule)', function () {
  let h: Harness
  before(async () => {
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      CREATE TABLE ${S}.secrets (id int, value text);
      CREATE TABLE ${S}.a (id int primary key, name text, n int);
      CREATE TABLE ${S}.b (id int, tag text);
      INSERT INTO ${S}.a VALUES (1, 'one', 10), (2, 'two', 20);
      INSERT INTO ${S}.b VALUES (1, 'x'), (3, 'z');
      CREATE VIEW ${S}.va AS SELECT id, upper(name) AS big FROM ${S}.a;
      -- An extension's functions and operators (citext's =, lower) are trusted code, not user code.
      CREATE EXTENSION IF NOT EXISTS citext SCHEMA ${S};`)
    const c2 = admin()
    await c2.connect()
    const ext = await c2.query(`SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'citext'`)
    await c2.query(`CREATE TABLE ${S}.ci (c ${ext.rows[0].nspname}.citext); INSERT INTO ${S}.ci VALUES ('One'), ('two')`)
    await c2.end()
    await c.end()
    h = await startHarness({judge: () => allow(elsewhere)})
  })
  after(async () => {
    await h.close()
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await c.end()
  })

  /** Runs the same script directly and through hoop; returns both byte streams (latin1). */
  async function both(statements: string[]): Promise<{direct: string; hoop: string}> {
    const run = async (port: number) => {
      const c = await PgRawClient.open(port)
      try {
        const parts: string[] = []
        for (const sql of statements) parts.push(withoutTableOids(await c.query(sql)))
        return parts.join('')
      } finally {
        c.close()
      }
    }
    return {direct: await run(5432), hoop: await run(h.port)}
  }

  for (const [name, statements] of [
    ['a plain select', [`select id, name from ${S}.a order by id`]],
    ['EXPLAIN', [`explain (costs off) select * from ${S}.a where n > 5`]],
    ['whole-row references', [`select row_to_json(t) from ${S}.a t order by id`, `select row(t.*) from ${S}.a t order by id`, `select to_jsonb(t), t from ${S}.a t order by id`]],
    ['views over an unmasked table', [`select big, lower(big), row_to_json(v) from ${S}.va v order by id`, `select big::int from ${S}.va`]],
    ['FULL JOIN ... USING', [`select * from ${S}.a full join ${S}.b using (id) order by id`]],
    ['computed columns next to t.*', [`select t.*, t.n * 2 as double from ${S}.a t order by id`]],
    ['RETURNING *', [`begin`, `update ${S}.a set n = n + 1 where id = 1 returning *`, `rollback`]],
    ['a table created in the open transaction', [`begin`, `create table ${S}.fresh (id int, label text)`, `insert into ${S}.fresh values (1, 'new')`, `select id, label, upper(label) from ${S}.fresh`, `rollback`]],
    ['built-in functions, operators and casts', [`select upper(name), length(name) + n, coalesce(n, 0)::text || 'x', now() is not null, count(*) over () from ${S}.a where name like 'o%' order by id`]],
    ["an extension's operators and functions", [`select c, c = 'ONE', lower(c), c || '!' from ${S}.ci order by c`]],
    ['an error raised by a built-in over an unmasked table', [`select name::int from ${S}.a`, `select 1 / (n - n) from ${S}.a`]],
    ['a cursor over an unmasked table, fetched later', [`begin`, `declare c cursor for select id, upper(name) from ${S}.a order by id`, `fetch 1 from c`, `move 1 in c`, `fetch all from c`, `rollback`]],
    ['ORDER BY, GROUP BY and LIMIT over an unmasked table', [`select name, count(*) from ${S}.a group by name order by upper(name) desc limit 1 offset 0`, `select id from ${S}.a order by name::int`]],
    ['COPY of a temp table', [`create temp table tmp_copy as select * from ${S}.a`, `copy tmp_copy to stdout`, `copy (select name from tmp_copy) to stdout with (format csv)`]],
  ] as const) {
    it(name, async () => {
      const r = await both([...statements])
      assert.equal(r.hoop, r.direct)
    })
  }
})
