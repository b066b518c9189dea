// Relaying one response from the target to the client, masked as the verdict asks. The head is
// read first (interim 1xx responses are skipped: the engine answers 100-continue itself); then the
// body goes one of four ways:
//
//   pass    - the wire bytes as they came (nothing to mask, or a body that is neither JSON nor text)
//   dechunk - the payload only, for an HTTP/1.0 client that cannot read chunked framing
//   json    - buffered up to a limit (beyond it 502: withheld, never sent unmasked), then fields
//             by JSON path and values by the entity detectors
//   text    - masked line by line by the entity detectors as it streams
//
// A response the engine cannot read or cannot mask (bad framing, a content coding, 101 Switching
// Protocols) is answered with 502. Whatever leaves the target connection in doubt (an early
// close, bytes after the response, a body not read to its end) marks it not reusable.
import {maskValue} from '../../masking/detectors.js'
import {addCount, type MaskCounts, type MaskEntity} from '../../masking/types.js'
import {BodyDecoder, encodeChunk, LAST_CHUNK} from '../../protocol/http/body.js'
import {
  encodeResponseHead,
  endToEndHeaders,
  type Framing,
  HeadAccumulator,
  type Header,
  headerTokens,
  isHeadError,
  isJsonType,
  isTextType,
  mediaType,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
  responseFraming,
} from '../../protocol/http/head.js'
import {compileJsonPath, type JsonPath, maskJson} from '../../protocol/http/json-mask.js'
import {LineMasker} from '../../protocol/http/text-mask.js'
import type {Logger} from '../../shared/log.js'
import type {EngineMaskPlan} from '../gate.js'
import type {ClientConnection} from './client.js'
import type {HttpLimits} from './limits.js'
import type {ExchangeRecorder, Preview} from './recording.js'
import type {Pull} from './streams.js'
import type {TargetConnection} from './upstream.js'

/** A mask plan as the HTTP engine reads it: `columns` and `jsonPaths` are JSON paths (see json-mask.ts). */
export type HttpMaskPlan = EngineMaskPlan

/** The verdict's mask plan, compiled; `counts` collects what was masked, for the result event. */
export interface ResponseMask {
  readonly paths: readonly JsonPath[]
  readonly entities: readonly MaskEntity[]
  readonly counts: MaskCounts
}

export function compileMask(plan: HttpMaskPlan): ResponseMask | {error: string} {
  const paths: JsonPath[] = []
  for (const text of [...(plan.jsonPaths ?? []), ...(plan.columns ?? [])]) {
    const p = compileJsonPath(text)
    if (typeof p === 'string') return {error: p}
    paths.push(p)
  }
  return {paths, entities: plan.entities, counts: {}}
}

export function masksAnything(m: ResponseMask): boolean {
  return m.paths.length > 0 || m.entities.length > 0
}

/** The entity detectors over one string, counting what they mask; undefined when there are none. */
function entityMasker(m: ResponseMask): ((s: string) => string | undefined) | undefined {
  const entities = new Set<MaskEntity>(m.entities)
  if (entities.size === 0) return undefined
  return (s) => {
    const d = maskValue(s, entities)
    if (!d) return undefined
    for (const [e, n] of Object.entries(d.found)) addCount(m.counts, `entity:${e}`, n ?? 0)
    return d.text
  }
}

export type ResponseMode = 'pass' | 'dechunk' | 'json' | 'text'

export function responseMode(framing: Framing, type: string | undefined, maskOn: boolean, clientVersion: RequestHead['version']): ResponseMode {
  if (framing.kind !== 'none' && maskOn) {
    // A missing Content-Type is treated as text: masking fails safe.
    if (isJsonType(type)) return 'json'
    if (type === undefined || isTextType(type)) return 'text'
  }
  return framing.kind === 'chunked' && clientVersion === '1.0' ? 'dechunk' : 'pass'
}

/**
 * Whether the client connection must close after this response: the client asked for it, or the
 * body it gets is delimited by the close (close-framed passed through, dechunked, or text masked
 * for an HTTP/1.0 client, whose length is unknown until the end).
 */
