import {strict as assert} from 'node:assert'
import {ColumnMatcher} from '../../../src/masking/columns.js'
import {analyzeSql} from '../../../src/sql/pg-taint.js'
import {outputAt, type OutputColumn} from '../../../src/sql/taint.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'

const m = new ColumnMatcher(['public.customers.email', 'customers.card', '*.ssn'])
const sources = (sql: string) => {
  const a = analyzeSql(sql, m)
  assert.ok(a, 'parses')
  return (a[a.length - 1].outputs ?? a[a.length - 1].copy?.outputs ?? []).map((o) => ('star' in o ? '*' : (o.source ?? '-')))
}

describe('column patterns', () => {
  it('match schema.table.column, table.column and *.column', () => {
    assert.equal(m.match({schema: 'public', table: 'customers', column: 'email'}), 'public.customers.email')
    assert.equal(m.match({schema: 'other', table: 'customers', column: 'email'}), undefined)
    assert.equal(m.match({schema: 'x', table: 'customers', column: 'CARD'}), 'customers.card')
    assert.equal(m.match({schema: 'x', table: 'people', column: 'ssn'}), '*.ssn')
    assert.equal(m.match({table: 'customers', column: 'email'}), 'public.customers.email') // unknown schema: fail closed
    assert.ok(m.coversTable(undefined, 'customers'))
    assert.ok(!new ColumnMatcher(['customers.email']).coversTable('public', 'orders'))
  })
})

