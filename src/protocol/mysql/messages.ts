// MySQL / MariaDB message codec: handshake, authentication, OK / ERR / EOF, column definitions,
// COM_STMT_PREPARE answers. Pure functions over payloads (packet framing is in framer.ts).
// Decoders never throw on hostile input: they return `undefined` (or a Malformed value) instead.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_response_packets.html
// https://mariadb.com/kb/en/connection/
import {CAP, PROGRESS_REPORT_CODE} from './constants.js'
import {errorMessage} from '../../shared/errors.js'

// ---------------------------------------------------------------------------------------------
// Primitive reader / writer

export class Reader {
  off: number
  constructor(
    readonly buf: Buffer,
    start = 0,
  ) {
    this.off = start
  }

  get left(): number {
    return this.buf.length - this.off
  }

  private need(n: number): void {
    if (n < 0 || this.off + n > this.buf.length) throw new MalformedPacket(`needs ${n} bytes at offset ${this.off}, has ${this.left}`)
  }

  u8(): number {
    this.need(1)
    return this.buf[this.off++]
  }

  u16(): number {
    this.need(2)
    const v = this.buf.readUInt16LE(this.off)
    this.off += 2
    return v
  }

  u32(): number {
    this.need(4)
    const v = this.buf.readUInt32LE(this.off)
    this.off += 4
    return v
  }

  bytes(n: number): Buffer {
    this.need(n)
    const b = this.buf.subarray(this.off, this.off + n)
    this.off += n
    return b
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.off)
    this.off = this.buf.length
    return b
  }

  /** NUL-terminated string; a missing terminator takes the rest. */
  nulBytes(): Buffer {
    const end = this.buf.indexOf(0, this.off)
    const stop = end < 0 ? this.buf.length : end
    const b = this.buf.subarray(this.off, stop)
    this.off = end < 0 ? stop : stop + 1
    return b
  }

  nulString(): string {
    return this.nulBytes().toString('utf8')
  }

  /** Length-encoded integer; `null` for the NULL marker 0xFB. */
  lenenc(): number | null {
    const first = this.u8()
    if (first < 0xfb) return first
    if (first === 0xfb) return null
    if (first === 0xfc) return this.u16()
    if (first === 0xfd) {
      this.need(3)
      const v = this.buf.readUIntLE(this.off, 3)
      this.off += 3
      return v
    }
    if (first === 0xfe) {
      this.need(8)
      const v = this.buf.readBigUInt64LE(this.off)
      this.off += 8
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedPacket('length-encoded integer out of range')
      return Number(v)
    }
    throw new MalformedPacket('invalid length-encoded integer prefix 0xff')
  }

  lenencBytes(): Buffer | null {
    const n = this.lenenc()
    return n === null ? null : this.bytes(n)
  }

  lenencString(): string {
    return (this.lenencBytes() ?? Buffer.alloc(0)).toString('utf8')
  }
}

export class MalformedPacket extends Error {}

export function lenencInt(n: number): Buffer {
  if (n < 0xfb) return Buffer.from([n])
  if (n < 0x10000) {
    const b = Buffer.allocUnsafe(3)
    b[0] = 0xfc
    b.writeUInt16LE(n, 1)
    return b
  }
  if (n < 0x1000000) {
    const b = Buffer.allocUnsafe(4)
    b[0] = 0xfd
    b.writeUIntLE(n, 1, 3)
    return b
  }
  const b = Buffer.allocUnsafe(9)
  b[0] = 0xfe
  b.writeBigUInt64LE(BigInt(n), 1)
  return b
}

export function lenencBytes(v: Buffer | string): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v
  return Buffer.concat([lenencInt(b.length), b])
}

function nul(s: string | Buffer): Buffer {
  return Buffer.concat([typeof s === 'string' ? Buffer.from(s, 'utf8') : s, Buffer.from([0])])
}

// ---------------------------------------------------------------------------------------------
// Generic responses

export const OK_HEADER = 0x00
export const EOF_HEADER = 0xfe
export const ERR_HEADER = 0xff
export const LOCAL_INFILE_HEADER = 0xfb

export interface OkPacket {
  affectedRows: number
  lastInsertId: number
  status: number
  warnings: number
  info: string
}

export interface ErrPacket {
  code: number
  sqlState: string
  message: string
}

