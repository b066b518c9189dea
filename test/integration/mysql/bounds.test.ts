// What a client can make the MySQL engine hold (issue 13, "bounded everything"): commands that get
// no answer wait for the target to take the previous one, and a prepared statement keeps a bounded
// part of its text. The framer's own bounds (limit before buffering, linear joining) are unit-tested
// in test/unit/protocol/mysql/codec.test.ts.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import {COM} from '../../../src/protocol/mysql/constants.js'
import {encodePacket} from '../../../src/protocol/mysql/framer.js'
import {decodePrepareOk} from '../../../src/protocol/mysql/messages.js'
import {RawClient, startHarness, TappedLink, type Harness} from './harness.js'

const command = (code: number, body: Buffer) => encodePacket(Buffer.concat([Buffer.from([code]), body]), 0).bytes

describe('mysql engine: bounds a client cannot push past', function () {
  let h: Harness
  const links: TappedLink[] = []
  before(async () => {
    h = await startHarness({openUpstream: () => TappedLink.open(links), target: {username: 'root'}})
  })
  after(() => h.close())

  // Regression: COM_STMT_SEND_LONG_DATA (no answer) was forwarded without waiting for the target
  // to take it, so a client could queue any amount in the gateway towards a slow target.
  it('a flood of COM_STMT_SEND_LONG_DATA towards a stalled target: the engine stops reading the client, then carries on', async () => {
    const c = await RawClient.open(h.port)
    const link = links.at(-1) as TappedLink
    c.sock.write(command(COM.STMT_PREPARE, Buffer.from('SELECT LENGTH(?) AS n')))
    const ok = decodePrepareOk((await c.read())!.payload)
    assert.ok(ok)
    for (let i = 0; i < 4; i++) await c.read() // parameter, EOF, column, EOF
    const id = Buffer.alloc(6)
    id.writeUInt32LE(ok.statementId, 0) // then parameter 0 (2 bytes)
    link.stall()
    const piece = Buffer.alloc(64 * 1024, 0x61)
    const sent = 256 // 16 MiB in all
    for (let i = 0; i < sent; i++) c.sock.write(command(COM.STMT_SEND_LONG_DATA, Buffer.concat([id, piece])))
    // Give the engine every chance to read on; what it holds for the target must stay small.
    for (let i = 0; i < 20 && c.sock.writableLength > 0; i++) await new Promise((r) => setTimeout(r, 25))
    assert.ok(link.writableLength <= 1024 * 1024, `the engine queued ${link.writableLength} bytes towards a stalled target`)
    assert.ok(c.sock.writableLength > 0, 'the client was still being read')
    link.unstall()
    c.sock.write(command(COM.STMT_CLOSE, id.subarray(0, 4)))
    c.sock.write(command(COM.QUERY, Buffer.from("SELECT 'alive'")))
    const first = await c.read()
    assert.equal(first?.payload[0], 1, 'one column')
    c.sock.destroy()
  })

  it('a prepared statement keeps at most 4096 characters of its text while it is open', async () => {
    const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'root', database: 'test'})
    try {
      const sql = `SELECT ? AS v /* ${'x'.repeat(100_000)} */`
      const [rows] = await c.execute(sql, [7])
      assert.deepEqual(rows, [{v: 7}])
    } finally {
      await c.end()
    }
    const executed = h.events.filter((e) => e.hook === 'afterStatement' && e.sql.startsWith('SELECT ? AS v'))
    assert.equal(executed.length, 1)
    assert.equal(executed[0].sql.length, 4096)
  })
})
