// The MySQL codec: framing (split at every byte, 16 MiB continuation, limits before buffering),
// handshake and response encoding, rows, and the auth plugins checked against mysql2's own code.
import {strict as assert} from 'node:assert'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {generateKeyPairSync, privateDecrypt, constants} from 'node:crypto'
import {cachingSha2Token, nativePasswordToken, rsaEncryptPassword} from '../../../../src/protocol/mysql/auth.js'
import {decodeCommand} from '../../../../src/protocol/mysql/commands.js'
import {CAP, ER_CONNECT_TO_FOREIGN_DATA_SOURCE, ER_TABLEACCESS_DENIED_ERROR, MARIADB_CAP, MAX_PHYSICAL, TYPE} from '../../../../src/protocol/mysql/constants.js'
import {encodePacket, PacketFramer, type Packet} from '../../../../src/protocol/mysql/framer.js'
import {
  decodeColumnDefinition,
  decodeErr,
  decodeHandshake,
  decodeHandshakeResponse,
  encodeColumnDefinition,
  encodeErr,
  encodeHandshake,
  encodeHandshakeResponse,
  encodeSSLRequest,
  isProgressReport,
  isResultTerminator,
  lenencBytes,
  lenencInt,
  Reader,
} from '../../../../src/protocol/mysql/messages.js'
import {encodeTextRow, nullRow, rewriteBinaryRow, rewriteTextRow, RowShapeError} from '../../../../src/protocol/mysql/rows.js'

const require = createRequire(import.meta.url)
/** mysql2's internal modules are not exported: load them by file path. */
const mysql2File = (rel: string): unknown => require(join(dirname(require.resolve('mysql2')), rel))

function frameAll(bytes: Buffer, max = 1 << 30, split?: number): Packet[] {
  const f = new PacketFramer(max)
  const out: Packet[] = []
  const push = (b: Buffer) => assert.equal(f.push(b, (p) => out.push({...p, payload: Buffer.from(p.payload)})), undefined)
  if (split === undefined) push(bytes)
  else {
    push(bytes.subarray(0, split))
    push(bytes.subarray(split))
  }
  return out
}

