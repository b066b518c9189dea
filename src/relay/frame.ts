// The relay frame codec (version 1): one WebSocket binary message carries exactly one frame.
// Pure: bytes in, typed frames out; no sockets. Layout and rules: docs/relay-protocol.md.
//
//   0        1        2                 6
//   +--------+--------+-----------------+---------------------+
//   | ver u8 | type u8| streamId u32 BE | payload ...         |
//   +--------+--------+-----------------+---------------------+
import {HoopError} from '../shared/errors.js'

export const RELAY_VERSION = 1
export const HEADER_SIZE = 6
export const MAX_DATA_PAYLOAD = 64 * 1024
/** Limit for every JSON payload (OPEN meta, RESET and GOAWAY bodies). */
export const MAX_META_SIZE = 16 * 1024
/** Largest legal frame (a full DATA frame) rounded up; use as the WebSocket `maxPayload`. */
export const MAX_FRAME_SIZE = 72 * 1024
/** Credit each side implicitly holds per stream and direction when the stream opens. */
export const INITIAL_WINDOW = 256 * 1024
/** A WINDOW that would take the sender's credit above this is a protocol error (as in HTTP/2). */
export const MAX_WINDOW = 2 ** 31 - 1
export const MAX_STREAM_ID = 2 ** 32 - 1

/** Wire codes of the frame types. */
export const FrameType = {
  OPEN: 1, // JSON meta object
  OPEN_OK: 2, // empty
  DATA: 3, // raw bytes
  WINDOW: 4, // u32 BE increment > 0
  END: 5, // empty: half close
  RESET: 6, // JSON {code, message}
  GOAWAY: 7, // JSON {code, message}, stream id 0
} as const

export type Frame =
  | {type: 'open'; streamId: number; meta: Record<string, unknown>}
  | {type: 'open-ok'; streamId: number}
  | {type: 'data'; streamId: number; data: Buffer}
  | {type: 'window'; streamId: number; increment: number}
  | {type: 'end'; streamId: number}
  | {type: 'reset'; streamId: number; code: string; message: string}
  | {type: 'goaway'; code: string; message: string}

function encodeError(message: string): HoopError {
  return new HoopError('INVALID_INPUT', message)
}

function decodeError(message: string): HoopError {
  return new HoopError('PROTOCOL_ERROR', message)
}

function checkStreamId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > MAX_STREAM_ID) {
    throw encodeError(`relay stream id ${id} is not an integer in 1..${MAX_STREAM_ID}`)
  }
}

/** Writes the 6-byte header into `buf` (used by the mux to build DATA frames from several chunks). */
export function writeHeader(buf: Buffer, type: number, streamId: number): void {
  buf[0] = RELAY_VERSION
  buf[1] = type
  buf.writeUInt32BE(streamId, 2)
}

function withJson(type: number, streamId: number, value: unknown, what: string): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8')
  if (json.length > MAX_META_SIZE) {
    throw encodeError(`relay ${what} is ${json.length} bytes of JSON, exceeds limit ${MAX_META_SIZE}`)
  }
  const buf = Buffer.allocUnsafe(HEADER_SIZE + json.length)
  writeHeader(buf, type, streamId)
  json.copy(buf, HEADER_SIZE)
  return buf
}

function headerOnly(type: number, streamId: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE)
  writeHeader(buf, type, streamId)
  return buf
}

/** Encodes one frame. Throws HoopError('INVALID_INPUT') for a frame that breaks a limit. */
export function encodeFrame(f: Frame): Buffer {
  switch (f.type) {
    case 'open': {
      checkStreamId(f.streamId)
      if (f.meta === null || typeof f.meta !== 'object' || Array.isArray(f.meta)) {
        throw encodeError('relay OPEN meta must be a JSON object')
      }
      return withJson(FrameType.OPEN, f.streamId, f.meta, 'OPEN meta')
    }
    case 'open-ok':
      checkStreamId(f.streamId)
      return headerOnly(FrameType.OPEN_OK, f.streamId)
    case 'data': {
      checkStreamId(f.streamId)
      if (f.data.length > MAX_DATA_PAYLOAD) {
        throw encodeError(`relay DATA payload is ${f.data.length} bytes, exceeds limit ${MAX_DATA_PAYLOAD}`)
      }
      // One allocation, one copy: the WebSocket message must be a single contiguous frame.
      const buf = Buffer.allocUnsafe(HEADER_SIZE + f.data.length)
      writeHeader(buf, FrameType.DATA, f.streamId)
      f.data.copy(buf, HEADER_SIZE)
      return buf
    }
    case 'window': {
      checkStreamId(f.streamId)
      if (!Number.isInteger(f.increment) || f.increment < 1 || f.increment > MAX_STREAM_ID) {
        throw encodeError(`relay WINDOW increment ${f.increment} is not an integer in 1..${MAX_STREAM_ID}`)
      }
      const buf = Buffer.allocUnsafe(HEADER_SIZE + 4)
      writeHeader(buf, FrameType.WINDOW, f.streamId)
      buf.writeUInt32BE(f.increment, HEADER_SIZE)
      return buf
    }
    case 'end':
      checkStreamId(f.streamId)
      return headerOnly(FrameType.END, f.streamId)
    case 'reset':
      checkStreamId(f.streamId)
      return withJson(FrameType.RESET, f.streamId, {code: f.code, message: f.message}, 'RESET body')
    case 'goaway':
      return withJson(FrameType.GOAWAY, 0, {code: f.code, message: f.message}, 'GOAWAY body')
    default: {
      const never: never = f
      throw encodeError(`unknown relay frame ${JSON.stringify(never)}`)
    }
  }
}

