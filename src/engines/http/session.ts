// The HTTP engine at the gateway: drives one client connection (keep-alive HTTP/1.1, pipelined
// requests answered in order) over two Duplex streams. Each request passes these steps, each of
// which either hands on or has answered the client:
//
//   readRequestHead -> open (CONNECT, framing, target, upgrades) -> describe (path, query, small
//   JSON body) -> judge -> admit (audit record first) -> forward (head rewritten, body streamed
//   || response relayed and masked) -> finish (result event)
//   ... or refuse (403 / 409 / 5xx; the connection stays usable when the request's end is known)
//
// This file holds the request loop and the refusals. The target connection and the head it is
// sent are upstream.ts; response modes and masking, response.ts; the recording, recording.ts; the
// client's stream and the engine's own answers, client.ts.
//
// Bodies stream with backpressure (a chunk is read only when the previous one was written); only a
// JSON request body the judge needs (up to 1 MiB) and a JSON response a mask plan applies to (up to
// 32 MiB; larger is refused with 502, never leaked) are buffered. Text responses under a mask plan
// are masked line by line. Protocol upgrades and CONNECT are refused with 501.
// Spec: https://www.rfc-editor.org/rfc/rfc9112 (HTTP/1.1), https://www.rfc-editor.org/rfc/rfc9110
import {createHash} from 'node:crypto'
import type {Duplex} from 'node:stream'
import type {HttpRequestInfo} from '../../policy/types.js'
import {BodyDecoder} from '../../protocol/http/body.js'
import {
  HeadAccumulator,
  headerTokens,
  headerValue,
  isHeadError,
  isJsonType,
  mediaType,
  parseRequestHead,
  type RequestHead,
  requestFraming,
} from '../../protocol/http/head.js'
import {parseTarget, type ParsedTarget, redactTarget} from '../../protocol/http/target.js'
import {errorMessage} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {JUDGE_ERROR_RULE, type Judged, type Refusal, refusalMessage, ResponseWithheld, type SessionResult, type StatementGate, type Verdict} from '../gate.js'
import {ClientConnection} from './client.js'
import {DEFAULT_HTTP_LIMITS, type HttpLimits} from './limits.js'
import {ExchangeRecorder} from './recording.js'
import {compileMask, masksAnything, type Relayed, ResponseRelay, type ResponseMask} from './response.js'
import {Closed, write} from './streams.js'
import {type HttpTarget, mayResend, TargetConnection, type TargetLink} from './upstream.js'

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

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1')

export function runHttpSession(opts: HttpSessionOptions): Promise<HttpSessionResult> {
  return new HttpSession(opts).run()
}

/** One request on its way through the steps. */
interface Exchange {
  head: RequestHead
  target: ParsedTarget
  /** Method and target with secret-looking query values redacted: what is judged, audited, recorded. */
  description: string
  body: BodyDecoder
  /** Client asked for 100-continue and has not been sent it yet. */
  awaitingContinue: boolean
  keepAlive: boolean
}

/** A JSON request body read ahead for the judge: its status for the view, and its bytes to forward. */
interface ReadAhead {
  status: HttpRequestView['bodyStatus']
  body?: unknown
  /** The decoded body, when it was read whole (it goes into the fingerprint and the recording). */
  payload?: Buffer
  /** The wire bytes read, forwarded before the rest of the body. */
  raw: Buffer[]
}

/** An allowed request, with its mask plan compiled. */
interface Allowed {
  judged: Judged
  verdict: Extract<Verdict, {effect: 'allow'}>
  mask: ResponseMask
}

/** The request body on its way to the target: whether it went whole, and why not when it failed. */
interface Upload {
  complete: boolean
  failure: string | undefined
}

class HttpSession {
  private readonly log: Logger
  private readonly gate: StatementGate<HttpRequestInfo>
  private readonly limits: HttpLimits
  private readonly result: HttpSessionResult
  private readonly recorder: ExchangeRecorder
  private readonly client: ClientConnection
  private readonly target: TargetConnection
  private readonly responses: ResponseRelay

  constructor(private readonly o: HttpSessionOptions) {
    this.log = o.logger
    this.gate = o.gate
    this.result = o.gate.result
    this.limits = {...DEFAULT_HTTP_LIMITS, ...o.limits}
    this.recorder = new ExchangeRecorder(o.gate, o.redactHeaders, this.limits.maxRecordedBodyBytes)
    this.client = new ClientConnection(o.client, o.gate, this.recorder, this.log)
    this.target = new TargetConnection(o.target, o.openUpstream, this.log)
    this.responses = new ResponseRelay(this.client, this.target, this.recorder, this.limits, this.log)
  }

