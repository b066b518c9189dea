// HTTP/1.1 message heads: an incremental, bounded accumulator and strict parsers for request and
// response heads, and the body-length rules (RFC 9112 §6.3). Pure: bytes in, typed values out.
//
// Strict on purpose: a proxy that reads a message differently from the server behind it invites
// request smuggling, so anything ambiguous (Transfer-Encoding together with Content-Length, a
// Transfer-Encoding other than a final "chunked" on a request, differing Content-Length values,
// obs-fold, bare LF, control characters) is an error rather than a guess.
// Spec: https://www.rfc-editor.org/rfc/rfc9112 (message syntax), https://www.rfc-editor.org/rfc/rfc9110

export const DEFAULT_MAX_HEAD_BYTES = 64 * 1024
/** Header count limit: a head of many tiny headers costs more than its byte size suggests. */
export const MAX_HEADERS = 256

export interface Header {
  /** As sent (case preserved, so a forwarded head looks like the original). */
  name: string
  value: string
}

export interface RequestHead {
  method: string
  /** The request-target exactly as sent. */
  target: string
  version: '1.0' | '1.1'
  headers: Header[]
}

export interface ResponseHead {
  version: '1.0' | '1.1'
  status: number
  reason: string
  headers: Header[]
}

export type Framing =
  | {kind: 'none'}
  | {kind: 'length'; length: number}
  | {kind: 'chunked'}
  /** Response only: the body runs until the server closes the connection. */
  | {kind: 'close'}

export interface HeadError {
  error: string
  /** HTTP status a server should answer with (400, 413/431, 501). */
  status: number
}

export function isHeadError(x: unknown): x is HeadError {
  return typeof x === 'object' && x !== null && 'error' in x && 'status' in x
}

// ---------------------------------------------------------------------------------------------
// Accumulating a head from chunks.

/**
 * Collects bytes until the blank line that ends a head, keeping at most `maxBytes`. Leading empty
 * lines before a request line are skipped (RFC 9112 §2.2). Bytes after the head are returned as
 * `rest` (the start of the body or of the next pipelined message).
 */
export class HeadAccumulator {
  private buf: Buffer = Buffer.alloc(0)

  constructor(private readonly maxBytes = DEFAULT_MAX_HEAD_BYTES) {}

  /** Bytes held so far (0 = nothing of a new message seen yet). */
  get buffered(): number {
    return this.buf.length
  }

  push(chunk: Buffer): {head: Buffer; rest: Buffer} | HeadError | undefined {
    const prev = this.buf.length
    this.buf = prev === 0 ? chunk : Buffer.concat([this.buf, chunk])
    // Skip CRLFs left between messages.
    let skip = 0
    while (skip + 1 < this.buf.length && this.buf[skip] === 0x0d && this.buf[skip + 1] === 0x0a) skip += 2
    if (skip > 0) this.buf = this.buf.subarray(skip)
    const from = Math.max(0, prev - skip - 3)
    const end = this.buf.indexOf('\r\n\r\n', from, 'latin1')
    if (end < 0) {
      if (this.buf.length > this.maxBytes) return {error: `message head exceeds ${this.maxBytes} bytes`, status: 431}
      return undefined
    }
    if (end + 4 > this.maxBytes) return {error: `message head exceeds ${this.maxBytes} bytes`, status: 431}
    const head = this.buf.subarray(0, end + 4)
    const rest = this.buf.subarray(end + 4)
    this.buf = Buffer.alloc(0)
    return {head, rest}
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Visible ASCII and obs-text, with inner spaces/tabs; no CR, LF, NUL or other controls.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const TARGET = /^[\x21-\x7e\x80-\xff]+$/

function splitLines(head: Buffer): string[] | HeadError {
  const text = head.toString('latin1')
  // The head ends with CRLFCRLF; every line must end with CRLF (a bare LF is refused).
  const lines = text.slice(0, -4).split('\r\n')
  for (const l of lines) {
    if (l.includes('\n') || l.includes('\r')) return {error: 'bare CR or LF in message head', status: 400}
  }
  return lines
}

function parseHeaders(lines: string[]): Header[] | HeadError {
  if (lines.length > MAX_HEADERS) return {error: `more than ${MAX_HEADERS} header fields`, status: 431}
  const headers: Header[] = []
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) return {error: 'obsolete line folding in header field', status: 400}
    const colon = line.indexOf(':')
    if (colon <= 0) return {error: `malformed header line ${JSON.stringify(line.slice(0, 40))}`, status: 400}
    const name = line.slice(0, colon)
    if (!TOKEN.test(name)) return {error: `invalid header name ${JSON.stringify(name.slice(0, 40))}`, status: 400}
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (!FIELD_VALUE.test(value)) return {error: `invalid characters in header ${name}`, status: 400}
    headers.push({name, value})
  }
  return headers
}

