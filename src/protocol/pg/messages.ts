// Typed PostgreSQL protocol messages: decoding of what the client (frontend) sends, decoding of
// the few server (backend) messages the engine inspects, and encoders for both directions.
// Pure: no sockets. Decoders never throw on bad input; they return a `Malformed` message instead.
// https://www.postgresql.org/docs/current/protocol-message-formats.html
import type {Frame} from './framer.js'

/** Wire letters of frontend messages. */
export const F = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Flush: 0x48, // 'H'
  FunctionCall: 0x46, // 'F'
  Parse: 0x50, // 'P'
  Password: 0x70, // 'p' (also SASLInitialResponse / SASLResponse)
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const

/** Wire letters of backend messages. */
export const B = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const

export const PROTOCOL_3_0 = 196608
export const SSL_REQUEST_CODE = 80877103
export const GSSENC_REQUEST_CODE = 80877104
export const CANCEL_REQUEST_CODE = 80877102

// ---------------------------------------------------------------------------------------------
// A small cursor over a message body. Reads past the end set `bad` instead of throwing.

export class BodyReader {
  bad = false
  constructor(
    readonly buf: Buffer,
    public off: number,
    readonly end = buf.length,
  ) {}

  int16(): number {
    if (this.off + 2 > this.end) return this.fail()
    const v = this.buf.readInt16BE(this.off)
    this.off += 2
    return v
  }

  /** A count the protocol sends as Int16 but PostgreSQL reads unsigned (pq_getmsgint(msg, 2)): 0..65535. */
  uint16(): number {
    if (this.off + 2 > this.end) return this.fail()
    const v = this.buf.readUInt16BE(this.off)
    this.off += 2
    return v
  }

  int32(): number {
    if (this.off + 4 > this.end) return this.fail()
    const v = this.buf.readInt32BE(this.off)
    this.off += 4
    return v
  }

  byte(): number {
    if (this.off + 1 > this.end) return this.fail()
    return this.buf[this.off++]
  }

  cstring(): string {
    const nul = this.buf.indexOf(0, this.off)
    if (nul < 0 || nul >= this.end) {
      this.fail()
      return ''
    }
    const s = this.buf.toString('utf8', this.off, nul)
    this.off = nul + 1
    return s
  }

  bytes(n: number): Buffer {
    if (n < 0 || this.off + n > this.end) {
      this.fail()
      return Buffer.alloc(0)
    }
    const b = this.buf.subarray(this.off, this.off + n)
    this.off += n
    return b
  }

  get remaining(): number {
    return this.end - this.off
  }

  private fail(): number {
    this.bad = true
    this.off = this.end
    return 0
  }
}

// ---------------------------------------------------------------------------------------------
// Frontend (client -> gateway) messages

export type StartupPacket =
  | {kind: 'SSLRequest'}
  | {kind: 'GSSENCRequest'}
  | {kind: 'CancelRequest'; pid: number; key: Buffer}
  | {kind: 'Startup'; version: number; params: Record<string, string>}
  | {kind: 'Malformed'; reason: string}

export function decodeStartup(frame: Frame): StartupPacket {
  const r = new BodyReader(frame.bytes, 4)
  const code = r.int32()
  if (code === SSL_REQUEST_CODE) return frame.bytes.length === 8 ? {kind: 'SSLRequest'} : {kind: 'Malformed', reason: 'SSLRequest has a body'}
  if (code === GSSENC_REQUEST_CODE) return frame.bytes.length === 8 ? {kind: 'GSSENCRequest'} : {kind: 'Malformed', reason: 'GSSENCRequest has a body'}
  if (code === CANCEL_REQUEST_CODE) {
    const pid = r.int32()
    const key = Buffer.from(r.bytes(r.remaining))
    if (r.bad || key.length < 4 || key.length > 256) return {kind: 'Malformed', reason: 'CancelRequest is truncated'}
    return {kind: 'CancelRequest', pid, key}
  }
  if (code >> 16 !== 3) return {kind: 'Malformed', reason: `unsupported protocol version ${code >> 16}.${code & 0xffff}`}
  const params: Record<string, string> = {}
  for (;;) {
    if (r.remaining === 0) return {kind: 'Malformed', reason: 'startup parameters are not terminated'}
    if (r.buf[r.off] === 0) break
    const k = r.cstring()
    const v = r.cstring()
    if (r.bad) return {kind: 'Malformed', reason: 'startup parameter is not terminated'}
    params[k] = v
  }
  return {kind: 'Startup', version: code, params}
}