describe('mysql codec: framer', () => {
  const stream = Buffer.concat([encodePacket(Buffer.from('\x03select 1'), 0).bytes, encodePacket(Buffer.alloc(0), 1).bytes, encodePacket(Buffer.from('abc'), 2).bytes])

  it('yields the same packets whatever byte the input is split at', () => {
    const whole = frameAll(stream)
    assert.deepEqual(whole.map((p) => [p.seq, p.payload.toString('latin1')]), [[0, '\x03select 1'], [1, ''], [2, 'abc']])
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(frameAll(stream, 1 << 30, i).map((p) => [p.seq, p.payload.toString('latin1')]), whole.map((p) => [p.seq, p.payload.toString('latin1')]), `split at ${i}`)
    }
  })

  it('joins a 16 MiB payload from continuation packets and splits it back the same way', () => {
    const big = Buffer.alloc(MAX_PHYSICAL + 10, 7)
    const enc = encodePacket(big, 5)
    assert.equal(enc.nextSeq, 7)
    const got = frameAll(enc.bytes)
    assert.equal(got.length, 1)
    assert.equal(got[0].seq, 5)
    assert.equal(got[0].lastSeq, 6)
    assert.ok(got[0].payload.equals(big))
    // exactly 0xFFFFFF bytes: followed by an empty packet
    const exact = encodePacket(Buffer.alloc(MAX_PHYSICAL, 1), 0)
    assert.equal(exact.bytes.length, MAX_PHYSICAL + 8)
    assert.equal(frameAll(exact.bytes)[0].payload.length, MAX_PHYSICAL)
  })

  it('yields the same packets when fed one byte at a time', () => {
    const big = encodePacket(Buffer.alloc(70_000, 9), 3).bytes
    const all = Buffer.concat([stream, big, stream])
    const f = new PacketFramer(1 << 30)
    const got: [number, number, string][] = []
    for (let i = 0; i < all.length; i++) f.push(all.subarray(i, i + 1), (p) => got.push([p.seq, p.payload.length, p.payload.subarray(0, 3).toString('latin1')]))
    assert.deepEqual(got, [...frameAll(all)].map((p) => [p.seq, p.payload.length, p.payload.subarray(0, 3).toString('latin1')]))
    assert.equal(got.length, 7)
    assert.equal(f.buffered, 0)
  })

  // Regression: the framer re-joined everything pending with each new piece, so a 16 MiB packet
  // sent in 1 KiB pieces copied about 128 GiB (36 s of CPU). Now each byte is copied a bounded number of times.
  it('frames a 16 MiB packet sent in 1 KiB pieces copying each byte at most twice (linear, not quadratic)', () => {
    const payload = Buffer.alloc(MAX_PHYSICAL - 1, 0x61)
    const bytes = encodePacket(payload, 0).bytes
    const f = new PacketFramer(1 << 30)
    let got: Buffer | undefined
    for (let o = 0; o < bytes.length; o += 1024) f.push(bytes.subarray(o, o + 1024), (p) => (got = p.payload))
    assert.ok(got?.equals(payload))
    assert.ok(f.copied <= 2 * bytes.length, `copied ${f.copied} bytes for ${bytes.length}`)
    // A logical packet over 16 MiB (continuation packets) is joined once more at its end.
    const bigger = encodePacket(Buffer.alloc(MAX_PHYSICAL + 5000, 0x62), 0).bytes
    const g = new PacketFramer(1 << 30)
    let n = 0
    for (let o = 0; o < bigger.length; o += 1024) g.push(bigger.subarray(o, o + 1024), (p) => (n = p.payload.length))
    assert.equal(n, MAX_PHYSICAL + 5000)
    assert.ok(g.copied <= 3 * bigger.length, `copied ${g.copied} bytes for ${bigger.length}`)
  })

  it('holds no more than the packet being assembled (buffer doubling up to its declared size)', () => {
    const f = new PacketFramer(1 << 24)
    const bytes = encodePacket(Buffer.alloc(1_000_000, 1), 0).bytes
    f.push(bytes.subarray(0, 10), () => assert.fail('incomplete'))
    assert.ok(f.buffered <= 64 * 1024, `holds ${f.buffered} after 10 bytes`)
    f.push(bytes.subarray(10, 300_000), () => assert.fail('incomplete'))
    assert.ok(f.buffered <= 2 * 300_000, `holds ${f.buffered} after 300 kB`)
    let done = false
    f.push(bytes.subarray(300_000), () => (done = true))
    assert.ok(done)
    assert.equal(f.buffered, 0)
  })

  it('refuses a declared length above the limit from the header alone', () => {
    const f = new PacketFramer(100)
    const err = f.push(Buffer.from([101, 0, 0, 0]), () => assert.fail('no packet'))
    assert.deepEqual(err, {kind: 'length', declared: 101, limit: 100, seq: 0})
    assert.equal(f.buffered, 0)
    assert.deepEqual(f.push(Buffer.from([1, 0, 0, 0, 1]), () => assert.fail('stays failed')), err)
  })
})