/** Is this payload an EOF packet (or, with CLIENT_DEPRECATE_EOF, an OK packet with the 0xFE header) ending a result set? */
export function isResultTerminator(p: Buffer, deprecateEof: boolean): boolean {
  if (p.length === 0 || p[0] !== EOF_HEADER) return false
  return deprecateEof ? p.length < 0xffffff : p.length < 9
}

export function isErr(p: Buffer): boolean {
  return p.length > 0 && p[0] === ERR_HEADER
}

/**
 * A MariaDB progress report: an ERR packet with code 0xFFFF, sent while a statement runs to a
 * client that asked for MARIADB_CLIENT_PROGRESS. It does not end the response.
 * https://mariadb.com/kb/en/err_packet/
 */
export function isProgressReport(p: Buffer): boolean {
  return p.length >= 3 && p[0] === ERR_HEADER && p.readUInt16LE(1) === PROGRESS_REPORT_CODE
}

export function isOk(p: Buffer): boolean {
  return p.length >= 7 && p[0] === OK_HEADER
}

/** OK (0x00 or 0xFE header) or EOF: the server status flags, or undefined when it does not parse. */
export function statusOf(p: Buffer): number | undefined {
  try {
    const r = new Reader(p, 1)
    if (p[0] === EOF_HEADER && p.length < 9) {
      r.u16() // warnings
      return r.u16()
    }
    r.lenenc()
    r.lenenc()
    return r.u16()
  } catch {
    return undefined
  }
}

export function decodeOk(p: Buffer): OkPacket | undefined {
  try {
    const r = new Reader(p, 1)
    const affectedRows = r.lenenc() ?? 0
    const lastInsertId = r.lenenc() ?? 0
    const status = r.u16()
    const warnings = r.u16()
    return {affectedRows, lastInsertId, status, warnings, info: r.left ? r.rest().toString('utf8') : ''}
  } catch {
    return undefined
  }
}

export function encodeOk(o: Partial<OkPacket> = {}): Buffer {
  const status = Buffer.alloc(4)
  status.writeUInt16LE(o.status ?? 0x0002, 0)
  status.writeUInt16LE(o.warnings ?? 0, 2)
  return Buffer.concat([Buffer.from([OK_HEADER]), lenencInt(o.affectedRows ?? 0), lenencInt(o.lastInsertId ?? 0), status])
}

export function decodeErr(p: Buffer): ErrPacket {
  try {
    const r = new Reader(p, 1)
    const code = r.u16()
    let sqlState = 'HY000'
    if (r.left > 0 && p[r.off] === 0x23 /* # */) {
      r.u8()
      sqlState = r.bytes(5).toString('latin1')
    }
    return {code, sqlState, message: r.rest().toString('utf8')}
  } catch {
    return {code: 0, sqlState: 'HY000', message: 'malformed error packet'}
  }
}

/** ERR packet. `withState` false: the pre-4.1 form without SQLSTATE, for errors sent before the handshake. */
export function encodeErr(e: ErrPacket, withState = true): Buffer {
  const head = Buffer.alloc(3)
  head[0] = ERR_HEADER
  head.writeUInt16LE(e.code, 1)
  const state = withState ? Buffer.from('#' + e.sqlState.padEnd(5, '0').slice(0, 5), 'latin1') : Buffer.alloc(0)
  return Buffer.concat([head, state, Buffer.from(e.message, 'utf8')])
}

export function encodeEof(status: number, warnings = 0): Buffer {
  const b = Buffer.alloc(5)
  b[0] = EOF_HEADER
  b.writeUInt16LE(warnings, 1)
  b.writeUInt16LE(status, 3)
  return b
}

// ---------------------------------------------------------------------------------------------
// Connection phase

export interface HandshakeV10 {
  protocolVersion: number
  serverVersion: string
  connectionId: number
  /** auth-plugin-data (the scramble / nonce), both parts, without the trailing NUL. */
  authData: Buffer
  capabilities: number
  /** MariaDB extended capabilities (the last 4 filler bytes) when CLIENT_MYSQL is clear. */
  mariadbCapabilities: number
  charset: number
  status: number
  authPlugin: string
}