const TYPE_NAMES: Record<number, string> = {1: 'OPEN', 2: 'OPEN_OK', 3: 'DATA', 4: 'WINDOW', 5: 'END', 6: 'RESET', 7: 'GOAWAY'}

function parseJson(payload: Buffer, name: string): unknown {
  if (payload.length > MAX_META_SIZE) {
    throw decodeError(`relay ${name} payload is ${payload.length} bytes, exceeds limit ${MAX_META_SIZE}`)
  }
  try {
    return JSON.parse(payload.toString('utf8'))
  } catch {
    throw decodeError(`relay ${name} payload is not valid JSON`)
  }
}

function parseCodeMessage(payload: Buffer, name: string): {code: string; message: string} {
  const body = parseJson(payload, name)
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw decodeError(`relay ${name} payload must be a JSON object {code, message}`)
  }
  const {code, message} = body as Record<string, unknown>
  if (typeof code !== 'string' || typeof message !== 'string') {
    throw decodeError(`relay ${name} payload must have string fields code and message`)
  }
  return {code, message}
}

function expectEmpty(payload: Buffer, name: string): void {
  if (payload.length !== 0) throw decodeError(`relay ${name} frame must have an empty payload, got ${payload.length} bytes`)
}

/**
 * Decodes one complete frame (one WebSocket message). DATA payloads are views into `buf`, not
 * copies. Throws HoopError('PROTOCOL_ERROR') naming the rule broken.
 */
export function decodeFrame(buf: Buffer): Frame {
  if (buf.length < HEADER_SIZE) {
    throw decodeError(`relay frame is ${buf.length} bytes, shorter than the ${HEADER_SIZE}-byte header`)
  }
  const version = buf[0]
  if (version !== RELAY_VERSION) {
    throw decodeError(`relay frame version ${version} is not supported (expected ${RELAY_VERSION})`)
  }
  const type = buf[1]
  const streamId = buf.readUInt32BE(2)
  const payload = buf.subarray(HEADER_SIZE)
  const name = TYPE_NAMES[type]
  if (name === undefined) throw decodeError(`relay frame type ${type} is unknown`)
  if (type === FrameType.GOAWAY) {
    if (streamId !== 0) throw decodeError(`relay GOAWAY must use stream id 0, got ${streamId}`)
  } else if (streamId === 0) {
    throw decodeError(`relay ${name} frame uses stream id 0, which is reserved for the link`)
  }

  switch (type) {
    case FrameType.OPEN: {
      const meta = parseJson(payload, name)
      if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
        throw decodeError('relay OPEN payload must be a JSON object')
      }
      return {type: 'open', streamId, meta: meta as Record<string, unknown>}
    }
    case FrameType.OPEN_OK:
      expectEmpty(payload, name)
      return {type: 'open-ok', streamId}
    case FrameType.DATA:
      if (payload.length > MAX_DATA_PAYLOAD) {
        throw decodeError(`relay DATA payload is ${payload.length} bytes, exceeds limit ${MAX_DATA_PAYLOAD}`)
      }
      return {type: 'data', streamId, data: payload}
    case FrameType.WINDOW: {
      if (payload.length !== 4) throw decodeError(`relay WINDOW payload must be 4 bytes, got ${payload.length}`)
      const increment = payload.readUInt32BE(0)
      if (increment === 0) throw decodeError('relay WINDOW increment must be greater than 0')
      return {type: 'window', streamId, increment}
    }
    case FrameType.END:
      expectEmpty(payload, name)
      return {type: 'end', streamId}
    case FrameType.RESET:
      return {type: 'reset', streamId, ...parseCodeMessage(payload, name)}
    default:
      // FrameType.GOAWAY: the only type left after the name lookup above.
      return {type: 'goaway', ...parseCodeMessage(payload, name)}
  }
}