describe('mysql codec: messages', () => {
  it('lenenc integers round-trip at every width boundary', () => {
    for (const n of [0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 2 ** 40]) assert.equal(new Reader(lenencInt(n)).lenenc(), n)
    assert.equal(new Reader(Buffer.from([0xfb])).lenenc(), null)
    assert.throws(() => new Reader(Buffer.from([0xfc, 1])).lenenc(), /needs 2 bytes/)
  })

  it('our greeting decodes as a HandshakeV10 with a 20-byte scramble', () => {
    const authData = Buffer.from('abcdefghijklmnopqrst')
    const g = decodeHandshake(encodeHandshake({serverVersion: '10.11.0-MariaDB', connectionId: 42, authData, capabilities: CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH | CAP.LONG_PASSWORD, charset: 45, status: 2, authPlugin: 'mysql_native_password'}))
    assert.ok(g)
    assert.equal(g.connectionId, 42)
    assert.ok(g.authData.equals(authData))
    assert.equal(g.authPlugin, 'mysql_native_password')
    assert.equal(decodeHandshake(Buffer.from([9, 0])), undefined)
    assert.equal(decodeHandshake(Buffer.from([10, 0x41])), undefined)
  })

  it('HandshakeResponse41 and SSLRequest round-trip; truncated responses are Malformed, not exceptions', () => {
    const caps = CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH | CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA | CAP.CONNECT_WITH_DB | CAP.CONNECT_ATTRS
    const attrs = Buffer.concat([lenencInt(8), Buffer.from([3]), Buffer.from('abc'), Buffer.from([3]), Buffer.from('xyz')])
    const enc = encodeHandshakeResponse({capabilities: caps, maxPacket: 1 << 24, charset: 45, username: 'u', authResponse: Buffer.alloc(20, 1), database: 'db', authPlugin: 'caching_sha2_password', attributes: attrs})
    const d = decodeHandshakeResponse(enc)
    assert.equal(d.kind, 'Response')
    if (d.kind !== 'Response') return
    assert.equal(d.username, 'u')
    assert.equal(d.database, 'db')
    assert.equal(d.authPlugin, 'caching_sha2_password')
    assert.ok(d.attributes?.equals(attrs))
    assert.equal(decodeHandshakeResponse(encodeSSLRequest(caps, 1 << 24, 45)).kind, 'SSLRequest')
    for (let i = 0; i < 40; i++) assert.ok(['Malformed', 'Response'].includes(decodeHandshakeResponse(enc.subarray(0, i)).kind))
  })

  it('ERR with and without SQLSTATE; column definitions; terminators', () => {
    assert.deepEqual(decodeErr(encodeErr({code: ER_TABLEACCESS_DENIED_ERROR, sqlState: '42000', message: 'no'})), {code: ER_TABLEACCESS_DENIED_ERROR, sqlState: '42000', message: 'no'})
    assert.deepEqual(decodeErr(encodeErr({code: ER_CONNECT_TO_FOREIGN_DATA_SOURCE, sqlState: 'HY000', message: 'x'}, false)), {code: ER_CONNECT_TO_FOREIGN_DATA_SOURCE, sqlState: 'HY000', message: 'x'})
    const def = {catalog: 'def', schema: 'test', table: 'c', orgTable: 'customers', name: 'e', orgName: 'email', charset: 45, length: 400, type: TYPE.VAR_STRING, flags: 0, decimals: 0}
    assert.deepEqual(decodeColumnDefinition(encodeColumnDefinition(def)), def)
    assert.equal(decodeColumnDefinition(Buffer.from([3, 0x64])), undefined)
    assert.ok(isResultTerminator(Buffer.from([0xfe, 0, 0, 2, 0]), false))
    assert.ok(!isResultTerminator(Buffer.concat([Buffer.from([0xfe]), Buffer.alloc(12)]), false))
    assert.ok(isResultTerminator(Buffer.concat([Buffer.from([0xfe]), Buffer.alloc(12)]), true))
  })

  it('MariaDB extended capabilities ride in the greeting and the response only when CLIENT_MYSQL is clear', () => {
    const base = CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH
    const ext = MARIADB_CAP.PROGRESS | MARIADB_CAP.EXTENDED_METADATA
    const greet = (capabilities: number) => decodeHandshake(encodeHandshake({serverVersion: '5.5.5-10.11.0-MariaDB', connectionId: 1, authData: Buffer.alloc(20, 0x41), capabilities, mariadbCapabilities: ext, charset: 45, status: 2, authPlugin: 'mysql_native_password'}))
    assert.equal(greet(base)?.mariadbCapabilities, ext)
    assert.equal(greet(base | CAP.LONG_PASSWORD)?.mariadbCapabilities, 0)
    const hello = (capabilities: number) => decodeHandshakeResponse(encodeHandshakeResponse({capabilities, maxPacket: 1 << 24, charset: 45, username: 'u', authResponse: Buffer.alloc(20), mariadbCapabilities: ext}))
    const maria = hello(base)
    assert.equal(maria.kind === 'Response' && maria.mariadbCapabilities, ext)
    const my = hello(base | CAP.LONG_PASSWORD)
    assert.equal(my.kind === 'Response' && my.mariadbCapabilities, undefined)
    assert.equal(encodeSSLRequest(base, 1 << 24, 45, ext).readUInt32LE(28), ext)
  })

  it('column definitions with MariaDB extended metadata (format json, type point) decode only when it is in force', () => {
    const def = {catalog: 'def', schema: 'test', table: 't', orgTable: 't', name: 'j', orgName: 'j', charset: 33, length: 0xffffffff, type: TYPE.BLOB, flags: 0x90, decimals: 0, formatName: 'json'}
    const enc = encodeColumnDefinition(def, true)
    assert.deepEqual(decodeColumnDefinition(enc, true), def)
    // Read without the extended block, the fixed fields would be misread: refused, never guessed.
    assert.equal(decodeColumnDefinition(enc, false), undefined)
    const point = {...def, name: 'p', orgName: 'p', type: TYPE.GEOMETRY, formatName: undefined, dataTypeName: 'point'}
    delete point.formatName
    assert.deepEqual(decodeColumnDefinition(encodeColumnDefinition(point, true), true), point)
    // An empty block (most columns) and unknown keys.
    const plain = {catalog: 'def', schema: '', table: '', orgTable: '', name: '1', orgName: '', charset: 63, length: 1, type: TYPE.LONG, flags: 0x81, decimals: 0}
    assert.deepEqual(decodeColumnDefinition(encodeColumnDefinition(plain, true), true), plain)
    const unknownKey = Buffer.concat([...['def', '', '', '', 'x', ''].map((s) => lenencBytes(s)), lenencBytes(Buffer.concat([Buffer.from([7]), lenencBytes('future')])), encodeColumnDefinition(plain).subarray(-13)])
    assert.equal(decodeColumnDefinition(unknownKey, true)?.type, TYPE.LONG)
  })

  it('a MariaDB progress report is an ERR with code 0xFFFF; other ERRs are not', () => {
    assert.ok(isProgressReport(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 1, 1, 2, 0, 0, 0]), lenencBytes('copy to tmp table')])))
    assert.ok(!isProgressReport(encodeErr({code: 1927, sqlState: '70100', message: 'Connection was killed'})))
    assert.ok(!isProgressReport(Buffer.from([0xff, 0xff])))
  })

  it('commands decode, short ones are Malformed', () => {
    assert.deepEqual(decodeCommand(Buffer.from('\x03select 1')), {kind: 'Query', sql: 'select 1'})
    assert.equal(decodeCommand(Buffer.from([0x17, 1, 0])).kind, 'Malformed')
    assert.equal(decodeCommand(Buffer.alloc(0)).kind, 'Malformed')
    assert.deepEqual(decodeCommand(Buffer.from([0x99])), {kind: 'Unknown', command: 0x99})
  })
})