function parseVersion(v: string): '1.0' | '1.1' | undefined {
  return v === 'HTTP/1.1' ? '1.1' : v === 'HTTP/1.0' ? '1.0' : undefined
}

export function parseRequestHead(head: Buffer): RequestHead | HeadError {
  const lines = splitLines(head)
  if (isHeadError(lines)) return lines
  const parts = lines[0].split(' ')
  if (parts.length !== 3) return {error: 'malformed request line', status: 400}
  const [method, target, v] = parts
  if (!TOKEN.test(method)) return {error: 'invalid method in request line', status: 400}
  if (!TARGET.test(target)) return {error: 'invalid request target', status: 400}
  const version = parseVersion(v)
  if (!version) return /^HTTP\/\d\.\d$/.test(v) ? {error: `unsupported HTTP version ${v}`, status: 505} : {error: 'malformed request line', status: 400}
  const headers = parseHeaders(lines.slice(1))
  if (isHeadError(headers)) return headers
  const hosts = headers.filter((h) => h.name.toLowerCase() === 'host')
  if (hosts.length > 1 || (version === '1.1' && hosts.length === 0)) return {error: 'a request must carry exactly one Host header', status: 400}
  return {method, target, version, headers}
}

export function parseResponseHead(head: Buffer): ResponseHead | HeadError {
  const lines = splitLines(head)
  if (isHeadError(lines)) return lines
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0])
  if (!m) return {error: 'malformed status line', status: 502}
  const version = parseVersion(m[1])
  if (!version) return {error: `unsupported HTTP version ${m[1]}`, status: 502}
  const headers = parseHeaders(lines.slice(1))
  if (isHeadError(headers)) return {...headers, status: 502}
  return {version, status: Number(m[2]), reason: m[3] ?? '', headers}
}

// ---------------------------------------------------------------------------------------------
// Header helpers.

export function headerValues(headers: readonly Header[], name: string): string[] {
  const n = name.toLowerCase()
  return headers.filter((h) => h.name.toLowerCase() === n).map((h) => h.value)
}

export function headerValue(headers: readonly Header[], name: string): string | undefined {
  const v = headerValues(headers, name)
  return v.length ? v.join(', ') : undefined
}

/** Comma-separated list members, lower-cased, empty members dropped. */
export function headerTokens(headers: readonly Header[], name: string): string[] {
  return headerValues(headers, name)
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0)
}

/** Media type without parameters, lower-cased ("application/json"), or undefined. */
export function mediaType(headers: readonly Header[]): string | undefined {
  const v = headerValue(headers, 'content-type')
  if (v === undefined) return undefined
  return v.split(';')[0].trim().toLowerCase() || undefined
}

export function isJsonType(type: string | undefined): boolean {
  return type !== undefined && (type === 'application/json' || type.endsWith('+json') || type === 'text/json')
}

const TEXT_TYPES = /^(text\/|application\/(xml|x-ndjson|ndjson|jsonl|x-www-form-urlencoded|javascript|graphql|yaml|x-yaml)$|application\/.*\+xml$)/

