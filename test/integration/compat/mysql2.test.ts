// Compatibility suite, mysql2 half (issue 13): mysql2's public API driven through the MySQL engine
// (the harness: real sockets, the real MariaDB, an allow-all judge) and directly against MariaDB;
// what the application observes must be the same. The scenarios are in mysql2-scenarios.ts; the
// same run through the real gateway and the built CLI is test/e2e/mysql-compat.test.ts.
import {strict as assert} from 'node:assert'
import mysql from 'mysql2/promise'
import {startHarness, type Harness} from '../mysql/harness.js'
import {coreOf, errorOf, poolReplacesKilled, scenarioOptions, scenarios} from './mysql2-scenarios.js'

const options = (port: number, extra: object = {}): mysql.ConnectionOptions => ({host: '127.0.0.1', port, user: 'root', database: 'test', ...extra})

/** Runs a scenario on a fresh connection to `port`. */
async function run(port: number, name: string): Promise<unknown> {
  const c = await mysql.createConnection(options(port, scenarioOptions[name]))
  try {
    return await scenarios[name](c)
  } finally {
    await c.end()
  }
}

describe('compatibility: mysql2 through the MySQL engine observes what it observes directly', function () {
  let h: Harness
  before(async () => {
    h = await startHarness({target: {username: 'root'}})
  })
  after(() => h.close())

  for (const name of Object.keys(scenarios)) {
    it(name, async () => {
      const want = await run(3306, name)
      const got = await run(h.port, name)
      assert.deepEqual(got, want)
    })
  }

  it('pool: a connection killed server-side is evicted and the next query runs on a new one', async () => {
    assert.equal(await poolReplacesKilled(3306), true)
    assert.equal(await poolReplacesKilled(h.port), true)
  })

  // The one difference: hoop's message names its own limit (limits.maxPacketBytes) instead of the
  // server's max_allowed_packet text. Code, SQLSTATE, sequence ids and the closed connection are the same.
  it('a statement above max_allowed_packet fails as it does directly (ER_NET_PACKET_TOO_LARGE, then the connection ends)', async () => {
    const tooBig = async (port: number) => {
      const c = await mysql.createConnection(options(port))
      const warnings: unknown[] = []
      coreOf(c).on('warn', (w: unknown) => warnings.push(w))
      const ended = new Promise<string>((resolve) => {
        coreOf(c).once('end', () => resolve('ended'))
        setTimeout(() => resolve(`not ended after 5 s (port ${port === 3306 ? 'direct' : 'hoop'})`), 5000).unref()
      })
      c.on('error', () => undefined)
      try {
        const e = (await errorOf(c.query(`SELECT LENGTH('${'x'.repeat(16 * 1024 * 1024)}') AS n`))) as {message: string}
        return {...e, message: e.message.includes('max_allowed_packet') || /exceeds the limit of 16777216/.test(e.message), warnings: warnings.length, end: await ended}
      } finally {
        c.destroy()
      }
    }
    // MariaDB itself does not always close its side within 5 s after this error (seen in about one
    // run in four), so the direct run's close is not compared; hoop's must come.
    const {end: _directEnd, ...want} = await tooBig(3306)
    assert.deepEqual(want, {code: 'ER_NET_PACKET_TOO_LARGE', errno: 1153, sqlState: '08S01', message: true, warnings: 0})
    const {end, ...got} = await tooBig(h.port)
    assert.deepEqual(got, want)
    assert.equal(end, 'ended')
  })
})
