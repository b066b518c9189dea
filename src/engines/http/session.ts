// The HTTP engine at the gateway: drives one client connection (keep-alive HTTP/1.1, pipelined
// requests answered in order) over two Duplex streams.
//
//   readRequestHead -> describe (path, query, small JSON body) -> judge
//     -> refuse (403 / 409, connection stays usable) | beforeForward -> rewriteHead (Host,
//        hop-by-hop, credentials) -> forward body || relayResponse (pass through, or mask)
//
// Bodies stream with backpressure (a chunk is read only when the previous one was written); only a
// JSON request body the judge needs (up to 1 MiB) and a JSON response a mask plan applies to (up to
// 32 MiB; larger is refused with 502, never leaked) are buffered. Text responses under a mask plan
// are masked line by line. Protocol upgrades and CONNECT are refused with 501.
// Spec: https://www.rfc-editor.org/rfc/rfc9112 (HTTP/1.1), https://www.rfc-editor.org/rfc/rfc9110
import {createHash} from 'node:crypto'
import {isIP} from 'node:net'
import type {Duplex, Readable, Writable} from 'node:stream'
import {maskValue} from '../../masking/detectors.js'
import {addCount, type MaskCounts, type MaskEntity, type MaskPlan} from '../../masking/types.js'
import type {HttpRequestInfo} from '../../policy/types.js'
import {BodyDecoder, encodeChunk, LAST_CHUNK} from '../../protocol/http/body.js'
import {
  DEFAULT_MAX_HEAD_BYTES,
  encodeRequestHead,
  encodeResponseHead,
  HeadAccumulator,
  type Header,
  headerTokens,
  headerValue,
  isHeadError,
  isJsonType,
  mediaType,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  requestFraming,
  type ResponseHead,
  responseFraming,
} from '../../protocol/http/head.js'
import {compileJsonPath, type JsonPath, maskJson} from '../../protocol/http/json-mask.js'
import {parseTarget, type ParsedTarget, redactTarget} from '../../protocol/http/target.js'
import {LineMasker} from '../../protocol/http/text-mask.js'
import type {Logger} from '../../shared/log.js'
import {errorMessage} from '../../shared/errors.js'
import {JUDGE_ERROR_RULE, type Refusal as Refused, type SessionResult, type StatementGate, type Verdict as StatementVerdict} from '../gate.js'
import {ChunkFramer, PullReader} from '../io.js'
import {startUpstreamTls} from '../upstream-tls.js'

type Pull = PullReader<Buffer, never, ChunkFramer>
const pull = (s: Readable): Pull => new PullReader<Buffer, never, ChunkFramer>(s, new ChunkFramer())

export interface HttpTarget {
  host: string
  port: number
  /** The connection's secret, resolved by the caller: a bearer token, or the basic-auth password. */
  token?: string
  auth?: 'bearer' | 'basic'
  /** Basic auth user name. */
  username?: string
  /** Forward the caller's own Authorization header (default: never; it is dropped). */
  forwardAuthorization?: boolean
  tls: {mode: 'disable' | 'require' | 'verify-full'; ca?: string; serverName?: string}
}

export interface HttpLimits {
  /** Request and response heads. */
  maxHeadBytes: number
  /** JSON request bodies up to this size are parsed for the judge. */
  maxJsonRequestBytes: number
  /** JSON responses under a mask plan are buffered up to this size; larger ones get 502. */
  maxMaskedJsonBytes: number
  /** Body bytes kept in each recording entry. */
  maxRecordedBodyBytes: number
  /** A refused request's unread body is read and dropped up to this size; beyond it the connection closes. */
  maxDiscardBytes: number
  /** Text masking works per line; longer lines are cut. */
  maxTextLine: number
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxHeadBytes: DEFAULT_MAX_HEAD_BYTES,
  maxJsonRequestBytes: 1024 * 1024,
  maxMaskedJsonBytes: 32 * 1024 * 1024,
  maxRecordedBodyBytes: 64 * 1024,
  maxDiscardBytes: 1024 * 1024,
  maxTextLine: 1024 * 1024,
}

/**
 * What the judge sees of one request. Extends the policy's HttpRequestInfo (method, path) with
 * the query, the parsed JSON body and a fingerprint that binds a one-time approval to this exact
 * request (method, normalised target and, when buffered, the body).
 */
