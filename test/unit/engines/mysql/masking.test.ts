// Row masking of the MySQL engine on column definitions as the codec decodes them: a masked JSON
// column (MySQL's JSON type, or MariaDB's BLOB marked format=json by extended metadata) stays
// valid JSON; other string columns become '****'; other types NULL.
import {strict as assert} from 'node:assert'
import {ResultMasking, type Stmt} from '../../../../src/engines/mysql/masking.js'
import {TYPE} from '../../../../src/protocol/mysql/constants.js'
import type {ColumnDefinition} from '../../../../src/protocol/mysql/messages.js'
import {encodeTextRow, rewriteBinaryRow} from '../../../../src/protocol/mysql/rows.js'

const col = (name: string, type: number, extra: Partial<ColumnDefinition> = {}): ColumnDefinition => ({catalog: 'def', schema: 'test', table: 't', orgTable: 't', name, orgName: name, charset: 45, length: 100, type, flags: 0, decimals: 0, ...extra})
const stmt: Stmt = {text: 'SELECT * FROM t', verdict: {effect: 'allow', ruleId: 'r', mask: {columns: ['test.t.*'], entities: [], ruleIds: ['r']}}}

describe('mysql engine: masking by column definition', () => {
  const defs = [col('mysql_json', TYPE.JSON), col('maria_json', TYPE.BLOB, {formatName: 'json'}), col('name', TYPE.VAR_STRING), col('n', TYPE.LONG)]

  it('a masked JSON cell becomes the JSON string "****" (text protocol), other strings ****, numbers NULL', () => {
    const counts = {}
    const mask = new ResultMasking().rowMasker(defs, stmt, 0, false, counts)
    assert.ok(mask)
    const out = mask(encodeTextRow(['{"a":1}', '{"b":2}', 'Ada', '7']))
    assert.ok(out.equals(encodeTextRow(['"****"', '"****"', '****', null])), out.toString('latin1'))
    assert.equal(JSON.parse('"****"'), '****')
  })

  it('the same in the binary protocol', () => {
    const mask = new ResultMasking().rowMasker(defs, stmt, 0, true, {})
    assert.ok(mask)
    const lenenc = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)])
    const row = Buffer.concat([Buffer.from([0, 0]), lenenc('{"a":1}'), lenenc('{"b":2}'), lenenc('Ada'), Buffer.from([7, 0, 0, 0])])
    const got: (string | null)[] = []
    rewriteBinaryRow(mask(row), defs.map((d) => d.type), (_i, v) => {
      got.push(v === null ? null : v.toString())
      return undefined
    })
    // The number became NULL in the bitmap: only three cells are left to walk.
    assert.deepEqual(got, ['"****"', '"****"', '****'])
  })
})
