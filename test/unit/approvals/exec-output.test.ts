// hoop exec's pure parts: how refusals map to exit codes, CSV quoting, the result table, input rules.
import assert from 'node:assert/strict'
import {mapError, readSqlInput, renderCsv, renderTable, type StatementOutput} from '../../../src/client/exec.js'
import {HoopError} from '../../../src/shared/errors.js'

function pgError(code: string, message: string): Error {
  return Object.assign(new Error(message), {code})
}

describe('hoop exec output and errors', () => {
  it('maps a review refusal to APPROVAL_REQUIRED (exit 17) carrying the approval id', () => {
    const e = mapError(pgError('42501', 'hoop: review required by policy rule w: request apr_abcDEF123_-x is pending (0 of 1 approvals). An approver runs: hoop approvals approve apr_abcDEF123_-x --reason "..."'))
    assert.equal(e.code, 'APPROVAL_REQUIRED')
    assert.equal(e.exitCode, 17)
    assert.equal(e.details?.approvalId, 'apr_abcDEF123_-x')
  })

  it('maps a guardrail to POLICY_BLOCKED (exit 16), and the database\'s own 42501 to STATEMENT_FAILED', () => {
    assert.equal(mapError(pgError('42501', 'hoop: blocked by policy rule no-drop: DROP TABLE is blocked')).exitCode, 16)
    // An audit store that cannot write is its own failure (exit 24), not a policy block.
    assert.equal(mapError(pgError('42501', 'hoop: AUDIT_UNAVAILABLE: the audit record could not be written')).exitCode, 24)
    const own = mapError(pgError('42501', 'permission denied for table t'))
    assert.equal(own.code, 'STATEMENT_FAILED')
    assert.match(own.message, /SQLSTATE 42501/)
    assert.equal(mapError(pgError('42P01', 'relation "x" does not exist')).exitCode, 25)
    const passthrough = new HoopError('ACCESS_DENIED', 'no')
    assert.equal(mapError(passthrough), passthrough)
  })

  it('writes RFC 4180 CSV with NULL as empty and quotes where needed', () => {
    const s: StatementOutput[] = [
      {command: 'SELECT', rowCount: 2, fields: ['a', 'b,c'], rows: [['1', 'x "y"'], [null, 'line\nbreak']]},
      {command: 'UPDATE', rowCount: 3, fields: [], rows: []},
    ]
    assert.equal(renderCsv(s), 'a,"b,c"\r\n1,"x ""y"""\r\n,"line\nbreak"\r\n')
  })

  it('prints tables with column names as spelled and command tags for the rest', () => {
    const out = renderTable([
      {command: 'SELECT', rowCount: 1, fields: ['Id', 'name'], rows: [['1', null]]},
      {command: 'UPDATE', rowCount: 3, fields: [], rows: []},
    ])
    assert.equal(out, 'Id  name\n--  ----\n1   NULL\n(1 row)\n\nUPDATE 3')
  })

  it('takes SQL from exactly one place', () => {
    assert.equal(readSqlInput({execute: 'select 1'}), 'select 1')
    assert.throws(() => readSqlInput({execute: 'a', file: 'b'}), (e: HoopError) => e.code === 'INVALID_INPUT')
    assert.throws(() => readSqlInput({execute: '  '}), (e: HoopError) => e.code === 'INVALID_INPUT' && /no SQL/.test(e.message))
    assert.throws(() => readSqlInput({file: '/nonexistent/x.sql'}), (e: HoopError) => e.code === 'INVALID_INPUT' && /ENOENT/.test(e.message))
  })
})