  async run(): Promise<HttpSessionResult> {
    try {
      while (!this.client.closing) {
        const head = await this.readRequestHead()
        if (!head) break
        await this.handleRequest(head)
      }
    } catch (err) {
      if (err instanceof ResponseWithheld) await this.client.withheld(err.message)
      else if (!(err instanceof Closed)) this.log.warn('http session failed', {error: errorMessage(err)})
    } finally {
      this.shutdown()
    }
    this.result.bytesUp = this.client.in.bytesRead
    return this.result
  }

  private shutdown(): void {
    this.client.in.detach()
    this.target.drop()
    this.client.end()
  }

  /** The next request head, or undefined at end of stream (or after a malformed head was answered). */
  private async readRequestHead(): Promise<RequestHead | undefined> {
    const acc = new HeadAccumulator(this.limits.maxHeadBytes)
    for (;;) {
      const c = await this.client.in.read()
      if (c === null) {
        if (acc.buffered > 0) this.log.debug('http client closed inside a request head')
        return undefined
      }
      const r = acc.push(c)
      if (!r) continue
      if (isHeadError(r)) {
        await this.client.fatal(r.status, 'PROTOCOL_ERROR', `hoop: ${r.error}`)
        return undefined
      }
      this.client.in.unshift(r.rest)
      const head = parseRequestHead(r.head)
      if (isHeadError(head)) {
        await this.client.fatal(head.status, 'PROTOCOL_ERROR', `hoop: ${head.error}`)
        return undefined
      }
      return head
    }
  }

  /** One request, from its head to its result event. */
  private async handleRequest(head: RequestHead): Promise<void> {
    const ex = await this.open(head)
    if (!ex) return
    const described = await this.describe(ex)
    if (!described) return
    const allowed = await this.judge(ex, described.view)
    if (!allowed || !(await this.admit(ex, allowed))) return
    const outcome = await this.forward(ex, allowed, described.raw)
    if (outcome) this.finish(allowed, outcome)
  }

  /** What the engine cannot proxy (CONNECT, unreadable framing or target, upgrades) ends here, unjudged. */
  private async open(head: RequestHead): Promise<Exchange | undefined> {
    const keepAlive = head.version === '1.1' && !headerTokens(head.headers, 'connection').includes('close')
    if (head.method === 'CONNECT') {
      await this.client.fatal(501, 'PROTOCOL_ERROR', 'hoop: CONNECT is not supported by the HTTP engine; use a tcp connection for tunnels')
      return undefined
    }
    const framing = requestFraming(head)
    if (isHeadError(framing)) {
      await this.client.fatal(framing.status, 'PROTOCOL_ERROR', `hoop: ${framing.error}`)
      return undefined
    }
    const target = parseTarget(head.method, head.target)
    if (typeof target === 'string') {
      await this.client.fatal(400, 'PROTOCOL_ERROR', `hoop: ${target}`)
      return undefined
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
      const refusal: Refusal = {effect: 'block', ruleId: HTTP_UNSUPPORTED_RULE, message: 'protocol upgrades (WebSocket, h2c) are not supported by the HTTP engine; use a tcp connection'}
      this.recorder.request(ex.description, head, undefined, !ex.body.done)
      await this.refuse(ex, refusal, 501)
      return undefined
    }
    return ex
  }

  /** The view the judge decides on, recorded; undefined when the client went away or sent a bad body. */
  private async describe(ex: Exchange): Promise<{view: HttpRequestView; raw: Buffer[]} | undefined> {
    const contentType = mediaType(ex.head.headers)
    const ahead = await this.readJsonBody(ex, contentType)
    if (!ahead) return undefined
    const view: HttpRequestView = {
      method: ex.head.method,
      path: ex.target.path,
      query: ex.target.query,
      target: ex.target.target,
      ...(contentType ? {contentType} : {}),
      bodyStatus: ahead.status,
      ...(ahead.status === 'json' ? {body: ahead.body} : {}),
      fingerprint: fingerprint(ex.head.method, ex.target.target, ahead.payload),
    }
    this.recorder.request(ex.description, ex.head, ahead.payload, !ex.body.done)
    return {view, raw: ahead.raw}
  }

