// What the HTTP engine puts in the session recording: each request and response head with its
// credential headers redacted, the first bytes of each body (binary bodies by size only), and the
// engine's own answers. Request bodies that were streamed rather than buffered are not recorded.
// Response bodies are recorded as the client got them, i.e. after masking.
import type {HttpRequestInfo} from '../../policy/types.js'
import {type Header, isJsonType, isTextType, mediaType, type RequestHead, type ResponseHead} from '../../protocol/http/head.js'
import type {StatementGate} from '../gate.js'

/** Always replaced by "[redacted]", whatever the connection adds. */
const ALWAYS_REDACTED = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie']

/** The first bytes of a body for the recording; binary bodies are recorded by size only. */
export class Preview {
  private parts: Buffer[] = []
  private kept = 0
  total = 0
  constructor(
    private readonly cap: number,
    private readonly type: string | undefined,
  ) {}

  add(b: Buffer): void {
    this.total += b.length
    if (this.kept >= this.cap) return
    const take = b.subarray(0, this.cap - this.kept)
    this.parts.push(Buffer.from(take))
    this.kept += take.length
  }

  text(): string {
    if (this.total === 0) return ''
    const textual = this.type === undefined || isJsonType(this.type) || isTextType(this.type)
    if (!textual) return `[${this.type} body, ${this.total} bytes]`
    const s = Buffer.concat(this.parts).toString('utf8')
    return this.total > this.kept ? `${s}\n[... truncated, ${this.total} bytes in all]` : s
  }
}

export class ExchangeRecorder {
  private readonly redacted: Set<string>

  constructor(
    private readonly gate: Pick<StatementGate<HttpRequestInfo>, 'recording' | 'record'>,
    /** Extra header names to redact (case-insensitive). */
    redactHeaders: readonly string[] | undefined,
    private readonly maxBodyBytes: number,
  ) {
    this.redacted = new Set([...ALWAYS_REDACTED, ...(redactHeaders ?? []).map((h) => h.toLowerCase())])
  }

  /** A preview to fill with a response body as it goes out. */
  preview(type: string | undefined): Preview {
    return new Preview(this.maxBodyBytes, type)
  }

  /** The request as described to the judge; `body` when it was buffered, `bodyUnread` when it streams. */
  request(description: string, head: RequestHead, body: Buffer | undefined, bodyUnread: boolean): void {
    if (!this.gate.recording) return
    let text = `${description} HTTP/${head.version}\n${this.redact(head.headers)}`
    if (body) {
      const p = this.preview(mediaType(head.headers))
      p.add(body)
      text += `\n\n${p.text()}`
    } else if (bodyUnread) text += '\n\n[request body streamed, not recorded]'
    this.gate.record('client', text)
  }

  /** A response from the target, with the headers the client was sent. */
  response(resp: ResponseHead, sent: readonly Header[], preview: Preview): void {
    if (!this.gate.recording) return
    const body = preview.text()
    this.gate.record('server', `HTTP/1.1 ${resp.status} ${resp.reason}\n${this.redact(sent)}${body ? `\n\n${body}` : ''}`)
  }

  /** One of the engine's own answers (a refusal or an error); it carries no secrets to redact. */
  answer(status: number, headers: readonly Header[], body: Buffer): void {
    if (!this.gate.recording) return
    this.gate.record('server', `HTTP/1.1 ${status}\n${headers.map((h) => `${h.name}: ${h.value}`).join('\n')}\n\n${body.toString('utf8')}`)
  }

  private redact(headers: readonly Header[]): string {
    return headers.map((h) => `${h.name}: ${this.redacted.has(h.name.toLowerCase()) ? '[redacted]' : h.value}`).join('\n')
  }
}
