// Masking on every channel (issue 12): a statement that reads a masked column must not carry it out
// in an error, a notice, a notification, a reported setting or a function result. The oracle is a
// raw protocol client that keeps every byte the gateway sent, searched for the value and simple
// transforms of it — never the error text a driver would show.
import {strict as assert} from 'node:assert'
import pg from 'pg'
import type {MaskPlan} from '../../../src/masking/types.js'
import {findLeaks} from '../../helpers/leak-oracle.js'
import {PgRawClient} from '../../helpers/pg-raw.js'
import {encodeBind, encodeExecute} from '../../../src/protocol/pg/messages.js'
import {allow, startHarness, type Harness} from './harness.js'

const S = `hoop_pgch_${process.pid}`
const SECRET = 'victoria.quill@example.org'
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})
const plan: MaskPlan = {columns: [`${S}.people.email`], entities: [], ruleIds: ['mask-email']}
const userEq = `begin; create operator ${S}.= (leftarg = text, rightarg = text, function = ${S}.eq_leak); set local search_path = ${S}, pg_catalog`

describe('pg engine: masking on every channel (raw bytes)', function () {
  let h: Harness
  before(async () => {
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      CREATE TABLE ${S}.people (id int primary key, email text unique, note text);
      INSERT INTO ${S}.people VALUES (1, '${SECRET}', 'plain note');
      CREATE TABLE ${S}.plain (id int, label text);
      CREATE VIEW ${S}.contacts AS SELECT id, email AS contact FROM ${S}.people;
      INSERT INTO ${S}.plain VALUES (1, 'nothing secret');
      -- User code that reads the masked table: statements calling it read no masked column themselves.
      CREATE FUNCTION ${S}.boom() RETURNS int LANGUAGE plpgsql AS $$
        DECLARE v text; BEGIN SELECT email INTO v FROM ${S}.people LIMIT 1; RAISE EXCEPTION 'boom %', v; END $$;
      CREATE FUNCTION ${S}.chatty() RETURNS int LANGUAGE plpgsql AS $$
        DECLARE v text; BEGIN SELECT email INTO v FROM ${S}.people LIMIT 1; RAISE NOTICE 'hi %', v; RETURN 1; END $$;
      CREATE FUNCTION ${S}.fetch_email() RETURNS text LANGUAGE sql AS $$ SELECT email FROM ${S}.people LIMIT 1 $$;
      CREATE FUNCTION ${S}.emails() RETURNS TABLE (e text) LANGUAGE sql AS $$ SELECT email FROM ${S}.people $$;
      CREATE FUNCTION ${S}.leak_op(int, int) RETURNS text LANGUAGE sql AS $$ SELECT email FROM ${S}.people LIMIT 1 $$;
      CREATE OPERATOR ${S}.### (LEFTARG = int, RIGHTARG = int, FUNCTION = ${S}.leak_op);
      CREATE FUNCTION ${S}.never(text) RETURNS boolean LANGUAGE plpgsql AS $$
        DECLARE v text; BEGIN SELECT email INTO v FROM ${S}.people LIMIT 1; RAISE EXCEPTION 'no %', v; END $$;
      CREATE DOMAIN ${S}.checked AS text CHECK (${S}.never(VALUE));
      CREATE FUNCTION ${S}.eq_leak(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
        DECLARE v text; BEGIN SELECT email INTO v FROM ${S}.people LIMIT 1; RAISE EXCEPTION 'eq %', v; END $$;
      CREATE FUNCTION ${S}.opencur() RETURNS refcursor LANGUAGE plpgsql AS $$
        DECLARE c refcursor := 'fromfn'; BEGIN OPEN c FOR SELECT upper(email) || '' AS e FROM ${S}.people; RETURN c; END $$;`)
    await c.end()
    h = await startHarness({judge: () => allow(plan)})
  })
  after(async () => {
    await h.close()
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await c.end()
  })

  const attack = async (sql: string, extra?: (c: PgRawClient) => Promise<Buffer>) => {
    const c = await PgRawClient.open(h.port)
    try {
      const r = await c.query(sql)
      const more = extra ? await extra(c) : Buffer.alloc(0)
      return {bytes: Buffer.concat([r.bytes, more]), frames: r.frames, types: r.frames.map((f) => String.fromCharCode(f.type)).join('')}
    } finally {
      c.close()
    }
  }

  for (const [name, sql] of [
    ['a failed cast echoes the value in the error', `select email::int from ${S}.people`],
    ['a failed cast of a derived value', `select upper(email)::numeric from ${S}.people`],
    ['RAISE in a DO block puts it in a notice', `do $$ begin raise notice '%', (select email from ${S}.people limit 1); end $$`],
    ['RAISE EXCEPTION puts it in an error', `do $$ begin raise exception 'x %', (select email from ${S}.people limit 1); end $$`],
    ['a unique violation echoes the key in its DETAIL', `insert into ${S}.people select 2, email, 'dup' from ${S}.people where id = 1`],
  ] as const) {
    it(`${name}: no form of the value reaches the client`, async () => {
      const r = await attack(sql)
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [], `leaked in ${r.types}`)
    })
  }

  // A user-defined function the engine cannot see into may read the masked table: a statement that
  // runs one counts as reading masked data, whatever its own text reads.
  for (const [name, sql] of [
    ['a function that raises the value it read', `select ${S}.boom() from ${S}.plain`],
    ['a function that raises it in a notice', `select ${S}.chatty()`],
    ['a function that returns it', `select ${S}.fetch_email(), id from ${S}.plain`],
    ['a set-returning function in FROM', `select * from ${S}.emails()`],
    ['a user-defined operator', `select 1 operator(${S}.###) 2`],
    ['a cast to a domain whose CHECK runs user code', `select 'x'::${S}.checked`],
    ['a function called in an UPDATE', `update ${S}.plain set label = label where ${S}.boom() = 1`],
    ['a failed cast in a DELETE condition on the masked column', `delete from ${S}.people where email::int = 1`],
  ] as const) {
    it(`user code: ${name}: no form of the value reaches the client`, async () => {
      const r = await attack(sql)
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [], `leaked in ${r.types}`)
    })
  }

  for (const [name, sql] of [
    ['a failed cast in ORDER BY', `select id from ${S}.people order by email::int`],
    ['a failed cast of a view column derived from the masked one', `select contact::int from ${S}.contacts`],
    ['a failed cast in GROUP BY', `select count(*) from ${S}.people group by email::int`],
    ['a failed cast in LIMIT', `select 1 limit (select email::int from ${S}.people limit 1)`],
    ['a failed cast in the ORDER BY of a UNION', `select note from ${S}.plain union select note from ${S}.plain order by (select email::int from ${S}.people limit 1)`],
    ['user code in ORDER BY', `select id from ${S}.plain order by ${S}.boom()`],
    // A user-defined = found first in the search_path runs where SQL implies an equality. Made in
    // the transaction (rolled back), so no other test sharing the database ever sees it.
    ['a user = implied by IN (SELECT ...)', `${userEq}; select 1 from plain where label in (select label from plain)`],
    ['a user = implied by JOIN USING', `${userEq}; select 1 from plain p join (select label from plain) q using (label)`],
    ['a user = implied by CASE x WHEN', `${userEq}; select case label when 'x' then 1 end from plain`],
  ] as const) {
    it(`${name}: no form of the value reaches the client`, async () => {
      const r = await attack(sql)
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [], `leaked in ${r.types}`)
    })
  }

  for (const [name, declare] of [
    ['a cursor over a failed cast, fetched later', `select email::int from ${S}.people`],
    ['a cursor over user code, fetched later', `select ${S}.boom()`],
  ] as const) {
    it(`${name}: the FETCH's error is redacted`, async () => {
      const r = await attack(`begin; declare c cursor for ${declare}`, async (c) => Buffer.concat([(await c.query('fetch c')).bytes, (await c.query('rollback')).bytes]))
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [], `leaked in ${r.types}`)
    })
  }

  it("a cursor a function opened (not DECLAREd in SQL hoop read): the FETCH's computed columns are masked", async () => {
    const r = await attack(`begin; select ${S}.opencur()`, async (c) => Buffer.concat([(await c.query('fetch all from fromfn')).bytes, (await c.query('rollback')).bytes]))
    assert.deepEqual(findLeaks(r.bytes, [SECRET]), [], `leaked in ${r.types}`)
    assert.ok(r.bytes.includes('****'), 'the row arrives, masked')
  })

  it('user code: a function made in the open transaction that shadows a built-in is not taken for it', async () => {
    const shadow = `create function public.upper(int) returns text language sql as $$ select email from ${S}.people limit 1 $$`
    // In the same text, and in a later statement of the session.
    const same = await attack(`begin; ${shadow}; select upper(1); rollback`)
    const later = await attack(`begin; ${shadow}`, async (c) => (await c.query('select upper(1)')).bytes)
    for (const r of [same, later]) assert.deepEqual(findLeaks(r.bytes, [SECRET]), [])
    assert.ok(same.types.includes('D'), 'the row still arrives, masked')
  })

  it('user code: a redacted error keeps its SQLSTATE', async () => {
    const r = await attack(`select ${S}.boom()`)
    const err = r.frames.find((f) => f.type === 0x45)
    assert.ok(err, r.types)
    assert.match(err.bytes.toString('latin1'), /CP0001\0/) // RAISE EXCEPTION's default SQLSTATE
    assert.match(err.bytes.toString('latin1'), /hoop: redacted/)
  })

  it('a NOTIFY payload built from the value (LISTEN on the same session)', async () => {
    const r = await attack(`listen ch_${process.pid}; select pg_notify('ch_${process.pid}', email) from ${S}.people`, async (c) => (await c.drain(200)).bytes)
    assert.deepEqual(findLeaks(r.bytes, [SECRET]), [])
  })

  it('application_name set from the value comes back as a ParameterStatus', async () => {
    const r = await attack(`select set_config('application_name', email, false) is not null from ${S}.people`)
    assert.deepEqual(findLeaks(r.bytes, [SECRET]), [])
  })

  it('a protocol Bind of a statement made with SQL PREPARE is refused, not run unmasked', async () => {
    const c = await PgRawClient.open(h.port)
    try {
      await c.query(`prepare p_leak as select email from ${S}.people`)
      const r = await c.send(encodeBind('', 'p_leak'), encodeExecute(''))
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [])
      assert.match(r.bytes.toString('latin1'), /hoop\.unknown-statement/)
      // The session stays usable.
      const ok = await c.query('select 1')
      assert.ok(ok.frames.some((f) => f.type === 0x44))
    } finally {
      c.close()
    }
  })

  it('EXECUTE of a SQL-prepared statement with a computed column masks it', async () => {
    const c = await PgRawClient.open(h.port)
    try {
      await c.query(`prepare p_upper as select upper(email) as u, lower(email) || '' as l from ${S}.people`)
      const r = await c.query('execute p_upper')
      assert.deepEqual(findLeaks(r.bytes, [SECRET]), [])
      assert.ok(r.frames.some((f) => f.type === 0x44), 'the rows still arrive, masked')
    } finally {
      c.close()
    }
  })

  it('a statement that reads no masked column keeps its error text byte for byte', async () => {
    const direct = await PgRawClient.open(5432)
    const d = await direct.query(`select note::int from ${S}.people`)
    direct.close()
    const r = await attack(`select note::int from ${S}.people`)
    assert.equal(r.bytes.toString('latin1'), d.bytes.toString('latin1'))
  })
})