  /** A JSON body small enough to judge is read ahead of judging; any other body streams later, unseen. */
  private async readJsonBody(ex: Exchange, contentType: string | undefined): Promise<ReadAhead | undefined> {
    const framing = ex.body.framing
    const raw: Buffer[] = []
    if (framing.kind === 'none') return {status: 'none', raw}
    if (this.o.inspectJsonBodies === false || !isJsonType(contentType)) return {status: 'not-inspected', raw}
    if (framing.kind === 'length' && framing.length > this.limits.maxJsonRequestBytes) return {status: 'too-large', raw}
    await this.sendContinue(ex)
    const got = await this.bufferBody(ex, this.limits.maxJsonRequestBytes, raw)
    if (got === 'closed') {
      this.client.closing = true
      return undefined
    }
    if (got === 'error') return undefined
    if (got === 'overflow') return {status: 'too-large', raw}
    try {
      return {status: 'json', body: JSON.parse(got.toString('utf8')), payload: got, raw}
    } catch {
      return {status: 'invalid-json', payload: got, raw}
    }
  }

  /** The policy's verdict; all but an allow whose mask plan the engine can apply is refused here. */
  private async judge(ex: Exchange, view: HttpRequestView): Promise<Allowed | undefined> {
    const judged = await this.gate.judge(view, ex.description)
    const verdict = judged.verdict
    if (verdict.effect !== 'allow') {
      if (verdict.ruleId === JUDGE_ERROR_RULE) await this.refuse(ex, verdict, 500, 'INTERNAL')
      else await this.refuse(ex, verdict, verdict.effect === 'review' ? 409 : 403)
      return undefined
    }
    const mask = compileMask(verdict.mask)
    if ('error' in mask) {
      this.log.error('http mask plan invalid', {error: mask.error})
      await this.refuse(ex, {effect: 'block', ruleId: verdict.ruleId, message: `the mask plan cannot be applied: ${mask.error}`}, 500, 'INTERNAL')
      return undefined
    }
    return {judged, verdict, mask}
  }

  /** The audit record is durable before anything is forwarded; when it cannot be written, the request is refused. */
  private async admit(ex: Exchange, allowed: Allowed): Promise<boolean> {
    const refusal = await this.gate.admit(allowed.judged)
    if (!refusal) return true
    // The verdict was allow: only a failed audit record refuses it here.
    await this.refuse(ex, refusal, 503, 'AUDIT_UNAVAILABLE')
    return false
  }

  /**
   * Sends the request and relays the response; undefined when the request was refused instead
   * (unusable credentials, target unreachable). A request that found a kept-alive connection
   * closed is sent once more when that is safe (mayResend).
   */
  private async forward(ex: Exchange, {verdict, mask}: Allowed, bufferedRaw: Buffer[]): Promise<Relayed | undefined> {
    if (this.target.credentialProblem) {
      await this.refuse(ex, {effect: 'block', ruleId: verdict.ruleId, message: this.target.credentialProblem}, 502, 'TARGET_REFUSED')
      return undefined
    }
    const head = this.target.requestHead(ex.head, ex.target.target, masksAnything(mask))
    const retryable = mayResend(ex.head.method, ex.body.done)
    let outcome: Relayed | 'retry'
    let upload: Upload
    for (let attempt = 0; ; attempt++) {
      let link: TargetLink
      try {
        link = await this.target.connect()
      } catch (err) {
        this.log.warn('http upstream unreachable', {error: errorMessage(err)})
        await this.refuse(ex, {effect: 'block', ruleId: verdict.ruleId, message: `the target could not be reached: ${errorMessage(err)}`}, 502, 'TARGET_REFUSED')
        return undefined
      }
      await this.sendContinue(ex)
      upload = this.upload(ex, link.up, head, bufferedRaw)
      try {
        outcome = await this.responses.relay(ex, link.upIn, mask, () => upload.failure, retryable && link.reused && attempt === 0)
      } catch (err) {
        if (err instanceof ResponseWithheld) throw err
        this.client.closing = true
        outcome = {status: 0, bytes: 0, error: errorMessage(err)}
      }
      if (outcome !== 'retry') break
      this.log.debug('http kept-alive target connection was closed; sending the request again')
      this.target.drop()
    }
    if (!upload.complete) {
      // Answered before the body was read: the next request's start is unknown.
      this.client.closing = true
      this.target.reusable = false
    }
    if (!this.target.reusable) this.target.drop()
    return outcome
  }