/** Decodes the server's initial handshake (protocol 10). */
export function decodeHandshake(p: Buffer): HandshakeV10 | undefined {
  try {
    const r = new Reader(p)
    const protocolVersion = r.u8()
    if (protocolVersion !== 10) return undefined
    const serverVersion = r.nulString()
    const connectionId = r.u32()
    const part1 = r.bytes(8)
    r.u8()
    let capabilities = r.u16()
    let charset = 0
    let status = 0
    let authLen = 0
    let mariadbCapabilities = 0
    let part2: Buffer = Buffer.alloc(0)
    let authPlugin = 'mysql_native_password'
    if (r.left > 0) {
      charset = r.u8()
      status = r.u16()
      capabilities = (capabilities | (r.u16() << 16)) >>> 0
      authLen = r.u8()
      const filler = r.bytes(10)
      if (!(capabilities & CAP.LONG_PASSWORD)) mariadbCapabilities = filler.readUInt32LE(6)
      if (capabilities & CAP.SECURE_CONNECTION) {
        const n = Math.max(13, authLen - 8)
        part2 = r.bytes(Math.min(n, r.left))
        if (part2.length && part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1)
      }
      if (capabilities & CAP.PLUGIN_AUTH && r.left > 0) authPlugin = r.nulString()
    }
    return {protocolVersion, serverVersion, connectionId, authData: Buffer.concat([part1, part2]), capabilities, mariadbCapabilities, charset, status, authPlugin}
  } catch {
    return undefined
  }
}

/**
 * Encodes a HandshakeV10 (the gateway's greeting to its client). `authData` must be 20 bytes.
 * `mariadbCapabilities` goes in the last 4 filler bytes when CLIENT_MYSQL is clear.
 */
export function encodeHandshake(h: Omit<HandshakeV10, 'protocolVersion' | 'mariadbCapabilities'> & {mariadbCapabilities?: number}): Buffer {
  const fixed = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10)
  let o = 0
  fixed.writeUInt32LE(h.connectionId >>> 0, o)
  o += 4
  h.authData.copy(fixed, o, 0, 8)
  o += 8
  fixed[o++] = 0
  fixed.writeUInt16LE(h.capabilities & 0xffff, o)
  o += 2
  fixed[o++] = h.charset
  fixed.writeUInt16LE(h.status, o)
  o += 2
  fixed.writeUInt16LE((h.capabilities >>> 16) & 0xffff, o)
  o += 2
  fixed[o++] = h.authData.length + 1
  if (!(h.capabilities & CAP.LONG_PASSWORD)) fixed.writeUInt32LE((h.mariadbCapabilities ?? 0) >>> 0, o + 6)
  return Buffer.concat([Buffer.from([10]), nul(h.serverVersion), fixed, nul(h.authData.subarray(8)), nul(h.authPlugin)])
}

export interface HandshakeResponse {
  capabilities: number
  maxPacket: number
  charset: number
  username: string
  authResponse: Buffer
  database?: string
  authPlugin?: string
  /** Raw connection attributes (key/value pairs, length-encoded), forwarded as is. */
  attributes?: Buffer
  /** MariaDB extended capabilities (the last 4 filler bytes) when CLIENT_MYSQL is clear. */
  mariadbCapabilities?: number
}

export type ClientHello = {kind: 'SSLRequest'; capabilities: number} | ({kind: 'Response'} & HandshakeResponse) | {kind: 'Malformed'; reason: string}