export interface HttpRequestView extends HttpRequestInfo {
  /** Upper-case, as sent. */
  method: string
  /** Normalised: unreserved percent-escapes decoded, dot segments removed. What upstream gets. */
  path: string
  query: Record<string, string[]>
  /** Path and raw query, as forwarded upstream. */
  target: string
  contentType?: string
  /**
   * `json`: `body` holds the parsed JSON; `invalid-json`: declared JSON but unparsable;
   * `too-large`: JSON larger than the inspection limit (streamed, not seen); `not-inspected`: a
   * body of another type (streamed); `none`: no body.
   */
  bodyStatus: 'none' | 'json' | 'invalid-json' | 'too-large' | 'not-inspected'
  body?: unknown
  /** sha256 hex of method, target and (when buffered) body bytes. */
  fingerprint: string
}

/** A mask plan as the HTTP engine reads it: `columns` and `jsonPaths` are JSON paths (see json-mask.ts). */
export interface HttpMaskPlan extends MaskPlan {
  jsonPaths?: string[]
}

export interface HttpSessionOptions {
  client: Duplex
  openUpstream: () => Promise<Duplex>
  target: HttpTarget
  gate: StatementGate<HttpRequestInfo>
  /** Extra header names replaced by "[redacted]" in recordings (Authorization, Cookie, Set-Cookie, Proxy-Authorization always are). */
  redactHeaders?: string[]
  logger: Logger
  limits?: Partial<HttpLimits>
  /** Parse JSON request bodies for the judge (default true). */
  inspectJsonBodies?: boolean
}

export type HttpSessionResult = SessionResult

/** Rule ids for refusals the engine makes itself (no policy rule involved). */
export const HTTP_UNSUPPORTED_RULE = 'http-unsupported'

const ALWAYS_REDACTED = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie']
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate'])
const TEXT_TYPES = /^(text\/|application\/(xml|x-ndjson|ndjson|jsonl|x-www-form-urlencoded|javascript|graphql|yaml|x-yaml)$|application\/.*\+xml$)/
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1')

export function runHttpSession(opts: HttpSessionOptions): Promise<HttpSessionResult> {
  return new HttpSession(opts).run()
}

// ---------------------------------------------------------------------------------------------
// Pull-based reading: a chunk is taken from the stream only when asked, so bytes the engine is not
// ready for stay in the socket (backpressure), and unread bytes can be pushed back (pipelining).

class Closed extends Error {
  constructor(what: string) {
    super(`${what} closed`)
  }
}

function write(s: Writable, buf: Buffer, what: string): Promise<void> {
  if (s.destroyed || s.writableEnded) return Promise.reject(new Closed(what))
  if (buf.length === 0) return Promise.resolve()
  if (s.write(buf)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      s.off('drain', onDrain)
      s.off('close', onClose)
      s.off('error', onClose)
    }
    const onDrain = () => {
      cleanup()
      resolve()
    }
    const onClose = () => {
      cleanup()
      reject(new Closed(what))
    }
    s.on('drain', onDrain)
    s.on('close', onClose)
    s.on('error', onClose)
  })
}

// ---------------------------------------------------------------------------------------------

interface Exchange {
  head: RequestHead
  target: ParsedTarget
  description: string
  body: BodyDecoder
  /** Client asked for 100-continue and has not been sent it yet. */
  awaitingContinue: boolean
  keepAlive: boolean
}

type ResponseMode = 'pass' | 'dechunk' | 'json' | 'text'

class HttpSession {
  private readonly log: Logger
  private readonly gate: StatementGate<HttpRequestInfo>
  private readonly limits: HttpLimits
  private readonly result: HttpSessionResult
  private readonly clientIn: Pull
  private readonly redacted: Set<string>
  private upstream: Duplex | undefined
  private upIn: Pull | undefined
  private upstreamReusable = false
  /** Set when the client connection must close after the current response. */
  private closing = false
  private readonly authHeader: string | undefined
  private readonly authProblem: string | undefined

  constructor(private readonly o: HttpSessionOptions) {
    this.log = o.logger
    this.gate = o.gate
    this.result = o.gate.result
    this.limits = {...DEFAULT_HTTP_LIMITS, ...o.limits}
    this.clientIn = pull(o.client)
    this.redacted = new Set([...ALWAYS_REDACTED, ...(o.redactHeaders ?? []).map((h) => h.toLowerCase())])
    const t = o.target
    if (t.token !== undefined) {
      const value = t.auth === 'basic' ? 'Basic ' + Buffer.from(`${t.username ?? ''}:${t.token}`, 'utf8').toString('base64') : `Bearer ${t.token}`
      // A secret with CR/LF would let it inject headers; refuse to use it rather than send it.
      if (/^[\x20-\x7e]+$/.test(value)) this.authHeader = value
      else this.authProblem = 'the connection secret contains characters not allowed in a header value'
    }
  }