export type ClientMessage =
  | {kind: 'Query'; sql: string}
  | {kind: 'Parse'; name: string; sql: string; paramTypes: number[]}
  | {kind: 'Bind'; portal: string; statement: string; resultFormats: number[]}
  | {kind: 'Describe'; target: 'S' | 'P'; name: string}
  | {kind: 'Execute'; portal: string; maxRows: number}
  | {kind: 'Close'; target: 'S' | 'P'; name: string}
  | {kind: 'Sync'}
  | {kind: 'Flush'}
  | {kind: 'Terminate'}
  | {kind: 'CopyData'}
  | {kind: 'CopyDone'}
  | {kind: 'CopyFail'; message: string}
  | {kind: 'FunctionCall'; oid: number}
  | {kind: 'Unknown'; type: number}
  | {kind: 'Malformed'; type: number; reason: string}

/** Decodes one regular-format frontend message. Never throws. */
export function decodeClientMessage(frame: Frame): ClientMessage {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const type = frame.type
  const bad = (reason: string): ClientMessage => ({kind: 'Malformed', type, reason})
  const done = (m: ClientMessage): ClientMessage => (r.bad ? bad('message is truncated') : r.remaining !== 0 ? bad('message has trailing bytes') : m)
  switch (type) {
    case F.Query:
      return done({kind: 'Query', sql: r.cstring()})
    case F.Parse: {
      const name = r.cstring()
      const sql = r.cstring()
      const n = r.uint16()
      const paramTypes: number[] = []
      for (let i = 0; i < n && !r.bad; i++) paramTypes.push(r.int32())
      return done({kind: 'Parse', name, sql, paramTypes})
    }
    case F.Bind: {
      const portal = r.cstring()
      const statement = r.cstring()
      // Counts are unsigned: PostgreSQL takes up to 65,535 parameters.
      const nf = r.uint16()
      for (let i = 0; i < nf && !r.bad; i++) r.int16()
      const np = r.uint16()
      for (let i = 0; i < np && !r.bad; i++) {
        const len = r.int32()
        if (len >= 0) r.bytes(len)
        else if (len !== -1) return bad('bad parameter length')
      }
      const nr = r.uint16()
      const resultFormats: number[] = []
      for (let i = 0; i < nr && !r.bad; i++) resultFormats.push(r.int16())
      return done({kind: 'Bind', portal, statement, resultFormats})
    }
    case F.Describe:
    case F.Close: {
      const t = r.byte()
      const name = r.cstring()
      if (t !== 0x53 && t !== 0x50) return bad('target must be S or P')
      const target = t === 0x53 ? 'S' : 'P'
      return done(type === F.Describe ? {kind: 'Describe', target, name} : {kind: 'Close', target, name})
    }
    case F.Execute: {
      const portal = r.cstring()
      const maxRows = r.int32()
      return done({kind: 'Execute', portal, maxRows})
    }
    case F.Sync:
      return done({kind: 'Sync'})
    case F.Flush:
      return done({kind: 'Flush'})
    case F.Terminate:
      return done({kind: 'Terminate'})
    case F.CopyData:
      return {kind: 'CopyData'}
    case F.CopyDone:
      return done({kind: 'CopyDone'})
    case F.CopyFail:
      return done({kind: 'CopyFail', message: r.cstring()})
    case F.FunctionCall: {
      const oid = r.int32()
      return r.bad ? bad('message is truncated') : {kind: 'FunctionCall', oid}
    }
    default:
      return {kind: 'Unknown', type}
  }
}

