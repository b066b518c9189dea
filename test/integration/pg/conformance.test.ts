// Conformance faults found by running drivers through hoop and comparing with a direct connection
// (issue 13), each pinned by a test named after what broke. Real PostgreSQL, the engine harness.
import {strict as assert} from 'node:assert'
import * as net from 'node:net'
import pg from 'pg'
import {runPgSession} from '../../../src/engines/postgres/session.js'
import {StatementGate} from '../../../src/engines/gate.js'
import {encodeBind, encodeCancelRequest, encodeExecute, encodeParse, encodeQuery, encodeStartup, encodeSync, encodeTerminate, F, message} from '../../../src/protocol/pg/messages.js'
import {HoopError} from '../../../src/shared/errors.js'
import {silentLogger} from '../../../src/shared/log.js'
import {serveEngine} from '../../helpers/engine-server.js'
import {allow, startHarness, untilRunning, type Harness} from './harness.js'
import {count, RawClient} from './raw.js'

const SCHEMA = `hoop_pgconf_${process.pid}`
const STARTUP = encodeStartup({user: 'postgres', database: 'test'})
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})
const through = (port: number) => new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})

async function adminQuery(sql: string): Promise<pg.QueryResult> {
  const c = admin()
  await c.connect()
  try {
    return await c.query(sql)
  } finally {
    await c.end()
  }
}

/** The text cells of the DataRows received, one string per row (single-column results). */
function cells(c: RawClient): string[] {
  return c.messages.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6, 6 + m.body.readInt32BE(2)))
}