export function closesClient(keepAlive: boolean, mode: ResponseMode, framing: Framing, clientVersion: RequestHead['version']): boolean {
  return !keepAlive || (mode === 'pass' && framing.kind === 'close') || mode === 'dechunk' || (mode === 'text' && clientVersion === '1.0')
}

/** Whether the target connection can carry another request after this response. */
function keepsAlive(resp: ResponseHead, framing: Framing): boolean {
  return framing.kind !== 'close' && resp.version === '1.1' && !headerTokens(resp.headers, 'connection').includes('close')
}

/** Fields that describe the body as the target sent it, untrue once it is masked. */
const BODY_AS_SENT = ['content-length', 'transfer-encoding', 'content-md5', 'digest']

/** What the client got: the statement's result. */
export interface Relayed {
  status: number
  bytes: number
  error?: string
}

/** What the relay needs to know of the request it answers. */
export interface RelayedRequest {
  readonly head: RequestHead
  readonly keepAlive: boolean
  readonly body: {readonly done: boolean}
}

/** One response on its way: where it comes from, its head, and its body as it is read. */
interface InFlight {
  ex: RelayedRequest
  upIn: Pull
  resp: ResponseHead
  body: BodyDecoder
  preview: Preview
  closeClient: boolean
}

export class ResponseRelay {
  constructor(
    private readonly client: ClientConnection,
    private readonly target: TargetConnection,
    private readonly recorder: ExchangeRecorder,
    private readonly limits: HttpLimits,
    private readonly log: Logger,
  ) {}

  /**
   * Relays the response to `ex`. `'retry'` when `canRetry` and a reused connection closed before
   * any byte of a response; `bodyFailure` says why the request body could not be sent, if so.
   */
  async relay(ex: RelayedRequest, upIn: Pull, mask: ResponseMask, bodyFailure: () => string | undefined, canRetry: boolean): Promise<Relayed | 'retry'> {
    const resp = await this.readHead(ex, upIn, bodyFailure, canRetry)
    if (resp === 'retry' || !('headers' in resp)) return resp
    const framing = responseFraming(resp, ex.head.method)
    if (isHeadError(framing)) return this.badUpstream(ex, framing.error)
    const type = mediaType(resp.headers)
    const mode = responseMode(framing, type, masksAnything(mask), ex.head.version)
    const codings = headerTokens(resp.headers, 'content-encoding').filter((c) => c !== 'identity')
    if ((mode === 'json' || mode === 'text') && codings.length > 0) {
      return this.badUpstream(ex, `the response is ${codings.join(', ')}-encoded and cannot be masked`)
    }
    this.target.reusable = keepsAlive(resp, framing) && this.target.reusable
    const closeClient = closesClient(ex.keepAlive, mode, framing, ex.head.version)
    if (closeClient) this.client.closing = true

    const r: InFlight = {ex, upIn, resp, body: new BodyDecoder(framing), preview: this.recorder.preview(type), closeClient}
    switch (mode) {
      case 'json':
        return this.relayJson(r, mask)
      case 'text':
        return this.relayText(r, mask)
      case 'pass':
      case 'dechunk':
        return this.relayBytes(r, mode === 'dechunk')
      default: {
        const never: never = mode
        throw new Error(`unknown response mode ${String(never)}`)
      }
    }
  }

  /** The final response head, or how the exchange ended without one. */
  private async readHead(ex: RelayedRequest, upIn: Pull, bodyFailure: () => string | undefined, canRetry: boolean): Promise<ResponseHead | Relayed | 'retry'> {
    let interim = false
    for (;;) {
      const acc = new HeadAccumulator(this.limits.maxHeadBytes)
      let got: {head: Buffer; rest: Buffer} | undefined
      while (!got) {
        const c = await upIn.read()
        if (c === null) {
          this.target.reusable = false
          if (canRetry && acc.buffered === 0 && !interim) return 'retry'
          return this.noResponse(ex, bodyFailure())
        }
        const r = acc.push(c)
        if (!r) continue
        if (isHeadError(r)) return this.badUpstream(ex, r.error)
        got = r
      }
      upIn.unshift(got.rest)
      const parsed = parseResponseHead(got.head)
      if (isHeadError(parsed)) return this.badUpstream(ex, parsed.error)
      if (parsed.status === 101) return this.badUpstream(ex, 'the target switched protocols, which the HTTP engine does not support')
      if (parsed.status >= 100 && parsed.status < 200) {
        interim = true
        continue
      }
      return parsed
    }
  }

