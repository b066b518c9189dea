// Codec for the server messages that carry text or values outside result rows: the field lists of
// ErrorResponse and NoticeResponse, NotificationResponse, ParameterStatus and FunctionCallResponse.
// Pure: bytes in, typed values out. A body that does not parse decodes to undefined, so the engine
// can refuse to forward what it cannot inspect.
// https://www.postgresql.org/docs/current/protocol-message-formats.html
// https://www.postgresql.org/docs/current/protocol-error-fields.html
import type {Frame} from './framer.js'
import {BodyReader, cstr, message} from './messages.js'

/** Error or notice fields in wire order: [one-letter code, value]. */
export type FieldList = Array<[code: string, value: string]>

export function decodeFieldList(frame: Frame): FieldList | undefined {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const out: FieldList = []
  for (;;) {
    const code = r.byte()
    if (r.bad) return undefined
    if (code === 0) return r.remaining === 0 ? out : undefined
    const value = r.cstring()
    if (r.bad) return undefined
    out.push([String.fromCharCode(code), value])
  }
}

/** An ErrorResponse ('E') or NoticeResponse ('N') with these fields. */
export function encodeFieldList(type: number, fields: FieldList): Buffer {
  const parts: Buffer[] = []
  for (const [code, value] of fields) parts.push(Buffer.from(code, 'latin1'), cstr(value))
  parts.push(Buffer.from([0]))
  return message(type, Buffer.concat(parts))
}

export interface Notification {
  pid: number
  channel: string
  payload: string
}

export function decodeNotification(frame: Frame): Notification | undefined {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const pid = r.int32()
  const channel = r.cstring()
  const payload = r.cstring()
  return r.bad || r.remaining !== 0 ? undefined : {pid, channel, payload}
}

export function encodeNotification(n: Notification): Buffer {
  const pid = Buffer.alloc(4)
  pid.writeInt32BE(n.pid)
  return message(0x41, Buffer.concat([pid, cstr(n.channel), cstr(n.payload)]))
}

export function decodeParameterStatus(frame: Frame): {name: string; value: string} | undefined {
  const r = new BodyReader(frame.bytes, frame.bodyStart)
  const name = r.cstring()
  const value = r.cstring()
  return r.bad || r.remaining !== 0 ? undefined : {name, value}
}

export function encodeParameterStatus(name: string, value: string): Buffer {
  return message(0x53, Buffer.concat([cstr(name), cstr(value)]))
}

/** A FunctionCallResponse ('V') whose result is NULL. */
export function encodeNullFunctionResult(): Buffer {
  const len = Buffer.alloc(4)
  len.writeInt32BE(-1)
  return message(0x56, len)
}