// ---------------------------------------------------------------------------------------------
// Backend (server -> gateway) messages the engine inspects

export interface FieldDescription {
  name: string
  tableOid: number
  attnum: number
  typeOid: number
  format: number
}

export function decodeRowDescription(frame: Frame): FieldDescription[] | undefined {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const n = r.uint16()
  const fields: FieldDescription[] = []
  for (let i = 0; i < n && !r.bad; i++) {
    const name = r.cstring()
    const tableOid = r.int32() >>> 0
    const attnum = r.int16()
    const typeOid = r.int32() >>> 0
    r.int16() // type size
    r.int32() // type modifier
    const format = r.int16()
    fields.push({name, tableOid, attnum, typeOid, format})
  }
  return r.bad ? undefined : fields
}

export type AuthRequest =
  | {kind: 'Ok'}
  | {kind: 'Cleartext'}
  | {kind: 'MD5'; salt: Buffer}
  | {kind: 'SASL'; mechanisms: string[]}
  | {kind: 'SASLContinue'; data: string}
  | {kind: 'SASLFinal'; data: string}
  | {kind: 'Other'; code: number}

export function decodeAuth(frame: Frame): AuthRequest {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const code = r.int32()
  switch (code) {
    case 0:
      return {kind: 'Ok'}
    case 3:
      return {kind: 'Cleartext'}
    case 5:
      return {kind: 'MD5', salt: Buffer.from(r.bytes(4))}
    case 10: {
      const mechanisms: string[] = []
      while (r.remaining > 1 && !r.bad) mechanisms.push(r.cstring())
      return {kind: 'SASL', mechanisms}
    }
    case 11:
      return {kind: 'SASLContinue', data: r.buf.toString('utf8', r.off, r.end)}
    case 12:
      return {kind: 'SASLFinal', data: r.buf.toString('utf8', r.off, r.end)}
    default:
      return {kind: 'Other', code}
  }
}

/** Fields of an ErrorResponse / NoticeResponse keyed by their one-letter code (S, V, C, M, D...). */
export function decodeErrorFields(frame: Frame): Record<string, string> {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const out: Record<string, string> = {}
  while (r.remaining > 0 && !r.bad) {
    const code = r.byte()
    if (code === 0) break
    out[String.fromCharCode(code)] = r.cstring()
  }
  return out
}

export function decodeReadyForQuery(frame: Frame): 'I' | 'T' | 'E' {
  const s = String.fromCharCode(frame.bytes[frame.bodyStart] ?? 0x49)
  return s === 'T' || s === 'E' ? s : 'I'
}

export function decodeCommandTag(frame: Frame): string {
  return new BodyReader(frame.bytes, frame.bodyStart).cstring()
}

export function decodeBackendKeyData(frame: Frame): {pid: number; key: Buffer} {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const pid = r.int32()
  return {pid, key: Buffer.from(r.bytes(r.remaining))}
}

/** CopyOutResponse / CopyInResponse: overall format and per-column formats. */
export function decodeCopyResponse(frame: Frame): {format: number; columnFormats: number[]} {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const format = r.byte()
  const n = r.uint16()
  const columnFormats: number[] = []
  for (let i = 0; i < n && !r.bad; i++) columnFormats.push(r.int16())
  return {format, columnFormats}
}

// ---------------------------------------------------------------------------------------------
// Encoders

/** Builds a regular message: type letter, length word, body. */
export function message(type: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  const out = Buffer.allocUnsafe(5 + b.length)
  out[0] = type
  out.writeInt32BE(4 + b.length, 1)
  b.copy(out, 5)
  return out
}

export function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8')
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeInt32BE(n)
  return b
}

function int16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeInt16BE(n)
  return b
}

/** A count (parameters, formats): Int16 on the wire, unsigned for PostgreSQL. */
function count16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(n)
  return b
}

