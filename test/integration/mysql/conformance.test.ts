// The MySQL engine compared with a direct connection to the real MariaDB, for what issue 13 found
// broken: MariaDB's extended capabilities stripped (column metadata lost its format=json and
// type=point marks), and a connection killed server-side while idle left open toward the client.
// The target link is shaped like the gateway's relay streams (TappedLink), where the second showed.
import {strict as assert} from 'node:assert'
import {exec as execCb} from 'node:child_process'
import {promisify} from 'node:util'
import mysql from 'mysql2'
import mysql2 from 'mysql2/promise'
import {CAP, MARIADB_CAP} from '../../../src/protocol/mysql/constants.js'
import {encodePacket, PacketFramer, type Packet} from '../../../src/protocol/mysql/framer.js'
import {decodeHandshakeResponse, encodeErr, lenencBytes} from '../../../src/protocol/mysql/messages.js'
import {startHarness, TappedLink, type Harness} from './harness.js'

const exec = promisify(execCb)
const T = `hoop_myconf_${process.pid}`
const direct = (o: mysql2.ConnectionOptions = {}) => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', ...o})

/** The `mysql` client (MariaDB's own, which speaks the extended capabilities) reading a script from stdin. */
async function cli(port: number, script: string, extra = ''): Promise<{stdout: string; stderr: string; code: number}> {
  try {
    const r = await exec(`mysql -h 127.0.0.1 -P ${port} -u root --protocol=TCP --ssl=0 ${extra} test <<'EOF'\n${script}\nEOF`, {timeout: 20_000, shell: '/bin/bash'})
    return {stdout: r.stdout, stderr: r.stderr, code: 0}
  } catch (err) {
    const e = err as {stdout?: string; stderr?: string; code?: number}
    return {stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code ?? 1}
  }
}
/** The first packet the engine wrote to the target after the greeting: its HandshakeResponse41. */
function loginOf(link: TappedLink) {
  const packets: Packet[] = []
  new PacketFramer(1 << 24).push(Buffer.concat(link.written), (p) => packets.push(p))
  const hello = decodeHandshakeResponse(packets[0].payload)
  assert.equal(hello.kind, 'Response')
  return hello.kind === 'Response' ? hello : assert.fail('no login')
}

/** A callback-API connection (its events and errors are mysql2's own, unwrapped), connected. */
async function open(port: number): Promise<mysql.Connection> {
  const c = mysql.createConnection({host: '127.0.0.1', port, user: 'root', database: 'test'})
  await new Promise<void>((resolve, reject) => c.connect((err) => (err ? reject(err) : resolve())))
  return c
}

/** What an idle connection reports when its server goes away: its events until 'end', with error codes. */
function endOf(c: mysql.Connection): Promise<string[]> {
  const seen: string[] = []
  return new Promise((resolve) => {
    c.on('error', (e: {code?: string | number; fatal?: boolean}) => seen.push(`error ${e.code} fatal=${e.fatal}`))
    c.once('end', () => {
      seen.push('end')
      // An 'error' event may follow the 'end'.
      setTimeout(() => resolve(seen), 50)
    })
  })
}

/**
 * Resolves once the server runs `sql` on connection `id` (its processlist says so): killed before
 * the statement got there, the connection would be an idle one, which ends otherwise. No fixed
 * pause is sure to be long enough on a loaded machine.
 */