describe('mysql codec: rows', () => {
  it('rewrites text cells (value or NULL) with correct length prefixes', () => {
    const long = 'x'.repeat(300)
    const row = encodeTextRow(['1', long, null, 'z'])
    const out = rewriteTextRow(row, 4, (i) => (i === 1 ? Buffer.from('****') : i === 3 ? null : undefined))
    assert.ok(out.equals(encodeTextRow(['1', '****', null, null])))
    assert.equal(rewriteTextRow(row, 4, () => undefined), row)
    assert.throws(() => rewriteTextRow(row.subarray(0, 10), 4, () => undefined), RowShapeError)
    assert.throws(() => rewriteTextRow(row, 3, () => undefined), RowShapeError)
  })

  it('rewrites binary cells: a string gets a new value, a number becomes NULL in the bitmap', () => {
    const types = [TYPE.LONG, TYPE.VAR_STRING, TYPE.LONGLONG, TYPE.DATETIME]
    const payload = Buffer.concat([Buffer.from([0x00, 0x00]), Buffer.from([7, 0, 0, 0]), lenencInt(5), Buffer.from('hello'), Buffer.alloc(8, 1), Buffer.from([4, 0xe8, 0x07, 1, 2])])
    const out = rewriteBinaryRow(payload, types, (i) => (i === 1 ? Buffer.from('****') : i === 2 ? null : undefined))
    const expected = Buffer.concat([Buffer.from([0x00, 0x10]), Buffer.from([7, 0, 0, 0]), lenencInt(4), Buffer.from('****'), Buffer.from([4, 0xe8, 0x07, 1, 2])])
    assert.ok(out.equals(expected), out.toString('hex'))
    assert.throws(() => rewriteBinaryRow(payload.subarray(0, 8), types, () => undefined), RowShapeError)
    assert.equal(nullRow(3, false).toString('hex'), 'fbfbfb')
    assert.equal(nullRow(3, true).toString('hex'), '001c')
  })
})

