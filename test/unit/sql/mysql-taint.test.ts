// MySQL taint for masking: which output columns derive from a masked column, through any wording.
import assert from 'node:assert/strict'
import {ColumnMatcher} from '../../../src/masking/columns.js'
import {analyzeMysqlOutputs} from '../../../src/sql/mysql-taint.js'

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
})