  async run(): Promise<HttpSessionResult> {
    this.o.client.on('error', (e) => this.log.debug('http client stream error', {error: e.message}))
    try {
      while (!this.closing) {
        const head = await this.readRequestHead()
        if (!head) break
        await this.handleRequest(head)
      }
    } catch (err) {
      if (!(err instanceof Closed)) this.log.warn('http session failed', {error: errorMessage(err)})
    } finally {
      this.shutdown()
    }
    this.result.bytesUp = this.clientIn.bytesRead
    return this.result
  }

  private shutdown(): void {
    this.clientIn.detach()
    this.upIn?.detach()
    this.upstream?.destroy()
    const c = this.o.client
    if (!c.destroyed) {
      c.end()
      // A peer that never reads must not keep the socket forever.
      setTimeout(() => c.destroy(), 5000).unref()
    }
  }

  // --- request side ------------------------------------------------------------------------------

  /** The next request head, or undefined at end of stream (or after a malformed head was answered). */
  private async readRequestHead(): Promise<RequestHead | undefined> {
    const acc = new HeadAccumulator(this.limits.maxHeadBytes)
    for (;;) {
      const c = await this.clientIn.read()
      if (c === null) {
        if (acc.buffered > 0) this.log.debug('http client closed inside a request head')
        return undefined
      }
      const r = acc.push(c)
      if (!r) continue
      if (isHeadError(r)) {
        await this.fatal(r.status, 'PROTOCOL_ERROR', `hoop: ${r.error}`)
        return undefined
      }
      this.clientIn.unshift(r.rest)
      const head = parseRequestHead(r.head)
      if (isHeadError(head)) {
        await this.fatal(head.status, 'PROTOCOL_ERROR', `hoop: ${head.error}`)
        return undefined
      }
      return head
    }
  }

  private async handleRequest(head: RequestHead): Promise<void> {
    const keepAlive = head.version === '1.1' && !headerTokens(head.headers, 'connection').includes('close')
    if (head.method === 'CONNECT') {
      await this.fatal(501, 'PROTOCOL_ERROR', 'hoop: CONNECT is not supported by the HTTP engine; use a tcp connection for tunnels')
      return
    }
    const framing = requestFraming(head)
    if (isHeadError(framing)) {
      await this.fatal(framing.status, 'PROTOCOL_ERROR', `hoop: ${framing.error}`)
      return
    }
    const target = parseTarget(head.method, head.target)
    if (typeof target === 'string') {
      await this.fatal(400, 'PROTOCOL_ERROR', `hoop: ${target}`)
      return
    }
    const ex: Exchange = {
      head,
      target,
      description: `${head.method} ${redactTarget(target)}`,
      body: new BodyDecoder(framing),
      awaitingContinue: framing.kind !== 'none' && head.version === '1.1' && headerTokens(head.headers, 'expect').includes('100-continue'),
      keepAlive,
    }
    if (headerValue(head.headers, 'upgrade') !== undefined) {
      const verdict: Refused = {effect: 'block', ruleId: HTTP_UNSUPPORTED_RULE, message: 'protocol upgrades (WebSocket, h2c) are not supported by the HTTP engine; use a tcp connection'}
      this.recordRequest(ex, undefined)
      await this.refuse(ex, verdict, 501)
      return
    }

    // Describe the request; buffer a JSON body only when the judge is to see it.
    const contentType = mediaType(head.headers)
    let bodyStatus: HttpRequestView['bodyStatus'] = framing.kind === 'none' ? 'none' : 'not-inspected'
    let parsedBody: unknown
    const bufferedRaw: Buffer[] = []
    let bufferedPayload: Buffer | undefined
    if (framing.kind !== 'none' && this.o.inspectJsonBodies !== false && isJsonType(contentType)) {
      if (framing.kind === 'length' && framing.length > this.limits.maxJsonRequestBytes) bodyStatus = 'too-large'
      else {
        await this.sendContinue(ex)
        const got = await this.bufferBody(ex, this.limits.maxJsonRequestBytes, bufferedRaw)
        if (got === 'closed') {
          this.closing = true
          return
        }
        if (got === 'error') return
        if (got === 'overflow') bodyStatus = 'too-large'
        else {
          bufferedPayload = got
          try {
            parsedBody = JSON.parse(got.toString('utf8'))
            bodyStatus = 'json'
          } catch {
            bodyStatus = 'invalid-json'
          }
        }
      }
    }
    const fp = createHash('sha256').update(head.method).update('\0').update(target.target).update('\0')
    if (bufferedPayload) fp.update(bufferedPayload)
    const view: HttpRequestView = {
      method: head.method,
      path: target.path,
      query: target.query,
      target: target.target,
      ...(contentType ? {contentType} : {}),
      bodyStatus,
      ...(bodyStatus === 'json' ? {body: parsedBody} : {}),
      fingerprint: fp.digest('hex'),
    }
    this.recordRequest(ex, bufferedPayload)

    const judged = await this.gate.judge(view, ex.description)
    const verdict = judged.verdict
    if (verdict.effect !== 'allow') {
      if (verdict.ruleId === JUDGE_ERROR_RULE) await this.refuse(ex, verdict, 500, 'INTERNAL')
      else await this.refuse(ex, verdict, verdict.effect === 'review' ? 409 : 403)
      return
    }
    let paths: JsonPath[]
    try {
      paths = compilePaths(verdict.mask as HttpMaskPlan)
    } catch (err) {
      this.log.error('http mask plan invalid', {error: errorMessage(err)})
      await this.refuse(ex, {effect: 'block', ruleId: verdict.ruleId, message: `the mask plan cannot be applied: ${errorMessage(err)}`}, 500, 'INTERNAL')
      return
    }
    const refusal = await this.gate.admit(judged)
    if (refusal) {
      // The verdict was allow: only a failed audit record refuses it here.
      await this.refuse(ex, refusal, 503, 'AUDIT_UNAVAILABLE')
      return
    }
    await this.forward(ex, verdict, paths, bufferedRaw)
  }

