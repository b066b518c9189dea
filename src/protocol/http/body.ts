// HTTP/1.1 body framing: an incremental decoder for Content-Length, chunked and until-close bodies.
// For each chunk pushed it reports the wire bytes that belong to the body (`raw`, forwarded as is
// when nothing needs rewriting), the decoded payload (for inspection and masking), and what comes
// after the body (`rest`, the next pipelined message). Bounded: chunk-size lines and trailers have
// limits, a chunk size is at most 13 hex digits, and a missing CRLF after chunk data is an error.
// Spec: https://www.rfc-editor.org/rfc/rfc9112#section-7.1
import type {Framing} from './head.js'

export const MAX_CHUNK_LINE = 4096
export const MAX_TRAILER_BYTES = 16 * 1024

export interface BodyStep {
  raw: Buffer
  payload: Buffer[]
  done: boolean
  rest: Buffer
}

export interface BodyError {
  error: string
}

const EMPTY = Buffer.alloc(0)

type ChunkState = 'size' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done'

export class BodyDecoder {
  private remaining: number
  private state: ChunkState = 'size'
  private line = ''
  private trailerBytes = 0
  private finished: boolean
  private failed: string | undefined
  /** Payload bytes seen so far. */
  payloadBytes = 0

  constructor(readonly framing: Framing) {
    this.remaining = framing.kind === 'length' ? framing.length : 0
    this.finished = framing.kind === 'none'
  }

  get done(): boolean {
    return this.finished
  }

  push(chunk: Buffer): BodyStep | BodyError {
    if (this.failed) return {error: this.failed}
    if (this.finished) return {raw: EMPTY, payload: [], done: true, rest: chunk}
    switch (this.framing.kind) {
      case 'none':
        return {raw: EMPTY, payload: [], done: true, rest: chunk}
      case 'close':
        this.payloadBytes += chunk.length
        return {raw: chunk, payload: chunk.length ? [chunk] : [], done: false, rest: EMPTY}
      case 'length': {
        const n = Math.min(this.remaining, chunk.length)
        const body = chunk.subarray(0, n)
        this.remaining -= n
        this.payloadBytes += n
        this.finished = this.remaining === 0
        return {raw: body, payload: n ? [body] : [], done: this.finished, rest: chunk.subarray(n)}
      }
      case 'chunked':
        return this.chunked(chunk)
      default: {
        const never: never = this.framing
        throw new Error(`unreachable framing ${String(never)}`)
      }
    }
  }

  /** The stream ended. Only an until-close body may end this way. */
  end(): {done: true} | BodyError {
    if (this.finished || this.framing.kind === 'close') {
      this.finished = true
      return {done: true}
    }
    return {error: 'connection closed before the end of the body'}
  }

  private fail(why: string): BodyError {
    this.failed = why
    return {error: why}
  }

  private chunked(chunk: Buffer): BodyStep | BodyError {
    const payload: Buffer[] = []
    let i = 0
    while (i < chunk.length && this.state !== 'done') {
      switch (this.state) {
        case 'size':
        case 'trailer': {
          const lf = chunk.indexOf(0x0a, i)
          const end = lf < 0 ? chunk.length : lf + 1
          this.line += chunk.toString('latin1', i, end)
          if (this.state === 'size' && this.line.length > MAX_CHUNK_LINE) return this.fail(`chunk size line exceeds ${MAX_CHUNK_LINE} bytes`)
          if (this.state === 'trailer') {
            this.trailerBytes += end - i
            if (this.trailerBytes > MAX_TRAILER_BYTES) return this.fail(`chunked trailer exceeds ${MAX_TRAILER_BYTES} bytes`)
          }
          i = end
          if (lf < 0) break
          if (!this.line.endsWith('\r\n')) return this.fail('chunked body line not ended by CRLF')
          const line = this.line.slice(0, -2)
          this.line = ''
          if (this.state === 'trailer') {
            if (line === '') this.state = 'done'
            continue
          }
          const m = /^([0-9A-Fa-f]{1,13})[ \t]*(?:;.*)?$/.exec(line)
          if (!m || /[\x00-\x08\x0a-\x1f\x7f]/.test(line)) return this.fail(`invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`)
          const size = parseInt(m[1], 16)
          if (size === 0) this.state = 'trailer'
          else {
            this.remaining = size
            this.state = 'data'
          }
          break
        }
        case 'data': {
          const n = Math.min(this.remaining, chunk.length - i)
          payload.push(chunk.subarray(i, i + n))
          this.payloadBytes += n
          this.remaining -= n
          i += n
          if (this.remaining === 0) this.state = 'data-cr'
          break
        }
        case 'data-cr':
          if (chunk[i] !== 0x0d) return this.fail('chunk data not followed by CRLF')
          i++
          this.state = 'data-lf'
          break
        case 'data-lf':
          if (chunk[i] !== 0x0a) return this.fail('chunk data not followed by CRLF')
          i++
          this.state = 'size'
          break
        default:
          break
      }
    }
    if (this.state === 'done') this.finished = true
    return {raw: chunk.subarray(0, i), payload, done: this.finished, rest: chunk.subarray(i)}
  }
}

/** One chunk of a chunked body (empty data would end the body, so it yields nothing). */
export function encodeChunk(data: Buffer): Buffer {
  if (data.length === 0) return EMPTY
  return Buffer.concat([Buffer.from(data.length.toString(16) + '\r\n', 'latin1'), data, Buffer.from('\r\n', 'latin1')])
}

export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1')
