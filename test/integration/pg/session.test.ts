// The PostgreSQL engine against the real server, real psql and the real pg driver: simple and
// extended protocol, pipelining, COPY, cancel, refusals (also inside transactions), malformed input.
import {strict as assert} from 'node:assert'
import * as net from 'node:net'
import pg from 'pg'
import {encodeBind, encodeCancelRequest, encodeExecute, encodeParse, encodeStartup, encodeSync, encodeTerminate, message} from '../../../src/protocol/pg/messages.js'
import {allow, psql, psqlScript, startHarness, tableJudge, untilRunning, type Harness} from './harness.js'

const SCHEMA = `hoop_pgs_${process.pid}`
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})

const judge = tableJudge([
  [/drop\s+table/i, {effect: 'block', ruleId: 'no-drop', message: 'DROP TABLE is not allowed'}],
  [/delete\s+from/i, {effect: 'review', ruleId: 'review-delete', message: 'deletes need an approval', approvalId: 'apr_123'}],
])

/** Raw protocol client: send bytes, collect backend messages until `count` ReadyForQuery. */
async function rawSession(port: number, send: Buffer, readyCount: number): Promise<{type: string; body: Buffer}[]> {
  const sock = net.connect(port, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  const msgs: {type: string; body: Buffer}[] = []
  let buf = Buffer.alloc(0)
  let ready = 0
  let sentQuery = false
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject)
    sock.on('close', () => resolve())
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
        const len = buf.readInt32BE(1)
        const type = String.fromCharCode(buf[0])
        if (sentQuery) msgs.push({type, body: buf.subarray(5, 1 + len)})
        buf = buf.subarray(1 + len)
        if (type === 'Z') {
          if (!sentQuery) {
            sentQuery = true
            sock.write(send)
          } else if (++ready === readyCount) {
            sock.end(encodeTerminate())
            resolve()
          }
        }
      }
    })
    sock.write(encodeStartup({user: 'postgres', database: 'test'}))
  })
  sock.destroy()
  return msgs
}

function errorMessage(body: Buffer): string {
  return body.toString('utf8').split('\0').find((f) => f.startsWith('M'))?.slice(1) ?? ''
}