  private async sendContinue(ex: Exchange): Promise<void> {
    if (!ex.awaitingContinue) return
    ex.awaitingContinue = false
    await this.toClient(CONTINUE)
  }

  /** Reads the body into memory up to `max` payload bytes, keeping the wire bytes in `raw`. */
  private async bufferBody(ex: Exchange, max: number, raw: Buffer[]): Promise<Buffer | 'overflow' | 'closed' | 'error'> {
    const payload: Buffer[] = []
    while (!ex.body.done) {
      const c = await this.clientIn.read()
      if (c === null) return 'closed'
      const st = ex.body.push(c)
      if ('error' in st) {
        await this.fatal(400, 'PROTOCOL_ERROR', `hoop: ${st.error}`)
        return 'error'
      }
      raw.push(st.raw)
      payload.push(...st.payload)
      if (st.done) this.clientIn.unshift(st.rest)
      if (ex.body.payloadBytes > max) return 'overflow'
    }
    return Buffer.concat(payload)
  }

  /** Answers a refused request and leaves the connection ready for the next one when it can. */
  private async refuse(ex: Exchange, verdict: Refused, status: number, code?: string): Promise<void> {
    // An unread body must be consumed to find the next request; when the client still waits for
    // 100-continue it may never send it, so the connection closes instead.
    const keep = ex.keepAlive && (ex.body.done || !ex.awaitingContinue)
    const error: Record<string, unknown> = {
      code: code ?? (verdict.effect === 'review' ? 'APPROVAL_REQUIRED' : 'POLICY_BLOCKED'),
      rule: verdict.ruleId,
    }
    if (verdict.effect === 'review') {
      if (verdict.approvalId) error.approvalId = verdict.approvalId
      error.message = verdict.approvalId
        ? `hoop: review required by policy rule ${verdict.ruleId}: ${verdict.message} (an approver runs: hoop approvals approve ${verdict.approvalId}; then repeat the same request)`
        : `hoop: review required by policy rule ${verdict.ruleId}: ${verdict.message}`
    } else {
      error.message = code ? `hoop: ${verdict.message}` : `hoop: blocked by policy rule ${verdict.ruleId}: ${verdict.message}`
    }
    await this.sendJson(status, {error}, !keep)
    this.gate.refuse({text: ex.description, verdict}, verdict)
    if (!keep) {
      this.closing = true
      return
    }
    if (!(await this.discardBody(ex))) this.closing = true
  }

  private async discardBody(ex: Exchange): Promise<boolean> {
    let seen = 0
    while (!ex.body.done) {
      const c = await this.clientIn.read()
      if (c === null) return false
      const st = ex.body.push(c)
      if ('error' in st) return false
      seen += st.raw.length
      if (st.done) this.clientIn.unshift(st.rest)
      else if (seen > this.limits.maxDiscardBytes) return false
    }
    return true
  }