async function untilRunning(id: number, sql: string): Promise<void> {
  const a = await direct()
  try {
    const deadline = Date.now() + 30_000
    for (;;) {
      const [rows] = await a.query<mysql2.RowDataPacket[]>('SELECT info FROM information_schema.processlist WHERE id = ?', [id])
      if (rows[0]?.info === sql) return
      if (Date.now() > deadline) throw new Error(`connection ${id} did not run "${sql}" within 30 s; it runs ${JSON.stringify(rows[0]?.info)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  } finally {
    await a.end()
  }
}

async function kill(id: number, what = ''): Promise<void> {
  const a = await direct()
  try {
    await a.query(`KILL ${what} ${id}`)
  } finally {
    await a.end()
  }
}

describe('mysql engine: behaves as a direct connection (issue 13)', function () {
  let h: Harness
  const links: TappedLink[] = []
  /** Set up the next link the engine opens (before the client connects). */
  let nextLink: ((l: TappedLink) => void) | undefined
  before(async () => {
    const c = await direct({multipleStatements: true})
    await c.query(`DROP TABLE IF EXISTS ${T}; CREATE TABLE ${T} (id int primary key, j JSON, p POINT, u UUID)`)
    await c.query(`INSERT INTO ${T} VALUES (1, '{"a": [1, 2], "b": null}', POINT(1, 2), '123e4567-e89b-12d3-a456-426655440000')`)
    await c.end()
    const open = async () => {
      const l = await TappedLink.open(links)
      nextLink?.(l)
      nextLink = undefined
      return l
    }
    h = await startHarness({openUpstream: open, target: {username: 'root'}})
  })
  after(async () => {
    await h.close()
    const c = await direct()
    await c.query(`DROP TABLE IF EXISTS ${T}`)
    await c.end()
  })

  it('MariaDB extended metadata reaches the client: mysql --column-type-info shows format=json, type=point, type=uuid as directly', async () => {
    const types = (out: string) => out.split('\n').filter((l) => l.startsWith('Type:'))
    const want = types((await cli(3306, `SELECT j, p, u FROM ${T};`, '--column-type-info -t')).stdout)
    assert.deepEqual(want.map((l) => l.replace(/\s+/g, ' ')), ['Type: BLOB (format=json)', 'Type: GEOMETRY (type=point)', 'Type: STRING (type=uuid)'])
    const got = await cli(h.port, `SELECT j, p, u FROM ${T};`, '--column-type-info -t')
    assert.equal(got.code, 0, got.stderr)
    assert.deepEqual(types(got.stdout), want)
  })

  it('negotiates the extended capabilities on both links alike: the client\'s choice within what hoop carries', async () => {
    const before = links.length
    await cli(h.port, 'SELECT 1;')
    const maria = loginOf(links[before])
    assert.equal(maria.capabilities & CAP.LONG_PASSWORD, 0, 'CLIENT_MYSQL clear towards MariaDB for a MariaDB client')
    assert.equal(maria.mariadbCapabilities, MARIADB_CAP.PROGRESS | MARIADB_CAP.EXTENDED_METADATA)
    const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'root', database: 'test'})
    await c.end()
    const my = loginOf(links[before + 1])
    assert.notEqual(my.capabilities & CAP.LONG_PASSWORD, 0, 'mysql2 sets CLIENT_MYSQL: so does the login')
    assert.equal(my.mariadbCapabilities, undefined)
  })

  it('mysql2 returns a JSON column as it does directly (text and binary protocol)', async () => {
    const sql = `SELECT id, j, JSON_OBJECT('k', id) AS o, p FROM ${T}`
    const d = await direct()
    const c = await mysql2.createConnection({host: '127.0.0.1', port: h.port, user: 'root', database: 'test'})
    try {
      const [want, wantFields] = await d.query(sql)
      const [got, gotFields] = await c.query(sql)
      assert.deepEqual(got, want)
      assert.deepEqual(
        gotFields.map((f) => [f.name, f.columnType, f.characterSet, f.flags]),
        wantFields.map((f) => [f.name, f.columnType, f.characterSet, f.flags]),
      )
      assert.deepEqual((await c.execute(sql + ' WHERE id = ?', [1]))[0], (await d.execute(sql + ' WHERE id = ?', [1]))[0])
    } finally {
      await c.end()
      await d.end()
    }
  })

  // Regression: the engine noticed the target's close only when it next read from it, so an idle
  // client kept a dead connection (pools never evicted it) and its next query got a read error
  // and an ERR numbered 0 ("packets out of order").
  it('a connection killed server-side while idle ends toward the client at once; a pool replaces it', async () => {
    const idleKill = async (port: number) => {
      const c = await open(port)
      const ended = endOf(c)
      await kill(c.threadId as number)
      const r = await ended
      c.destroy()
      return r
    }
    const want = await idleKill(3306)
    assert.deepEqual(want, ['end', 'error PROTOCOL_CONNECTION_LOST fatal=true'])
    assert.deepEqual(await idleKill(h.port), want)

    // A pool: its idle connection is killed; once the client has seen the end, the next query runs on a new one.
    const evicted = async (port: number): Promise<boolean> => {
      const pool = mysql.createPool({host: '127.0.0.1', port, user: 'root', database: 'test', connectionLimit: 1})
      const q = (sql: string) => new Promise<{id: number}[]>((resolve, reject) => pool.query(sql, (err, rows) => (err ? reject(err) : resolve(rows as {id: number}[]))))
      try {
        const conn = await new Promise<mysql.PoolConnection>((resolve, reject) => pool.getConnection((err, c) => (err ? reject(err) : resolve(c))))
        const ended = new Promise((resolve) => conn.once('end', resolve))
        conn.release()
        await kill(conn.threadId as number)
        await ended
        const [second] = await q('SELECT CONNECTION_ID() AS id')
        return second.id !== conn.threadId
      } finally {
        await new Promise((resolve) => pool.end(resolve))
      }
    }
    assert.equal(await evicted(3306), true)
    assert.equal(await evicted(h.port), true)
  })

  it('an unsolicited ERR before the target closes (ER_CONNECTION_KILLED) reaches the idle client as the server sent it', async () => {
    const c = await open(h.port)
    const ended = endOf(c)
    const link = links.at(-1) as TappedLink
    link.inject(encodePacket(encodeErr({code: 1927, sqlState: '70100', message: 'Connection was killed'}), 0).bytes)
    link.hangUp()
    // What mysql2 reports for an ERR while no command runs (as for MySQL 8's ER_CLIENT_INTERACTION_TIMEOUT).
    assert.deepEqual(await ended, ['error 1927 fatal=true', 'end'])
    c.destroy()
  })

  it('a target that dies during a query: the client sees the connection lost, as directly (no ERR of hoop\'s numbered 0)', async () => {
    const outcome = async (port: number): Promise<string> => {
      const c = await open(port)
      c.on('error', () => undefined)
      const warnings: unknown[] = []
      c.on('warn', (w: unknown) => warnings.push(w))
      const q = new Promise<string>((resolve) => c.query('SELECT SLEEP(10)', (e: {code?: string; fatal?: boolean} | null) => resolve(e ? `${e.code} fatal=${e.fatal}` : 'ok')))
      await untilRunning(c.threadId as number, 'SELECT SLEEP(10)')
      await kill(c.threadId as number)
      const r = await q
      c.destroy()
      return `${r} warnings=${warnings.length}`
    }
    const want = await outcome(3306)
    assert.equal(want, 'PROTOCOL_CONNECTION_LOST fatal=true warnings=0')
    assert.equal(await outcome(h.port), want)
  })

  it('MariaDB progress reports inside a response are relayed, and the response goes on', async () => {
    // The server reports progress only for long ALTER/LOAD statements: inject a report (stage 1 of
    // 2, 50%) in front of the target's answer to one query.
    const report = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 1, 1, 2, 0x50, 0xc3, 0x00]), lenencBytes('copy to tmp table')])
    let injected = 0
    nextLink = (l) => {
      l.fromTarget = (d) => {
        if (injected || !l.written.some((w) => w.includes('after progress'))) return d
        injected++
        return Buffer.concat([encodePacket(report, 1).bytes, d])
      }
    }
    const r = await cli(h.port, "SELECT 'after progress' AS x;\nSELECT 'and after';", '-N -B')
    assert.equal(injected, 1)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'after progress\nand after\n')
  })
})
