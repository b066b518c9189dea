// Settings in the StartupMessage are judged like the SET statements they equal (issue 12): a
// session cannot begin with a setting that a SET would be blocked for.
import {strict as assert} from 'node:assert'
import {B, decodeErrorFields} from '../../../src/protocol/pg/messages.js'
import {PgRawClient} from '../../helpers/pg-raw.js'
import {allow, startHarness, tableJudge, type Harness} from './harness.js'

describe('pg engine: startup parameters judged like SET', function () {
  let h: Harness
  before(async () => {
    h = await startHarness({
      judge: tableJudge([[/session_replication_role/i, {effect: 'block', ruleId: 'no-replica-role', message: 'session_replication_role disables triggers'}]], allow()),
    })
  })
  after(() => h.close())

  const open = (params: Record<string, string>) => PgRawClient.open(h.port, {user: 'postgres', database: 'test', ...params})

  it('options=-c session_replication_role=replica is refused before the session begins', async () => {
    await assert.rejects(open({options: '-c session_replication_role=replica'}), (err: Error) => {
      assert.match(err.message, /no-replica-role/)
      assert.match(err.message, /startup packet/)
      return true
    })
    await h.settle()
    assert.ok(h.events.some((e) => e.hook === 'refused' && /SET "?session_replication_role"? TO/i.test(e.sql)), JSON.stringify(h.events))
  })

  it('the same setting as a bare parameter is refused too', async () => {
    await assert.rejects(open({session_replication_role: 'replica'}), /no-replica-role/)
  })

  it('a replication connection is refused whatever the policy', async () => {
    await assert.rejects(open({replication: 'database'}), /replication/)
  })

  it('harmless display settings pass, and an allowed setting takes effect', async () => {
    const c = await open({application_name: 'startup-test', DateStyle: 'ISO, MDY', options: '-c work_mem=7MB'})
    try {
      const r = await c.query('show work_mem')
      const row = r.frames.find((f) => f.type === B.DataRow)
      assert.ok(row, r.frames.map((f) => String.fromCharCode(f.type)).join(''))
      assert.match(row!.bytes.toString('latin1'), /7MB/)
      assert.ok(!r.frames.some((f) => f.type === B.ErrorResponse && decodeErrorFields(f).S === 'FATAL'))
    } finally {
      c.close()
    }
  })
})