  // --- forwarding ------------------------------------------------------------------------------

  private async forward(ex: Exchange, verdict: Extract<StatementVerdict, {effect: 'allow'}>, paths: JsonPath[], bufferedRaw: Buffer[]): Promise<void> {
    const plan = verdict.mask
    const maskOn = paths.length > 0 || plan.entities.length > 0
    if (this.authProblem) {
      await this.refuse(ex, {effect: 'block', ruleId: verdict.ruleId, message: this.authProblem}, 502, 'TARGET_REFUSED')
      return
    }
    const head = encodeRequestHead(ex.head.method, ex.target.target, this.rewriteRequestHeaders(ex.head.headers, maskOn))
    const masked: MaskCounts = {}
    let outcome: {status: number; bytes: number; error?: string} | 'retry'
    let bodyDone = ex.body.done
    // A kept-alive upstream connection may have been closed by the server while idle; an
    // idempotent request that is wholly in hand is then sent once more on a new connection.
    const retryable = ex.body.done && IDEMPOTENT.has(ex.head.method)
    for (let attempt = 0; ; attempt++) {
      let up: Duplex
      let upIn: Pull
      let reused: boolean
      try {
        ;({up, upIn, reused} = await this.ensureUpstream())
      } catch (err) {
        this.log.warn('http upstream unreachable', {error: errorMessage(err)})
        await this.refuse(ex, {effect: 'block', ruleId: verdict.ruleId, message: `the target could not be reached: ${errorMessage(err)}`}, 502, 'TARGET_REFUSED')
        return
      }
      await this.sendContinue(ex)

      // Request body (client -> upstream) and response (upstream -> client) run together: a
      // server may answer before it has read the whole body.
      let bodyFailure: string | undefined
      const pump = (async () => {
        await write(up, Buffer.concat([head, ...bufferedRaw]), 'target')
        while (!ex.body.done) {
          const c = await this.clientIn.read()
          if (c === null) throw new Closed('client')
          const st = ex.body.push(c)
          if ('error' in st) {
            bodyFailure = st.error
            throw new Error(st.error)
          }
          await write(up, st.raw, 'target')
          if (st.done) this.clientIn.unshift(st.rest)
        }
        bodyDone = true
      })()
      pump.catch((err: Error) => {
        // The target waits for a body that will not come: end the exchange.
        if (!(err instanceof Closed)) this.log.debug('http request body failed', {error: err.message})
        up.destroy()
      })

      try {
        outcome = await this.relayResponse(ex, upIn, plan, paths, masked, () => bodyFailure, retryable && reused && attempt === 0)
      } catch (err) {
        this.closing = true
        outcome = {status: 0, bytes: 0, error: errorMessage(err)}
      }
      if (outcome !== 'retry') break
      this.log.debug('http kept-alive target connection was closed; sending the request again')
      this.dropUpstream()
    }
    if (!bodyDone) {
      // Answered before the body was read: the next request's start is unknown.
      this.closing = true
      this.upstreamReusable = false
    }
    if (!this.upstreamReusable) this.dropUpstream()
    this.gate.finish(
      {text: ex.description, verdict},
      {rows: 0, bytes: outcome.bytes, ...(outcome.error ? {error: outcome.error} : outcome.status >= 400 ? {error: `HTTP ${outcome.status}`} : {}), masked},
    )
  }

  private rewriteRequestHeaders(headers: readonly Header[], maskOn: boolean): Header[] {
    const listed = new Set(headerTokens(headers, 'connection'))
    const t = this.o.target
    const out: Header[] = [{name: 'Host', value: hostHeader(t)}]
    const callerAuth = headers.find((h) => h.name.toLowerCase() === 'authorization')
    for (const h of headers) {
      const n = h.name.toLowerCase()
      if (HOP_BY_HOP.has(n) || listed.has(n) || n === 'host' || n === 'expect') continue
      if (n === 'authorization' && !t.forwardAuthorization) continue
      // Masking needs the body as written: ask for no content coding.
      if (n === 'accept-encoding' && maskOn) continue
      out.push(h)
    }
    if (maskOn) out.push({name: 'Accept-Encoding', value: 'identity'})
    if (this.authHeader && !(t.forwardAuthorization && callerAuth)) out.push({name: 'Authorization', value: this.authHeader})
    return out
  }