describe('pg engine: conformance (issue 13)', function () {
  this.timeout(60_000)
  let h: Harness
  before(async () => {
    await adminQuery(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}; CREATE TABLE ${SCHEMA}.blob (b text)`)
    h = await startHarness({judge: () => allow()})
  })
  after(async () => {
    await h.close()
    await adminQuery(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  })

  it('answers a first Query sent in the same segment as the StartupMessage (was: FATAL invalid message length)', async () => {
    const c = await RawClient.connect(h.port)
    try {
      c.send(STARTUP, encodeQuery('select 40 + 2'))
      await c.until(count('Z', 2))
      assert.deepEqual(c.errors(), [])
      assert.deepEqual(cells(c), ['42'])
    } finally {
      c.destroy()
    }
  })

  it('answers a Query and then closes for a Terminate, all in the startup segment (was: FATAL invalid message length)', async () => {
    const c = await RawClient.connect(h.port)
    c.send(STARTUP, encodeQuery('select 7'), encodeTerminate())
    await c.closedByServer()
    assert.deepEqual(c.errors(), [])
    assert.deepEqual(cells(c), ['7'])
    assert.equal(c.types().at(-1), 'Z')
  })

  it("passes the server's own FATAL alone, with nothing after it (was: a second, synthetic FATAL 08006)", async () => {
    const c = await RawClient.connect(h.port)
    c.send(STARTUP, encodeQuery('select pg_terminate_backend(pg_backend_pid())'))
    await c.closedByServer()
    assert.deepEqual(
      c.errors().map((e) => [e.V, e.C]),
      [['FATAL', '57P01']],
    )
    // The pg driver sees one error, as it does directly.
    const d = through(h.port)
    const errors: Error[] = []
    d.on('error', (e) => errors.push(e))
    await d.connect()
    await assert.rejects(d.query('select pg_terminate_backend(pg_backend_pid())'), (e: Error & {code?: string}) => e.code === '57P01')
    await new Promise((r) => setTimeout(r, 200))
    assert.ok(errors.every((e) => (e as Error & {code?: string}).code !== '08006'), errors.map((e) => e.message).join('; '))
    await d.end().catch(() => {})
  })

  it('runs Parse/Bind with 40,000 and 65,535 parameters (was: counts >= 32,768 read as negative and refused)', async () => {
    const c = through(h.port)
    await c.connect()
    try {
      for (const n of [40_000, 65_535]) {
        const text = `select array_length(array[${Array.from({length: n}, (_, i) => `$${i + 1}::int`).join(',')}], 1) as n`
        const r = await c.query(text, Array.from({length: n}, (_, i) => i))
        assert.equal(r.rows[0].n, n)
      }
    } finally {
      await c.end()
    }
  })

  it('reports the real backend pid: pg_backend_pid, NOTIFY and pg_terminate_backend agree with BackendKeyData (was: a synthetic pid)', async () => {
    const a = through(h.port)
    const b = through(h.port)
    // Terminated while idle, pg emits 'error' (the FATAL), as it does directly.
    a.on('error', () => {})
    await a.connect()
    await b.connect()
    try {
      const told = (a as unknown as {processID: number}).processID
      const r = await a.query('select pg_backend_pid() as pid')
      assert.equal(r.rows[0].pid, told)
      await a.query('listen hoop_pid')
      const got = new Promise<pg.Notification>((resolve) => a.once('notification', resolve))
      await a.query(`notify hoop_pid, 'from myself'`)
      const n = await got
      assert.equal(n.processId, told)
      assert.equal(n.payload, 'from myself')
      const t = await b.query('select pg_terminate_backend($1) as ok', [told])
      assert.equal(t.rows[0].ok, true)
      await assert.rejects(a.query('select 1'))
    } finally {
      await a.end().catch(() => {})
      await b.end().catch(() => {})
    }
  })

  it('maps a cancel by (pid, key): the right key cancels, a wrong key for the same pid does nothing', async () => {
    const c = through(h.port)
    await c.connect()
    try {
      const inner = c as unknown as {processID: number; secretKey: number}
      const key = Buffer.alloc(4)
      key.writeInt32BE(inner.secretKey)
      const wrong = Buffer.from(key.map((x) => x ^ 0xff))
      const q = c.query('select pg_sleep(1.5) as slept')
      await new Promise((r) => setTimeout(r, 200))
      net.connect(h.port, '127.0.0.1').end(encodeCancelRequest(inner.processID, wrong))
      const done = await q
      assert.equal(done.rows.length, 1, 'a wrong key must not cancel')
      const q2 = c.query('select pg_sleep(20)')
      await untilRunning('select pg_sleep(20)')
      net.connect(h.port, '127.0.0.1').end(encodeCancelRequest(inner.processID, key))
      await assert.rejects(q2, (e: Error & {code?: string}) => e.code === '57014')
    } finally {
      await c.end()
    }
  })

  it('takes a 20 MB Bind parameter and returns a 20 MB row (was: refused above 16 MiB)', async () => {
    const c = through(h.port)
    await c.connect()
    try {
      const big = 'x'.repeat(20_000_000)
      const r = await c.query('select length($1::text) as n, md5($1::text) as h', [big])
      const direct = await adminQuery(`select md5(repeat('x', 20000000)) as h`)
      assert.equal(r.rows[0].n, 20_000_000)
      assert.equal(r.rows[0].h, direct.rows[0].h)
      const row = await c.query(`select repeat('y', 20000000) as v`)
      assert.equal((row.rows[0].v as string).length, 20_000_000)
    } finally {
      await c.end()
    }
  })

  it('streams a CopyData larger than the message limit through in pieces; a Bind over the limit is refused by its header', async () => {
    const small = await startHarness({judge: () => allow(), maxMessageBytes: 1024 * 1024})
    try {
      const c = await RawClient.connect(small.port)
      c.send(STARTUP)
      await c.until(count('Z'))
      c.send(encodeQuery(`copy ${SCHEMA}.blob from stdin`))
      await c.until(count('G'))
      // One CopyData message of 24 MiB (one row), written in 256 KiB pieces with backpressure.
      const row = Buffer.alloc(24 * 1024 * 1024, 0x61)
      row[row.length - 1] = 0x0a
      const copy = message(F.CopyData, row)
      for (let off = 0; off < copy.length; off += 256 * 1024) {
        if (!c.socket.write(copy.subarray(off, off + 256 * 1024))) await new Promise((r) => c.socket.once('drain', r))
      }
      c.send(message(F.CopyDone))
      await c.until(count('Z', 2))
      assert.deepEqual(c.errors(), [])
      c.send(encodeQuery(`select length(b) from ${SCHEMA}.blob`))
      await c.until(count('Z', 3))
      assert.deepEqual(cells(c), [String(row.length - 1)])
      // A Bind (held whole) above the limit: FATAL 08P01 naming the limit, from the header.
      c.send(encodeParse('', 'select $1::text'), encodeBind('', '', ['z'.repeat(2 * 1024 * 1024)]), encodeExecute(''), encodeSync())
      await c.closedByServer()
      const fatal = c.errors().at(-1)
      assert.equal(fatal?.C, '08P01')
      assert.match(fatal?.M ?? '', /limit 1048576/)
      c.destroy()
    } finally {
      await small.close()
    }
  })

  it('refuses a startup packet above 10,000 bytes at once, like PostgreSQL (was: buffered up to 16 MiB each)', async () => {
    const c = await RawClient.connect(h.port)
    const head = Buffer.alloc(8)
    head.writeInt32BE(16 * 1024 * 1024)
    head.writeInt32BE(196608, 4)
    c.send(head, Buffer.alloc(64 * 1024, 0x61))
    await c.closedByServer()
    assert.equal(c.errors()[0]?.C, '08P01')
    assert.match(c.errors()[0]?.M ?? '', /limit 10000/)
  })

  it('a target lost without a FATAL of its own still gets one FATAL 08006 naming it', async () => {
    const upstreams: net.Socket[] = []
    const srv = await serveEngine((client) =>
      runPgSession({
        client,
        openUpstream: async () => {
          const s = net.connect(5432, '127.0.0.1')
          await new Promise((r) => s.once('connect', r))
          upstreams.push(s)
          return s
        },
        target: {host: '127.0.0.1', tls: {mode: 'disable'}},
        logger: silentLogger,
        gate: new StatementGate({judge: async () => allow(), beforeForward: async () => {}, afterStatement: () => {}, refused: () => {}}, silentLogger),
      }),
    )
    try {
      const c = await RawClient.connect(srv.port)
      c.send(STARTUP)
      await c.until(count('Z'))
      for (const u of upstreams) u.destroy()
      await c.closedByServer()
      assert.deepEqual(
        c.errors().map((e) => [e.V, e.C]),
        [['FATAL', '08006']],
      )
      assert.match(c.errors()[0].M, /hoop: the target closed the connection.*\[TARGET_REFUSED\]/)
    } finally {
      await srv.close()
    }
  })

  it('tells the client why the target cannot be reached, with the hoop code (was: a bare 08006)', async () => {
    const srv = await serveEngine((client) =>
      runPgSession({
        client,
        openUpstream: () => Promise.reject(new HoopError('TARGET_REFUSED', 'the agent could not reach 127.0.0.1:1: connection refused (ECONNREFUSED)')),
        target: {host: '127.0.0.1', tls: {mode: 'disable'}},
        logger: silentLogger,
        gate: new StatementGate({judge: async () => allow(), beforeForward: async () => {}, afterStatement: () => {}, refused: () => {}}, silentLogger),
      }),
    )
    try {
      const c = through(srv.port)
      await assert.rejects(c.connect(), (e: Error & {code?: string}) => e.code === '08001' && /hoop: the agent could not reach .* \[TARGET_REFUSED\]/.test(e.message))
    } finally {
      await srv.close()
    }
  })
})