/** A media type (as `mediaType` returns it) whose body is text read line by line; JSON is not one. */
export function isTextType(type: string | undefined): boolean {
  return type !== undefined && TEXT_TYPES.test(type)
}

/** Connection-scoped fields (RFC 9110 §7.6.1, and RFC 7230's Keep-Alive and Proxy-* fields). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate'])

/**
 * The fields a proxy may forward: without the hop-by-hop ones and those the Connection header
 * names (RFC 9110 §7.6.1). Order and case are kept.
 */
export function endToEndHeaders(headers: readonly Header[]): Header[] {
  const listed = new Set(headerTokens(headers, 'connection'))
  return headers.filter((h) => {
    const n = h.name.toLowerCase()
    return !HOP_BY_HOP.has(n) && !listed.has(n)
  })
}

// ---------------------------------------------------------------------------------------------
// Body length (RFC 9112 §6.3).

function contentLength(headers: readonly Header[]): number | undefined | HeadError {
  const values = headerValues(headers, 'content-length').flatMap((v) => v.split(',').map((s) => s.trim()))
  if (values.length === 0) return undefined
  if (!values.every((v) => v === values[0])) return {error: 'conflicting Content-Length values', status: 400}
  if (!/^\d{1,15}$/.test(values[0])) return {error: 'invalid Content-Length', status: 400}
  return Number(values[0])
}

export function requestFraming(head: RequestHead): Framing | HeadError {
  const te = headerTokens(head.headers, 'transfer-encoding')
  const cl = contentLength(head.headers)
  if (isHeadError(cl)) return cl
  if (te.length > 0) {
    if (cl !== undefined) return {error: 'both Transfer-Encoding and Content-Length', status: 400}
    if (head.version === '1.0') return {error: 'Transfer-Encoding in an HTTP/1.0 request', status: 400}
    if (te.length !== 1 || te[0] !== 'chunked') return {error: `unsupported Transfer-Encoding ${te.join(', ')}`, status: 501}
    return {kind: 'chunked'}
  }
  if (cl === undefined || cl === 0) return {kind: 'none'}
  return {kind: 'length', length: cl}
}

export function responseFraming(head: ResponseHead, requestMethod: string): Framing | HeadError {
  if (requestMethod === 'HEAD' || (head.status >= 100 && head.status < 200) || head.status === 204 || head.status === 304) return {kind: 'none'}
  const te = headerTokens(head.headers, 'transfer-encoding')
  if (te.length > 0) {
    // A Transfer-Encoding wins over Content-Length; one not ending in chunked runs until close.
    return te[te.length - 1] === 'chunked' && head.version === '1.1' ? {kind: 'chunked'} : {kind: 'close'}
  }
  const cl = contentLength(head.headers)
  if (isHeadError(cl)) return {...cl, status: 502}
  if (cl === undefined) return {kind: 'close'}
  return cl === 0 ? {kind: 'none'} : {kind: 'length', length: cl}
}

// ---------------------------------------------------------------------------------------------
// Serialising.

export function encodeRequestHead(method: string, target: string, headers: readonly Header[]): Buffer {
  let s = `${method} ${target} HTTP/1.1\r\n`
  for (const h of headers) s += `${h.name}: ${h.value}\r\n`
  return Buffer.from(s + '\r\n', 'latin1')
}

export const STATUS_TEXT: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  400: 'Bad Request',
  403: 'Forbidden',
  409: 'Conflict',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
}

export function encodeResponseHead(version: '1.0' | '1.1', status: number, reason: string, headers: readonly Header[]): Buffer {
  let s = `HTTP/${version} ${status} ${reason || STATUS_TEXT[status] || ''}\r\n`
  for (const h of headers) s += `${h.name}: ${h.value}\r\n`
  return Buffer.from(s + '\r\n', 'latin1')
}