  /** The target closed without answering: tell the client the likeliest reason. */
  private async noResponse(ex: RelayedRequest, bodyFailure: string | undefined): Promise<Relayed> {
    if (bodyFailure) {
      await this.client.fatal(400, 'PROTOCOL_ERROR', `hoop: ${bodyFailure}`)
      return {status: 400, bytes: 0, error: bodyFailure}
    }
    if (this.client.in.isEnded && !ex.body.done) return {status: 0, bytes: 0, error: 'client closed during the request'}
    await this.client.sendJson(502, {error: {code: 'TARGET_REFUSED', message: 'hoop: the target closed the connection without a response'}}, !ex.keepAlive)
    if (!ex.keepAlive) this.client.closing = true
    return {status: 502, bytes: 0, error: 'no response from the target'}
  }

  /** The whole body in memory, then masked by field and by value, sent with its new length. */
  private async relayJson(r: InFlight, mask: ResponseMask): Promise<Relayed> {
    const {ex, resp, body} = r
    const max = this.limits.maxMaskedJsonBytes
    if (body.framing.kind === 'length' && body.framing.length > max) return this.tooLargeToMask(ex, body.framing.length)
    const chunks: Buffer[] = []
    const got = await this.readBody(r.upIn, body, (payload) => {
      chunks.push(...payload)
      return body.payloadBytes <= max
    })
    if (got === 'stopped') return this.tooLargeToMask(ex, body.payloadBytes)
    if (got !== 'done') return this.upstreamBroke(ex, got)
    const detect = entityMasker(mask)
    const text = Buffer.concat(chunks).toString('utf8')
    const m = maskJson(text, mask.paths, detect)
    let out: string
    if ('error' in m) {
      // Declared JSON but is not: no fields to find, so only the value detectors apply.
      this.log.debug('http response declared JSON but did not parse; masking as text', {error: m.error})
      out = detect?.(text) ?? text
    } else {
      out = m.text
      for (const [p, n] of Object.entries(m.fields)) addCount(mask.counts, `field:${p}`, n)
    }
    const bytes = Buffer.from(out, 'utf8')
    r.preview.add(bytes)
    const h = this.clientHeaders(r, BODY_AS_SENT, [{name: 'Content-Length', value: String(bytes.length)}])
    await this.client.send(Buffer.concat([encodeResponseHead(ex.head.version, resp.status, resp.reason, h), bytes]))
    this.recorder.response(resp, h, r.preview)
    return {status: resp.status, bytes: bytes.length}
  }