export function encodeStartup(params: Record<string, string>, version = PROTOCOL_3_0): Buffer {
  const parts: Buffer[] = [int32(version)]
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v))
  parts.push(Buffer.from([0]))
  const body = Buffer.concat(parts)
  return Buffer.concat([int32(body.length + 4), body])
}

export function encodeSSLRequest(): Buffer {
  return Buffer.concat([int32(8), int32(SSL_REQUEST_CODE)])
}

export function encodeCancelRequest(pid: number, key: Buffer): Buffer {
  return Buffer.concat([int32(12 + key.length), int32(CANCEL_REQUEST_CODE), int32(pid), key])
}

export function encodePassword(password: string): Buffer {
  return message(F.Password, cstr(password))
}

export function encodeSASLInitialResponse(mechanism: string, data: string): Buffer {
  const d = Buffer.from(data, 'utf8')
  return message(F.Password, Buffer.concat([cstr(mechanism), int32(d.length), d]))
}

export function encodeSASLResponse(data: string): Buffer {
  return message(F.Password, Buffer.from(data, 'utf8'))
}

export function encodeQuery(sql: string): Buffer {
  return message(F.Query, cstr(sql))
}

export function encodeParse(name: string, sql: string, paramTypes: number[] = []): Buffer {
  return message(F.Parse, Buffer.concat([cstr(name), cstr(sql), count16(paramTypes.length), ...paramTypes.map(int32)]))
}

export function encodeBind(portal: string, statement: string, params: (string | null)[] = [], resultFormats: number[] = []): Buffer {
  const parts = [cstr(portal), cstr(statement), count16(0), count16(params.length)]
  for (const p of params) {
    if (p === null) parts.push(int32(-1))
    else {
      const b = Buffer.from(p, 'utf8')
      parts.push(int32(b.length), b)
    }
  }
  parts.push(count16(resultFormats.length), ...resultFormats.map(int16))
  return message(F.Bind, Buffer.concat(parts))
}

export function encodeDescribe(target: 'S' | 'P', name: string): Buffer {
  return message(F.Describe, Buffer.concat([Buffer.from(target), cstr(name)]))
}

export function encodeExecute(portal: string, maxRows = 0): Buffer {
  return message(F.Execute, Buffer.concat([cstr(portal), int32(maxRows)]))
}

export function encodeSync(): Buffer {
  return message(F.Sync)
}

export function encodeTerminate(): Buffer {
  return message(F.Terminate)
}

export function encodeAuthenticationOk(): Buffer {
  return message(B.Authentication, int32(0))
}

export function encodeBackendKeyData(pid: number, key: Buffer): Buffer {
  return message(B.BackendKeyData, Buffer.concat([int32(pid), key]))
}

export function encodeReadyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return message(B.ReadyForQuery, Buffer.from(status))
}

export function encodeNegotiateProtocolVersion(minor: number, unrecognized: string[]): Buffer {
  return message(B.NegotiateProtocolVersion, Buffer.concat([int32(minor), int32(unrecognized.length), ...unrecognized.map(cstr)]))
}

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL'
  code: string
  message: string
  detail?: string
  hint?: string
}

export function encodeErrorResponse(e: ErrorFields): Buffer {
  const parts = [Buffer.from('S'), cstr(e.severity), Buffer.from('V'), cstr(e.severity), Buffer.from('C'), cstr(e.code), Buffer.from('M'), cstr(e.message)]
  if (e.detail) parts.push(Buffer.from('D'), cstr(e.detail))
  if (e.hint) parts.push(Buffer.from('H'), cstr(e.hint))
  parts.push(Buffer.from([0]))
  return message(B.ErrorResponse, Buffer.concat(parts))
}

/** Wraps a whole encoded message as a Frame (for tests and for re-using decoders on our own output). */
export function asFrame(bytes: Buffer, startup = false): Frame {
  return {type: startup ? 0 : bytes[0], bytes, bodyStart: startup ? 4 : 5}
}