  private async ensureUpstream(): Promise<{up: Duplex; upIn: Pull; reused: boolean}> {
    if (this.upstream && this.upIn && this.upstreamReusable && !this.upstream.destroyed && !this.upIn.isEnded) {
      return {up: this.upstream, upIn: this.upIn, reused: true}
    }
    this.dropUpstream()
    let s = await this.o.openUpstream()
    s.on('error', (e) => this.log.debug('http upstream stream error', {error: e.message}))
    if (this.o.target.tls.mode !== 'disable') s = await startTls(s, this.o.target)
    this.upstream = s
    this.upIn = pull(s)
    this.upstreamReusable = true
    return {up: s, upIn: this.upIn, reused: false}
  }

  private dropUpstream(): void {
    this.upIn?.detach()
    this.upstream?.destroy()
    this.upstream = undefined
    this.upIn = undefined
    this.upstreamReusable = false
  }

  // --- response side ---------------------------------------------------------------------------

  private async relayResponse(
    ex: Exchange,
    upIn: Pull,
    plan: MaskPlan,
    paths: JsonPath[],
    masked: MaskCounts,
    bodyFailure: () => string | undefined,
    canRetry: boolean,
  ): Promise<{status: number; bytes: number; error?: string} | 'retry'> {
    // Read the head, skipping interim (1xx) responses: we answer 100-continue ourselves.
    let resp: ResponseHead
    let interim = false
    for (;;) {
      const acc = new HeadAccumulator(this.limits.maxHeadBytes)
      let got: {head: Buffer; rest: Buffer} | undefined
      while (!got) {
        const c = await upIn.read()
        if (c === null) {
          this.upstreamReusable = false
          if (canRetry && acc.buffered === 0 && !interim) return 'retry'
          const why = bodyFailure()
          if (why) {
            await this.fatal(400, 'PROTOCOL_ERROR', `hoop: ${why}`)
            return {status: 400, bytes: 0, error: why}
          }
          if (this.clientIn.isEnded && !ex.body.done) return {status: 0, bytes: 0, error: 'client closed during the request'}
          await this.sendJson(502, {error: {code: 'TARGET_REFUSED', message: 'hoop: the target closed the connection without a response'}}, !ex.keepAlive)
          if (!ex.keepAlive) this.closing = true
          return {status: 502, bytes: 0, error: 'no response from the target'}
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
      resp = parsed
      break
    }

    const framing = responseFraming(resp, ex.head.method)
    if (isHeadError(framing)) return this.badUpstream(ex, framing.error)
    const type = mediaType(resp.headers)
    const codings = headerTokens(resp.headers, 'content-encoding').filter((c) => c !== 'identity')
    const maskOn = paths.length > 0 || plan.entities.length > 0
    let mode: ResponseMode = 'pass'
    if (framing.kind !== 'none' && maskOn) {
      // A missing Content-Type is treated as text: masking fails safe.
      if (isJsonType(type)) mode = 'json'
      else if (type === undefined || TEXT_TYPES.test(type)) mode = 'text'
    }
    if (mode !== 'pass' && codings.length > 0) {
      return this.badUpstream(ex, `the response is ${codings.join(', ')}-encoded and cannot be masked`)
    }
    if (mode === 'pass' && framing.kind === 'chunked' && ex.head.version === '1.0') mode = 'dechunk'

    this.upstreamReusable =
      framing.kind !== 'close' && resp.version === '1.1' && !headerTokens(resp.headers, 'connection').includes('close') && this.upstreamReusable
    const closeClient = !ex.keepAlive || (mode === 'pass' && framing.kind === 'close') || mode === 'dechunk' || (mode === 'text' && ex.head.version === '1.0')
    if (closeClient) this.closing = true

    const body = new BodyDecoder(framing)
    const preview = new Preview(this.limits.maxRecordedBodyBytes, type)
    const entities = new Set<MaskEntity>(plan.entities)
    const detect =
      entities.size > 0
        ? (s: string): string | undefined => {
            const d = maskValue(s, entities)
            if (!d) return undefined
            for (const [e, n] of Object.entries(d.found)) addCount(masked, `entity:${e}`, n ?? 0)
            return d.text
          }
        : undefined
    const headers = (drop: string[], add: Header[]): Header[] => {
      const listed = new Set(headerTokens(resp.headers, 'connection'))
      const out = resp.headers.filter((h) => {
        const n = h.name.toLowerCase()
        return !HOP_BY_HOP.has(n) && !listed.has(n) && !drop.includes(n)
      })
      out.push(...add)
      if (closeClient) out.push({name: 'Connection', value: 'close'})
      return out
    }

    if (mode === 'json') {
      if (framing.kind === 'length' && framing.length > this.limits.maxMaskedJsonBytes) return this.tooLargeToMask(ex, framing.length)
      const chunks: Buffer[] = []
      const r = await this.readBody(upIn, body, (payload) => {
        chunks.push(...payload)
        return body.payloadBytes <= this.limits.maxMaskedJsonBytes
      })
      if (r === 'stopped') return this.tooLargeToMask(ex, body.payloadBytes)
      if (r !== 'done') return this.upstreamBroke(ex, r)
      const text = Buffer.concat(chunks).toString('utf8')
      const m = maskJson(text, paths, detect)
      let out: string
      if ('error' in m) {
        // Declared JSON but is not: no fields to find, so only the value detectors apply.
        this.log.debug('http response declared JSON but did not parse; masking as text', {error: m.error})
        out = detect?.(text) ?? text
      } else {
        out = m.text
        for (const [p, n] of Object.entries(m.fields)) addCount(masked, `field:${p}`, n)
      }
      const bytes = Buffer.from(out, 'utf8')
      preview.add(bytes)
      const h = headers(['content-length', 'transfer-encoding', 'content-md5', 'digest'], [{name: 'Content-Length', value: String(bytes.length)}])
      await this.toClient(Buffer.concat([encodeResponseHead(ex.head.version, resp.status, resp.reason, h), bytes]))
      this.recordResponse(resp, h, preview)
      return {status: resp.status, bytes: bytes.length}
    }

    if (mode === 'text') {
      const chunked = ex.head.version === '1.1'
      const h = headers(['content-length', 'transfer-encoding', 'content-md5', 'digest'], chunked ? [{name: 'Transfer-Encoding', value: 'chunked'}] : [])
      await this.toClient(encodeResponseHead(ex.head.version, resp.status, resp.reason, h))
      const lines = new LineMasker((line) => detect?.(line), this.limits.maxTextLine)
      let sent = 0
      const emit = async (bufs: Buffer[]) => {
        if (!bufs.length) return
        const data = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs)
        sent += data.length
        preview.add(data)
        await this.toClient(chunked ? encodeChunk(data) : data)
      }
      let pending: Promise<void> = Promise.resolve()
      const r = await this.readBody(upIn, body, (payload) => {
        const out = payload.flatMap((p) => lines.push(p))
        pending = pending.then(() => emit(out))
        return true
      }, () => pending)
      if (r !== 'done') return this.upstreamBroke(ex, r, true)
      await pending
      await emit(lines.end())
      if (chunked) await this.toClient(LAST_CHUNK)
      this.recordResponse(resp, h, preview)
      return {status: resp.status, bytes: sent}
    }

    // Pass through: the wire bytes as they came ('dechunk': the payload only, for HTTP/1.0 clients).
    const h = mode === 'dechunk' ? headers(['transfer-encoding'], []) : headers([], [])
    await this.toClient(encodeResponseHead(ex.head.version, resp.status, resp.reason, h))
    let pending: Promise<void> = Promise.resolve()
    const r = await this.readBody(
      upIn,
      body,
      (payload, raw) => {
        for (const p of payload) preview.add(p)
        const data = mode === 'dechunk' ? Buffer.concat(payload) : raw
        pending = pending.then(() => this.toClient(data))
        return true
      },
      () => pending,
    )
    if (r !== 'done') return this.upstreamBroke(ex, r, true)
    await pending
    this.recordResponse(resp, h, preview)
    return {status: resp.status, bytes: body.payloadBytes}
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
        this.upstreamReusable = false
        if ('error' in e) return e.error
        break
      }
      const st = body.push(c)
      if ('error' in st) {
        this.upstreamReusable = false
        return st.error
      }
      if (st.done && st.rest.length) {
        // A server does not send before it is asked: bytes after the response are not trusted.
        this.upstreamReusable = false
      }
      if (!onData(st.payload, st.raw)) {
        this.upstreamReusable = false
        return 'stopped'
      }
    }
    if (drain) await drain()
    return 'done'
  }

  private async badUpstream(ex: Exchange, why: string): Promise<{status: number; bytes: number; error: string}> {
    this.upstreamReusable = false
    this.log.warn('http target sent an unusable response', {error: why})
    await this.sendJson(502, {error: {code: 'TARGET_REFUSED', message: `hoop: ${why}`}}, !ex.keepAlive)
    if (!ex.keepAlive) this.closing = true
    return {status: 502, bytes: 0, error: why}
  }

  private async tooLargeToMask(ex: Exchange, size: number): Promise<{status: number; bytes: number; error: string}> {
    return this.badUpstream(ex, `the JSON response (${size} bytes or more) exceeds the ${this.limits.maxMaskedJsonBytes}-byte limit for masking; it is withheld rather than sent unmasked`)
  }

  /** The target broke off a response; if its head already went out, only closing can tell the client. */
  private async upstreamBroke(ex: Exchange, why: string, headSent = false): Promise<{status: number; bytes: number; error: string}> {
    this.upstreamReusable = false
    if (headSent) {
      this.closing = true
      this.o.client.destroy()
      return {status: 502, bytes: 0, error: `target response broken: ${why}`}
    }
    return this.badUpstream(ex, `target response broken: ${why}`)
  }

  // --- output ------------------------------------------------------------------------------------

  private async toClient(buf: Buffer): Promise<void> {
    this.result.bytesDown += buf.length
    await write(this.o.client, buf, 'client')
  }

  private async sendJson(status: number, body: unknown, close: boolean): Promise<void> {
    const data = Buffer.from(JSON.stringify(body), 'utf8')
    const headers: Header[] = [
      {name: 'Content-Type', value: 'application/json'},
      {name: 'Content-Length', value: String(data.length)},
      {name: 'Cache-Control', value: 'no-store'},
    ]
    if (close) headers.push({name: 'Connection', value: 'close'})
    const head = encodeResponseHead('1.1', status, '', headers)
    if (this.gate.recording) this.gate.record('server', `HTTP/1.1 ${status}\n${headers.map((h) => `${h.name}: ${h.value}`).join('\n')}\n\n${data.toString('utf8')}`)
    await this.toClient(Buffer.concat([head, data]))
  }

  /** A request the engine cannot read: answer it and close (the next request's start is unknown). */
  private async fatal(status: number, code: string, message: string): Promise<void> {
    this.log.info('http request rejected', {status, reason: message})
    this.closing = true
    try {
      await this.sendJson(status, {error: {code, message}}, true)
    } catch {
      // the client is gone already
    }
  }

  // --- recording -------------------------------------------------------------------------------

  private redactHeaders(headers: readonly Header[]): string {
    return headers.map((h) => `${h.name}: ${this.redacted.has(h.name.toLowerCase()) ? '[redacted]' : h.value}`).join('\n')
  }

  private recordRequest(ex: Exchange, body: Buffer | undefined): void {
    if (!this.gate.recording) return
    let text = `${ex.description} HTTP/${ex.head.version}\n${this.redactHeaders(ex.head.headers)}`
    if (body) {
      const p = new Preview(this.limits.maxRecordedBodyBytes, mediaType(ex.head.headers))
      p.add(body)
      text += `\n\n${p.text()}`
    } else if (!ex.body.done) text += '\n\n[request body streamed, not recorded]'
    this.gate.record('client', text)
  }

  private recordResponse(resp: ResponseHead, sent: readonly Header[], preview: Preview): void {
    if (!this.gate.recording) return
    const body = preview.text()
    this.gate.record('server', `HTTP/1.1 ${resp.status} ${resp.reason}\n${this.redactHeaders(sent)}${body ? `\n\n${body}` : ''}`)
  }

}

