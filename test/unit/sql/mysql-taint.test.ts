// MySQL taint for masking: which output columns derive from a masked column, through any wording.
import assert from 'node:assert/strict'
import {ColumnMatcher} from '../../../src/masking/columns.js'
import {analyzeMysqlOutputs, procedureReadsMasked} from '../../../src/sql/mysql-taint.js'

describe('sql: analyzeMysqlOutputs (taint for masking)', () => {
  const m = new ColumnMatcher(['customers.email'])
  const src = (sql: string) => analyzeMysqlOutputs(sql, m)?.[0]
  it('follows expressions, aliases, derived tables, CTEs and UNION', () => {
    assert.deepEqual(src('select upper(email) u, id from customers')?.outputs, [{name: 'u', source: 'customers.email'}, {name: 'id', source: undefined}])
    assert.equal((src('select concat(c.email, 1) from customers c')?.outputs?.[0] as {source?: string}).source, 'customers.email')
    assert.equal((src('select x from (select email x from customers) s')?.outputs?.[0] as {source?: string}).source, 'customers.email')
    assert.equal((src('with w as (select email e from customers) select lower(e) from w')?.outputs?.[0] as {source?: string}).source, 'customers.email')
    assert.equal((src("select 'a' union select email from customers")?.outputs?.[0] as {source?: string}).source, 'customers.email')
    assert.equal((src('select (select max(email) from customers) m')?.outputs?.[0] as {source?: string}).source, 'customers.email')
    assert.equal((src('select upper(name) from orders')?.outputs?.[0] as {source?: string}).source, undefined)
  })
  it('marks CALL and EXECUTE opaque and unparsable text undefined', () => {
    assert.equal(src('CALL p()')?.kind, 'opaque')
    assert.equal(src('EXECUTE s')?.kind, 'opaque')
    assert.equal(analyzeMysqlOutputs('SELEC email', m), undefined)
  })
  it('clears a procedure body only when it is read in full and reads no masked column', () => {
    for (const body of ['BEGIN SELECT id, upper(name) FROM orders; SELECT 1 + 1; END', 'SELECT upper(name) FROM orders', "BEGIN SELECT 'END' AS e; END", 'BEGIN END']) {
      assert.equal(procedureReadsMasked(body, m), false, body)
    }
    for (const body of [
      'BEGIN SELECT upper(email) FROM customers; END',
      'BEGIN SELECT * FROM customers; END',
      'BEGIN INSERT INTO t SELECT email FROM customers; END',
      'BEGIN DECLARE v int; SELECT 1; END',
      'BEGIN IF 1 THEN SELECT 1; END IF; END',
      'BEGIN BEGIN SELECT 1; END; END',
      'l: BEGIN SELECT 1; END l',
      'BEGIN CALL q(); END',
      'BEGIN SET @x = 1; SELECT 1; END',
      'BEGIN PREPARE s FROM @q; EXECUTE s; END',
    ]) {
      assert.equal(procedureReadsMasked(body, m), true, body)
    }
  })
})