describe('pg engine: protocol', function () {
  let h: Harness
  before(async () => {
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}; CREATE TABLE ${SCHEMA}.t (id int primary key, v text)`)
    await c.end()
    h = await startHarness({judge})
  })
  after(async () => {
    await h.close()
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
    await c.end()
  })
  beforeEach(async () => {
    const c = admin()
    await c.connect()
    await c.query(`TRUNCATE ${SCHEMA}.t`)
    await c.end()
  })

  it('psql -c with a multi-statement query and a psql script session', async () => {
    const r = await psql(h.port, 'select 1 as a; select current_user')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.trim().split('\n'), ['1', 'postgres'])
    const s = await psqlScript(h.port, `insert into ${SCHEMA}.t values (1, 'a');\nbegin;\nupdate ${SCHEMA}.t set v = 'b';\ncommit;\nselect v from ${SCHEMA}.t;\n`)
    assert.equal(s.stdout.trim(), 'b')
  })

  it('a blocked DROP TABLE answers 42501 naming the rule, the table survives and the session goes on', async () => {
    const s = await psqlScript(h.port, `drop table ${SCHEMA}.t;\nselect 'still here';\n`)
    assert.match(s.stderr, /hoop: blocked by policy rule no-drop: DROP TABLE is not allowed/)
    assert.equal(s.stdout.trim(), 'still here')
    const c = admin()
    await c.connect()
    const r = await c.query(`select to_regclass('${SCHEMA}.t') as t`)
    await c.end()
    assert.equal(r.rows[0].t, `${SCHEMA}.t`)
    assert.ok(h.events.some((e) => e.hook === 'refused' && /drop table/i.test(e.sql)))
  })

  it('blocked inside BEGIN: the transaction fails as in PostgreSQL, COMMIT does not commit, ROLLBACK leaves it usable', async () => {
    const s = await psqlScript(
      h.port,
      `begin;\ninsert into ${SCHEMA}.t values (1, 'x');\ndrop table ${SCHEMA}.t;\nselect 1;\ncommit;\nbegin;\ninsert into ${SCHEMA}.t values (2, 'y');\ndrop table ${SCHEMA}.t;\nrollback;\nselect count(*) from ${SCHEMA}.t;\n`,
    )
    assert.match(s.stderr, /blocked by policy rule no-drop/)
    assert.match(s.stderr, /current transaction is aborted/)
    assert.equal(s.stdout.trim().split('\n').pop(), '0')
    const c = admin()
    await c.connect()
    const r = await c.query(`select count(*)::int as n from ${SCHEMA}.t`)
    await c.end()
    assert.equal(r.rows[0].n, 0)
  })

  it('a review verdict refuses with the approval id and the command to approve', async () => {
    const r = await psql(h.port, `delete from ${SCHEMA}.t`)
    assert.match(r.stderr, /review required by policy rule review-delete/)
    assert.match(r.stderr, /hoop approvals approve apr_123/)
  })

  it('pg driver: parameters, named prepared statements, a blocked Parse, then the session is usable', async () => {
    const c = new pg.Client({host: '127.0.0.1', port: h.port, user: 'postgres', database: 'test'})
    await c.connect()
    try {
      const a = await c.query('select $1::int + 1 as x', [41])
      assert.equal(a.rows[0].x, 42)
      await c.query({name: 'ins', text: `insert into ${SCHEMA}.t values ($1, $2)`, values: [1, 'one']})
      await c.query({name: 'ins', text: `insert into ${SCHEMA}.t values ($1, $2)`, values: [2, 'two']})
      await assert.rejects(c.query(`drop table ${SCHEMA}.t`), (e: Error & {code?: string}) => e.code === '42501' && /no-drop/.test(e.message))
      const b = await c.query({name: 'cnt', text: `select count(*)::int as n from ${SCHEMA}.t where id > $1`, values: [0]})
      assert.equal(b.rows[0].n, 2)
    } finally {
      await c.end()
    }
  })

  it('pipelined Parse/Bind/Execute with a blocked statement keeps response order and rolls back the implicit transaction', async () => {
    const ins = (id: number) => Buffer.concat([encodeParse('', `insert into ${SCHEMA}.t values (${id}, 'p')`), encodeBind('', ''), encodeExecute('')])
    const pipeline = Buffer.concat([
      ins(10),
      encodeParse('', `drop table ${SCHEMA}.t`),
      encodeBind('', ''),
      encodeExecute(''),
      encodeSync(),
      ins(11),
      encodeSync(),
      encodeParse('s2', `select count(*) from ${SCHEMA}.t`),
      encodeBind('', 's2'),
      encodeExecute(''),
      encodeSync(),
    ])
    const msgs = await rawSession(h.port, pipeline, 3)
    const types = msgs.map((m) => m.type).join('')
    // insert: 1 2 C, drop: E (rest skipped), Z; insert: 1 2 C Z; select: 1 2 D C Z
    assert.equal(types, '12CEZ12CZ12DCZ')
    assert.match(errorMessage(msgs[3].body), /blocked by policy rule no-drop/)
    assert.equal(msgs[4].body.toString(), 'I')
    const row = msgs.find((m) => m.type === 'D')!.body
    assert.equal(row.subarray(6).toString(), '1') // only id 11: the pipeline's implicit transaction rolled back id 10
  })

  it('COPY FROM STDIN and COPY TO STDOUT', async () => {
    const s = await psqlScript(h.port, `copy ${SCHEMA}.t from stdin;\n1\tone\n2\ttwo\n\\.\ncopy ${SCHEMA}.t to stdout;\n`)
    assert.equal(s.stdout.trim(), '1\tone\n2\ttwo')
  })

  it('a cancel request reaches the right backend through a new upstream stream', async () => {
    const c = new pg.Client({host: '127.0.0.1', port: h.port, user: 'postgres', database: 'test'})
    await c.connect()
    const inner = c as unknown as {processID: number; secretKey: number}
    const q = c.query('select pg_sleep(20)')
    await untilRunning('select pg_sleep(20)')
    const key = Buffer.alloc(4)
    key.writeInt32BE(inner.secretKey)
    const s = net.connect(h.port, '127.0.0.1')
    s.end(encodeCancelRequest(inner.processID, key))
    await assert.rejects(q, (e: Error & {code?: string}) => e.code === '57014')
    const ok = await c.query('select 1 as one')
    assert.equal(ok.rows[0].one, 1)
    await c.end()
  })

  it('malformed messages are refused with a FATAL 08P01 and close; the gateway keeps serving', async () => {
    const cases: [string, Buffer][] = [
      ['length below 4', Buffer.from([0x51, 0, 0, 0, 3])],
      ['huge length', Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff])],
      ['unknown type', message(0x7a, Buffer.from('zz'))],
      ['truncated Parse', message(0x50, Buffer.from('name-without-terminator'))],
    ]
    for (const [name, bytes] of cases) {
      const msgs = await rawSession(h.port, bytes, 1)
      const err = msgs.find((m) => m.type === 'E')
      assert.ok(err, `no ErrorResponse for ${name}`)
      assert.match(err.body.toString(), /FATAL/, name)
      assert.match(err.body.toString(), /08P01/, name)
    }
    // A connection cut in the middle of a message and a bad startup packet.
    for (const bytes of [Buffer.concat([encodeStartup({user: 'postgres', database: 'test'}), Buffer.from([0x51, 0, 0, 1])]), Buffer.from([0, 0, 0, 4])]) {
      const s = net.connect(h.port, '127.0.0.1')
      s.on('error', () => {})
      s.write(bytes)
      await new Promise((r) => setTimeout(r, 50))
      s.destroy()
    }
    const r = await psql(h.port, 'select 7')
    assert.equal(r.stdout.trim(), '7')
  })

  it('fails closed when beforeForward rejects (strict mode): the statement is refused and never runs', async () => {
    const h2 = await startHarness({
      audit: 'strict',
      judge: () => allow(),
      beforeForward: async (info) => {
        if (/insert/i.test(info.text)) throw new Error('audit store down')
      },
    })
    try {
      const r = await psql(h2.port, `insert into ${SCHEMA}.t values (5, 'x')`)
      assert.match(r.stderr, /audit record could not be written/)
      // The cause is named as such, not blamed on the allow rule.
      assert.match(r.stderr, /hoop: AUDIT_UNAVAILABLE:/)
      assert.doesNotMatch(r.stderr, /blocked by policy rule/)
      const c = admin()
      await c.connect()
      const n = await c.query(`select count(*)::int as n from ${SCHEMA}.t`)
      await c.end()
      assert.equal(n.rows[0].n, 0)
    } finally {
      await h2.close()
    }
  })

  it('reports statements, refusals and bytes in the session result', async () => {
    const h3 = await startHarness({judge})
    await psqlScript(h3.port, `select 1;\ndrop table ${SCHEMA}.t;\n`)
    await h3.close()
    const res = h3.results[0]
    assert.equal(res.startupUser, 'postgres')
    assert.equal(res.database, 'test')
    assert.equal(res.blocked, 1)
    assert.ok(res.statements >= 2)
    assert.ok(res.bytesUp > 0 && res.bytesDown > 0)
  })
})