/** mysql2's caching_sha2_password client state machine, for one password. */
function sha2Step(password: string): (data: Buffer) => Buffer {
  const plugin = mysql2File('lib/auth_plugins/caching_sha2_password.js') as (o: object) => (c: {connection: {config: object}}) => (data: Buffer) => Buffer
  return plugin({overrideIsSecure: false})({connection: {config: {password}}})
}

describe('mysql codec: auth plugins (vectors from mysql2, another implementation)', () => {
  const scramble = Buffer.from('0123456789abcdefghij')

  it('mysql_native_password matches mysql2', () => {
    const auth41 = mysql2File('lib/auth_41.js') as {calculateToken: (pw: string, s1: Buffer, s2: Buffer) => Buffer}
    assert.ok(nativePasswordToken('pw', scramble).equals(auth41.calculateToken('pw', scramble.subarray(0, 8), scramble.subarray(8))))
    assert.equal(nativePasswordToken('', scramble).length, 0)
  })

  it('caching_sha2_password fast-auth token matches mysql2', () => {
    const step = sha2Step('s3cret')
    const theirs = step(Buffer.concat([scramble, Buffer.from([0])]))
    assert.ok(cachingSha2Token('s3cret', scramble).equals(theirs))
  })

  it('caching_sha2_password full auth without TLS: RSA-OAEP of (password + NUL) XOR scramble, as mysql2 sends it', () => {
    const {publicKey, privateKey} = generateKeyPairSync('rsa', {modulusLength: 2048, publicKeyEncoding: {type: 'spki', format: 'pem'}, privateKeyEncoding: {type: 'pkcs8', format: 'pem'}})
    const pw = 'a-long-password-longer-than-the-scramble'
    const decrypt = (b: Buffer) => privateDecrypt({key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING}, b)
    const plain = decrypt(rsaEncryptPassword(pw, scramble, publicKey))
    const unx = Buffer.from(plain.map((b, i) => b ^ scramble[i % 20]))
    assert.equal(unx.toString('utf8'), pw + '\0')
    // mysql2: token, then "full auth" (0x04) -> asks for the key (0x02), then encrypts for it.
    const step = sha2Step(pw)
    step(Buffer.concat([scramble, Buffer.from([0])]))
    assert.deepEqual([...step(Buffer.from([0x04]))], [0x02])
    assert.ok(decrypt(step(Buffer.from(publicKey))).equals(plain))
  })
})
