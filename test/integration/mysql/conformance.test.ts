// The MySQL engine compared with a direct connection to the real MariaDB, for what issue 13 found
// broken: MariaDB's extended capabilities stripped (column metadata lost its format=json and
// type=point marks). The target link is shaped like the gateway's relay streams (TappedLink).
import {strict as assert} from 'node:assert'
import {exec as execCb} from 'node:child_process'
import {promisify} from 'node:util'
import mysql2 from 'mysql2/promise'
import {CAP, MARIADB_CAP} from '../../../src/protocol/mysql/constants.js'
import {encodePacket, PacketFramer, type Packet} from '../../../src/protocol/mysql/framer.js'
import {decodeHandshakeResponse, lenencBytes} from '../../../src/protocol/mysql/messages.js'
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