/** The first bytes of a body for the recording; binary bodies are recorded by size only. */
class Preview {
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
    const textual = this.type === undefined || isJsonType(this.type) || TEXT_TYPES.test(this.type)
    if (!textual) return `[${this.type} body, ${this.total} bytes]`
    const s = Buffer.concat(this.parts).toString('utf8')
    return this.total > this.kept ? `${s}\n[... truncated, ${this.total} bytes in all]` : s
  }
}

function compilePaths(plan: HttpMaskPlan | undefined): JsonPath[] {
  if (!plan) return []
  const out: JsonPath[] = []
  for (const text of [...(plan.jsonPaths ?? []), ...(plan.columns ?? [])]) {
    const p = compileJsonPath(text)
    if (typeof p === 'string') throw new Error(p)
    out.push(p)
  }
  return out
}

function hostHeader(t: HttpTarget): string {
  const host = isIP(t.host) === 6 ? `[${t.host}]` : t.host
  const defaultPort = t.tls.mode === 'disable' ? 80 : 443
  return t.port === defaultPort ? host : `${host}:${t.port}`
}

async function startTls(raw: Duplex, t: HttpTarget): Promise<Duplex> {
  return startUpstreamTls(raw, t.tls, t.host, {ALPNProtocols: ['http/1.1']})
}