/** Decodes the client's HandshakeResponse41 (or an SSLRequest, which is its 32-byte prefix). */
export function decodeHandshakeResponse(p: Buffer): ClientHello {
  try {
    const r = new Reader(p)
    const capabilities = r.u32()
    if (!(capabilities & CAP.PROTOCOL_41)) return {kind: 'Malformed', reason: 'the client does not speak protocol 4.1 (HandshakeResponse320 is not supported)'}
    const maxPacket = r.u32()
    const charset = r.u8()
    const filler = r.bytes(23)
    const mariadbCapabilities = capabilities & CAP.LONG_PASSWORD ? undefined : filler.readUInt32LE(19)
    if (r.left === 0) return capabilities & CAP.SSL ? {kind: 'SSLRequest', capabilities} : {kind: 'Malformed', reason: 'handshake response without a user name'}
    const username = r.nulString()
    let authResponse: Buffer
    if (capabilities & CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = r.lenencBytes() ?? Buffer.alloc(0)
    else if (capabilities & CAP.SECURE_CONNECTION) authResponse = r.bytes(r.u8())
    else authResponse = r.nulBytes()
    const out: ClientHello = {kind: 'Response', capabilities, maxPacket, charset, username, authResponse}
    if (mariadbCapabilities !== undefined) out.mariadbCapabilities = mariadbCapabilities
    if (capabilities & CAP.CONNECT_WITH_DB && r.left > 0) out.database = r.nulString()
    if (capabilities & CAP.PLUGIN_AUTH && r.left > 0) out.authPlugin = r.nulString()
    if (capabilities & CAP.CONNECT_ATTRS && r.left > 0) {
      const start = r.off
      const n = r.lenenc() ?? 0
      r.bytes(n)
      out.attributes = p.subarray(start, r.off)
    }
    return out
  } catch (err) {
    return {kind: 'Malformed', reason: errorMessage(err)}
  }
}

export function encodeSSLRequest(capabilities: number, maxPacket: number, charset: number, mariadbCapabilities?: number): Buffer {
  const b = Buffer.alloc(32)
  b.writeUInt32LE((capabilities | CAP.SSL) >>> 0, 0)
  b.writeUInt32LE(maxPacket >>> 0, 4)
  b[8] = charset
  if (!(capabilities & CAP.LONG_PASSWORD)) b.writeUInt32LE((mariadbCapabilities ?? 0) >>> 0, 28)
  return b
}

/** HandshakeResponse41 as the gateway sends it to the target. */
export function encodeHandshakeResponse(h: HandshakeResponse): Buffer {
  const head = Buffer.alloc(32)
  head.writeUInt32LE(h.capabilities >>> 0, 0)
  head.writeUInt32LE(h.maxPacket >>> 0, 4)
  head[8] = h.charset
  if (!(h.capabilities & CAP.LONG_PASSWORD)) head.writeUInt32LE((h.mariadbCapabilities ?? 0) >>> 0, 28)
  const parts: Buffer[] = [head, nul(h.username)]
  if (h.capabilities & CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenencBytes(h.authResponse))
  else parts.push(Buffer.from([h.authResponse.length]), h.authResponse)
  if (h.capabilities & CAP.CONNECT_WITH_DB) parts.push(nul(h.database ?? ''))
  if (h.capabilities & CAP.PLUGIN_AUTH) parts.push(nul(h.authPlugin ?? ''))
  if (h.capabilities & CAP.CONNECT_ATTRS) parts.push(h.attributes ?? lenencInt(0))
  return Buffer.concat(parts)
}

/** The server's answers during authentication. */
export type AuthReply =
  | {kind: 'OK'}
  | {kind: 'ERR'; err: ErrPacket}
  | {kind: 'AuthSwitch'; plugin: string; data: Buffer}
  | {kind: 'MoreData'; data: Buffer}
  | {kind: 'Unknown'; header: number}

export function decodeAuthReply(p: Buffer): AuthReply {
  if (p.length === 0) return {kind: 'Unknown', header: -1}
  switch (p[0]) {
    case OK_HEADER:
      return {kind: 'OK'}
    case ERR_HEADER:
      return {kind: 'ERR', err: decodeErr(p)}
    case EOF_HEADER: {
      // AuthSwitchRequest: plugin name NUL, plugin data (a scramble usually ends with a NUL).
      const r = new Reader(p, 1)
      const plugin = r.nulString()
      let data = r.rest()
      if (data.length && data[data.length - 1] === 0) data = data.subarray(0, data.length - 1)
      return {kind: 'AuthSwitch', plugin: plugin || 'mysql_old_password', data}
    }
    case 0x01:
      return {kind: 'MoreData', data: p.subarray(1)}
    default:
      return {kind: 'Unknown', header: p[0]}
  }
}

// ---------------------------------------------------------------------------------------------
// Result sets

export interface ColumnDefinition {
  catalog: string
  schema: string
  /** Table as written in the query (may be an alias). */
  table: string
  /** The underlying table; empty for an expression. */
  orgTable: string
  /** Column name as output (may be an alias). */
  name: string
  /** The underlying column; empty for an expression. */
  orgName: string
  charset: number
  length: number
  type: number
  flags: number
  decimals: number
  /** MariaDB extended metadata: the data type name of a pluggable type ('point', 'uuid', 'inet6', ...). */
  dataTypeName?: string
  /** MariaDB extended metadata: the format of the value ('json' for a JSON column sent as a BLOB). */
  formatName?: string
}

/** Keys of MariaDB's extended column metadata. */
const EXTENDED_DATA_TYPE_NAME = 0
const EXTENDED_FORMAT_NAME = 1

/**
 * ColumnDefinition41. With MARIADB_CLIENT_EXTENDED_METADATA in force (`extendedMetadata`), a
 * length-encoded block of (key, lenenc value) pairs sits between org_name and the fixed fields.
 * https://mariadb.com/kb/en/result-set-packets/#column-definition-packet
 */
export function decodeColumnDefinition(p: Buffer, extendedMetadata = false): ColumnDefinition | undefined {
  try {
    const r = new Reader(p)
    const catalog = r.lenencString()
    const schema = r.lenencString()
    const table = r.lenencString()
    const orgTable = r.lenencString()
    const name = r.lenencString()
    const orgName = r.lenencString()
    let dataTypeName: string | undefined
    let formatName: string | undefined
    if (extendedMetadata) {
      const block = new Reader(r.lenencBytes() ?? Buffer.alloc(0))
      while (block.left > 0) {
        const key = block.u8()
        const value = block.lenencString()
        if (key === EXTENDED_DATA_TYPE_NAME) dataTypeName = value
        else if (key === EXTENDED_FORMAT_NAME) formatName = value
      }
    }
    // The fixed fields: 0x0c bytes (a misread extended block would show here).
    if ((r.lenenc() ?? 0) < 0x0c) return undefined
    const charset = r.u16()
    const length = r.u32()
    const type = r.u8()
    const flags = r.u16()
    const decimals = r.u8()
    const def: ColumnDefinition = {catalog, schema, table, orgTable, name, orgName, charset, length, type, flags, decimals}
    if (dataTypeName !== undefined) def.dataTypeName = dataTypeName
    if (formatName !== undefined) def.formatName = formatName
    return def
  } catch {
    return undefined
  }
}

export function encodeColumnDefinition(c: ColumnDefinition, extendedMetadata = false): Buffer {
  const names = [c.catalog, c.schema, c.table, c.orgTable, c.name, c.orgName].map((s) => lenencBytes(s))
  if (extendedMetadata) {
    const entries: Buffer[] = []
    if (c.dataTypeName !== undefined) entries.push(Buffer.from([EXTENDED_DATA_TYPE_NAME]), lenencBytes(c.dataTypeName))
    if (c.formatName !== undefined) entries.push(Buffer.from([EXTENDED_FORMAT_NAME]), lenencBytes(c.formatName))
    names.push(lenencBytes(Buffer.concat(entries)))
  }
  const fixed = Buffer.alloc(13)
  fixed[0] = 0x0c
  fixed.writeUInt16LE(c.charset, 1)
  fixed.writeUInt32LE(c.length >>> 0, 3)
  fixed[7] = c.type
  fixed.writeUInt16LE(c.flags, 8)
  fixed[10] = c.decimals
  return Buffer.concat([...names, fixed])
}

/** The first packet of a result set: the column count, or undefined when it is not one. */
export function decodeColumnCount(p: Buffer): number | undefined {
  if (p.length === 0 || p[0] === OK_HEADER || p[0] === ERR_HEADER || p[0] === LOCAL_INFILE_HEADER || p[0] === EOF_HEADER) return undefined
  try {
    const r = new Reader(p)
    const n = r.lenenc()
    return n === null || r.left !== 0 ? undefined : n
  } catch {
    return undefined
  }
}

export interface PrepareOk {
  statementId: number
  columns: number
  params: number
  warnings: number
}

/** COM_STMT_PREPARE_OK. */
export function decodePrepareOk(p: Buffer): PrepareOk | undefined {
  if (p.length < 9 || p[0] !== OK_HEADER) return undefined
  return {statementId: p.readUInt32LE(1), columns: p.readUInt16LE(5), params: p.readUInt16LE(7), warnings: p.length >= 12 ? p.readUInt16LE(10) : 0}
}

export function encodePrepareOk(o: PrepareOk): Buffer {
  const b = Buffer.alloc(12)
  b.writeUInt32LE(o.statementId >>> 0, 1)
  b.writeUInt16LE(o.columns, 5)
  b.writeUInt16LE(o.params, 7)
  b.writeUInt16LE(o.warnings, 10)
  return b
}