describe('taint analysis', () => {
  before(() => loadPgParser())

  it('taints computed outputs that read a masked column', () => {
    assert.deepEqual(sources('select id, upper(email), email || card, length(name) from customers'), ['-', 'public.customers.email', 'customers.card', '-'])
    assert.deepEqual(sources('select substring(c.card, 1, 4) a, substr(c.card, 5, 4) b from customers c'), ['customers.card', 'customers.card'])
    assert.deepEqual(sources('select email::text from customers'), ['public.customers.email'])
  })

  it('follows subqueries, CTEs, joins and whole-row references', () => {
    assert.deepEqual(sources('select lower(x) from (select email as x from customers) s'), ['public.customers.email'])
    assert.deepEqual(sources('with w as (select card from customers) select w.card || \'\' from w'), ['customers.card'])
    assert.deepEqual(sources('select (select email from customers limit 1), 1'), ['public.customers.email', '-'])
    assert.deepEqual(sources('select row_to_json(c) from customers c'), ['customers.*'])
    assert.deepEqual(sources('select upper(t.email) from (select * from customers) t'), ['public.customers.email'])
    assert.deepEqual(sources('select o.id, upper(o.note) from orders o join customers c on c.id = o.cid'), ['-', '-'])
    assert.deepEqual(sources('select upper(p.ssn) from people p'), ['*.ssn'])
  })

  it('names the routines a statement runs, and taints what user code computes', () => {
    const [a] = analyzeSql("select upper(note), n + 1, x::int, pg_catalog.lower('A'), my_fn(id) from t where name like 'a%'", m) ?? []
    assert.deepEqual(new Set(a.routines), new Set(['function:upper', 'operator:+', 'type:int4', 'function:lower', 'function:my_fn', 'operator:~~']))
    assert.equal(a.readsMasked, undefined)
    const [b] = analyzeSql('select upper(note), my_fn(id) from t', m, new Set(['function:my_fn'])) ?? []
    assert.deepEqual(b.outputs?.map((o) => ('star' in o ? '*' : (o.source ?? '-'))), ['-', 'function:my_fn'])
    assert.equal(b.readsMasked, 'function:my_fn')
    const [c] = analyzeSql('delete from t where my_fn(id) = 1', m, new Set(['function:my_fn'])) ?? []
    assert.equal(c.readsMasked, 'function:my_fn', 'DML conditions are walked')
    assert.equal(analyzeSql('create function public.upper(int) returns text language sql as $$ select 1 $$', m)?.[0].defines, 'function:upper')
    assert.equal(analyzeSql('alter function f(int) rename to lower', m)?.[0].defines, 'function:lower')
  })

  it('marks outputs that are exactly a whole row, and only those', () => {
    const rows = (sql: string) => (analyzeSql(sql, m)?.[0].outputs ?? []).map((o) => ('star' in o || !o.row ? '-' : `${o.row.form}:${o.row.rel.table}`))
    assert.deepEqual(rows('select row_to_json(c), to_jsonb(c.*), row(c.*), c, pg_catalog.to_json(o) from customers c, orders o'), ['json:customers', 'json:customers', 'composite:customers', 'composite:customers', 'json:orders'])
    assert.deepEqual(rows("select row_to_json(c, true), row(c.*, 1), (c).email, upper(row_to_json(c)::text), my.row_to_json(c), json_agg(c) from customers c"), ['-', '-', '-', '-', '-', '-'])
    assert.deepEqual(rows('with w as (select * from customers) select row_to_json(w) from w'), ['-'])
  })

  it('handles UNION, VALUES, RETURNING, cursors and COPY', () => {
    assert.deepEqual(sources("select 'a' union all select email from customers"), ['public.customers.email'])
    assert.deepEqual(sources("insert into customers(email) values ('x') returning upper(email)"), ['public.customers.email'])
    const d = analyzeSql('declare c cursor for select md5(card) from customers', m)
    assert.equal(d?.[0].kind, 'declare')
    assert.equal(d?.[0].cursor, 'c')
    assert.deepEqual(sources('copy (select id, email from customers) to stdout with (format csv)'), ['-', 'public.customers.email'])
    const cp = analyzeSql('copy public.customers (id, email) to stdout', m)?.[0].copy
    assert.deepEqual(cp?.relation, {schema: 'public', table: 'customers'})
    assert.deepEqual(cp?.columns, ['id', 'email'])
  })

  it('maps result positions around a star of unknown width', () => {
    const outs = analyzeSql('select upper(email), c.*, lower(email) from customers c', m)![0].outputs!
    assert.equal((outputAt(outs, 0, 6) as OutputColumn).source, 'public.customers.email')
    assert.equal(outputAt(outs, 2, 6), 'unknown')
    assert.equal((outputAt(outs, 5, 6) as OutputColumn).source, 'public.customers.email')
  })

  it('returns undefined for text that does not parse', () => {
    assert.equal(analyzeSql('selec oops', m), undefined)
  })

  it('follows SQL text given to functions that run it; text it cannot see taints the result', () => {
    assert.deepEqual(sources("select query_to_xml('select email from customers', true, false, '')"), ['public.customers.email'])
    assert.deepEqual(sources("select query_to_xml('select id from customers', true, false, '')"), ['-'])
    assert.deepEqual(sources("select x.e from dblink('dbname=test', 'select upper(email) from customers') as x(e text)"), ['public.customers.email'])
    assert.deepEqual(sources("select query_to_xml(current_setting('q'), true, false, '')"), ['query_to_xml()'])
    assert.deepEqual(sources("select table_to_xml('public.customers', true, false, '')"), ['public.customers.*'])
    assert.deepEqual(sources("select table_to_xml('orders', true, false, '')"), ['orders.*']) // *.ssn may be a column of orders
    assert.deepEqual(sources("select cursor_to_xml('c', 10, true, false, '')"), ['cursor_to_xml()'])
    assert.deepEqual(sources("select database_to_xml(true, false, '')"), ['database_to_xml()'])
    // Nothing is masked: nothing to taint.
    assert.deepEqual(analyzeSql("select cursor_to_xml('c', 10, true, false, '')", new ColumnMatcher([]))?.[0].outputs?.map((o) => ('star' in o ? '*' : (o.source ?? '-'))), ['-'])
  })

  it('never throws: a tree too deep to walk is undefined (every computed column masked)', () => {
    const deep = 'select ' + '('.repeat(3000) + 'email' + ')'.repeat(3000) + ' from customers'
    const a = analyzeSql(deep, m)
    assert.ok(a === undefined || a[0].outputs?.[0] !== undefined)
    const nested = 'select ' + 'upper('.repeat(20000) + 'email' + ')'.repeat(20000) + ' from customers'
    assert.doesNotThrow(() => analyzeSql(nested, m))
  })
})