  /** Masked line by line as it streams; re-chunked for an HTTP/1.1 client, close-delimited for 1.0. */
  private async relayText(r: InFlight, mask: ResponseMask): Promise<Relayed> {
    const {ex, resp} = r
    const chunked = ex.head.version === '1.1'
    const h = this.clientHeaders(r, BODY_AS_SENT, chunked ? [{name: 'Transfer-Encoding', value: 'chunked'}] : [])
    await this.client.send(encodeResponseHead(ex.head.version, resp.status, resp.reason, h))
    const detect = entityMasker(mask)
    const lines = new LineMasker((line) => detect?.(line), this.limits.maxTextLine)
    let sent = 0
    const emit = async (bufs: Buffer[]) => {
      if (!bufs.length) return
      const data = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs)
      sent += data.length
      r.preview.add(data)
      await this.client.send(chunked ? encodeChunk(data) : data)
    }
    let pending: Promise<void> = Promise.resolve()
    const got = await this.readBody(
      r.upIn,
      r.body,
      (payload) => {
        const out = payload.flatMap((p) => lines.push(p))
        pending = pending.then(() => emit(out))
        return true
      },
      () => pending,
    )
    if (got !== 'done') return this.upstreamBroke(ex, got, true)
    await pending
    await emit(lines.end())
    if (chunked) await this.client.send(LAST_CHUNK)
    this.recorder.response(resp, h, r.preview)
    return {status: resp.status, bytes: sent}
  }

  /** The wire bytes as they came, or (`dechunk`) the payload only, for HTTP/1.0 clients. */
  private async relayBytes(r: InFlight, dechunk: boolean): Promise<Relayed> {
    const {ex, resp} = r
    const h = this.clientHeaders(r, dechunk ? ['transfer-encoding'] : [], [])
    await this.client.send(encodeResponseHead(ex.head.version, resp.status, resp.reason, h))
    let pending: Promise<void> = Promise.resolve()
    const got = await this.readBody(
      r.upIn,
      r.body,
      (payload, raw) => {
        for (const p of payload) r.preview.add(p)
        const data = dechunk ? Buffer.concat(payload) : raw
        pending = pending.then(() => this.client.send(data))
        return true
      },
      () => pending,
    )
    if (got !== 'done') return this.upstreamBroke(ex, got, true)
    await pending
    this.recorder.response(resp, h, r.preview)
    return {status: resp.status, bytes: r.body.payloadBytes}
  }

  /** The response's end-to-end headers minus `drop`, plus `add`, and the close the client must expect. */
  private clientHeaders(r: InFlight, drop: readonly string[], add: Header[]): Header[] {
    const out = endToEndHeaders(r.resp.headers).filter((h) => !drop.includes(h.name.toLowerCase()))
    out.push(...add)
    if (r.closeClient) out.push({name: 'Connection', value: 'close'})
    return out
  }

  /**
   * Reads a body from upstream. `onData` gets each step's payload and wire bytes and says whether to
   * go on; `drain` is awaited before the next read, so a slow client slows the reading.
   */
  private async readBody(
    upIn: Pull,
    body: BodyDecoder,
    onData: (payload: Buffer[], raw: Buffer) => boolean,
    drain?: () => Promise<void>,
  ): Promise<'done' | 'stopped' | string> {
    while (!body.done) {
      if (drain) await drain()
      const c = await upIn.read()
      if (c === null) {
        const e = body.end()
        this.target.reusable = false
        if ('error' in e) return e.error
        break
      }
      const st = body.push(c)
      if ('error' in st) {
        this.target.reusable = false
        return st.error
      }
      if (st.done && st.rest.length) {
        // A server does not send before it is asked: bytes after the response are not trusted.
        this.target.reusable = false
      }
      if (!onData(st.payload, st.raw)) {
        this.target.reusable = false
        return 'stopped'
      }
    }
    if (drain) await drain()
    return 'done'
  }

  private async badUpstream(ex: RelayedRequest, why: string): Promise<Relayed> {
    this.target.reusable = false
    this.log.warn('http target sent an unusable response', {error: why})
    await this.client.sendJson(502, {error: {code: 'TARGET_REFUSED', message: `hoop: ${why}`}}, !ex.keepAlive)
    if (!ex.keepAlive) this.client.closing = true
    return {status: 502, bytes: 0, error: why}
  }

  private async tooLargeToMask(ex: RelayedRequest, size: number): Promise<Relayed> {
    return this.badUpstream(ex, `the JSON response (${size} bytes or more) exceeds the ${this.limits.maxMaskedJsonBytes}-byte limit for masking; it is withheld rather than sent unmasked`)
  }

  /** The target broke off a response; if its head already went out, only closing can tell the client. */
  private async upstreamBroke(ex: RelayedRequest, why: string, headSent = false): Promise<Relayed> {
    this.target.reusable = false
    if (headSent) {
      this.client.abort()
      return {status: 502, bytes: 0, error: `target response broken: ${why}`}
    }
    return this.badUpstream(ex, `target response broken: ${why}`)
  }
}