  /**
   * Sends the head and streams the body to the target while the response is relayed: a server
   * may answer before it has read the whole body.
   */
  private upload(ex: Exchange, up: Duplex, head: Buffer, bufferedRaw: Buffer[]): Upload {
    const upload: Upload = {complete: ex.body.done, failure: undefined}
    const pump = async () => {
      await write(up, Buffer.concat([head, ...bufferedRaw]), 'target')
      while (!ex.body.done) {
        const c = await this.client.in.read()
        if (c === null) throw new Closed('client')
        const st = ex.body.push(c)
        if ('error' in st) {
          upload.failure = st.error
          throw new Error(st.error)
        }
        await write(up, st.raw, 'target')
        if (st.done) this.client.in.unshift(st.rest)
      }
      upload.complete = true
    }
    pump().catch((err: unknown) => {
      // The target waits for a body that will not come: end the exchange.
      if (!(err instanceof Closed)) this.log.debug('http request body failed', {error: errorMessage(err)})
      up.destroy()
    })
    return upload
  }

  /** The result event: what the client got, and what was masked on the way. */
  private finish(allowed: Allowed, outcome: Relayed): void {
    const error = outcome.error ? {error: outcome.error} : outcome.status >= 400 ? {error: `HTTP ${outcome.status}`} : {}
    this.gate.finish(allowed.judged, {rows: 0, bytes: outcome.bytes, ...error, masked: allowed.mask.counts})
  }

  /** 100-continue goes out only when the body is about to be read: a refusal before it spares the client sending it. */
  private async sendContinue(ex: Exchange): Promise<void> {
    if (!ex.awaitingContinue) return
    ex.awaitingContinue = false
    await this.client.send(CONTINUE)
  }

  /** Reads the body into memory up to `max` payload bytes, keeping the wire bytes in `raw`. */
  private async bufferBody(ex: Exchange, max: number, raw: Buffer[]): Promise<Buffer | 'overflow' | 'closed' | 'error'> {
    const payload: Buffer[] = []
    while (!ex.body.done) {
      const c = await this.client.in.read()
      if (c === null) return 'closed'
      const st = ex.body.push(c)
      if ('error' in st) {
        await this.client.fatal(400, 'PROTOCOL_ERROR', `hoop: ${st.error}`)
        return 'error'
      }
      raw.push(st.raw)
      payload.push(...st.payload)
      if (st.done) this.client.in.unshift(st.rest)
      if (ex.body.payloadBytes > max) return 'overflow'
    }
    return Buffer.concat(payload)
  }

  /** Answers a refused request and leaves the connection ready for the next one when it can. */
  private async refuse(ex: Exchange, refusal: Refusal, status: number, code?: string): Promise<void> {
    // An unread body must be consumed to find the next request; when the client still waits for
    // 100-continue it may never send it, so the connection closes instead.
    const keep = ex.keepAlive && (ex.body.done || !ex.awaitingContinue)
    const error: Record<string, unknown> = {
      code: code ?? (refusal.effect === 'review' ? 'APPROVAL_REQUIRED' : 'POLICY_BLOCKED'),
      rule: refusal.ruleId,
    }
    if (refusal.effect === 'review' && refusal.approvalId) {
      error.approvalId = refusal.approvalId
      // An HTTP client is told to repeat the request: the approval is bound to its fingerprint.
      error.message = `hoop: review required by policy rule ${refusal.ruleId}: ${refusal.message} (an approver runs: hoop approvals approve ${refusal.approvalId}; then repeat the same request)`
    } else {
      error.message = code && refusal.effect === 'block' ? `hoop: ${refusal.message}` : refusalMessage(refusal)
    }
    await this.client.sendJson(status, {error}, !keep)
    this.gate.refuse({text: ex.description, verdict: refusal}, refusal)
    if (!keep) {
      this.client.closing = true
      return
    }
    if (!(await this.discardBody(ex))) this.client.closing = true
  }

  /** Reads a refused request's body to its end (up to a limit) to find where the next request starts. */
  private async discardBody(ex: Exchange): Promise<boolean> {
    let seen = 0
    while (!ex.body.done) {
      const c = await this.client.in.read()
      if (c === null) return false
      const st = ex.body.push(c)
      if ('error' in st) return false
      seen += st.raw.length
      if (st.done) this.client.in.unshift(st.rest)
      else if (seen > this.limits.maxDiscardBytes) return false
    }
    return true
  }
}

/** Binds a one-time approval to this exact request: method, normalised target and, when read ahead, the body. */
function fingerprint(method: string, target: string, body: Buffer | undefined): string {
  const fp = createHash('sha256').update(method).update('\0').update(target).update('\0')
  if (body) fp.update(body)
  return fp.digest('hex')
}
