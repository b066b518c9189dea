// The client side of one HTTP session: its stream, read on demand (bytes read past a request are
// pushed back for the next one), writes to it counted into the session result, the engine's own
// JSON answers (refusals and errors), and whether the connection closes after this response.
// Every write waits until the audit records of the requests admitted so far are durable (the
// gate's hold mode): no byte of a response leaves before its request's record is on disk.
import type {Duplex} from 'node:stream'
import {encodeResponseHead, type Header} from '../../protocol/http/head.js'
import type {Logger} from '../../shared/log.js'
import {AUDIT_UNAVAILABLE_RULE, type StatementGate} from '../gate.js'
import type {ExchangeRecorder} from './recording.js'
import {pull, type Pull, write} from './streams.js'

/** A peer that never reads must not keep the socket forever after the session ended. */
const END_GRACE_MS = 5000

export class ClientConnection {
  readonly in: Pull
  /** Set when the connection must close after the current response. */
  closing = false

  constructor(
    private readonly stream: Duplex,
    private readonly gate: Pick<StatementGate, 'result' | 'untilDurable'>,
    private readonly recorder: ExchangeRecorder,
    private readonly log: Logger,
  ) {
    this.in = pull(stream)
    stream.on('error', (e) => this.log.debug('http client stream error', {error: e.message}))
  }

  /** Writes with backpressure, counting the bytes the client was sent; throws ResponseWithheld when a record failed. */
  async send(buf: Buffer): Promise<void> {
    const records = this.gate.untilDurable()
    if (records) await records
    await this.write(buf)
  }

  private async write(buf: Buffer): Promise<void> {
    this.gate.result.bytesDown += buf.length
    await write(this.stream, buf, 'client')
  }

  /** An answer of the engine's own, recorded; `close` tells the client the connection ends after it. */
  async sendJson(status: number, body: unknown, close: boolean): Promise<void> {
    await this.send(this.jsonAnswer(status, body, close))
  }

  /**
   * The response to an admitted request is withheld because its audit record failed (hold mode):
   * a 503 AUDIT_UNAVAILABLE instead, and the connection closes.
   */
  async withheld(message: string): Promise<void> {
    this.closing = true
    try {
      await this.write(this.jsonAnswer(503, {error: {code: 'AUDIT_UNAVAILABLE', rule: AUDIT_UNAVAILABLE_RULE, message}}, true))
    } catch {
      // the client is gone already
    }
  }

  private jsonAnswer(status: number, body: unknown, close: boolean): Buffer {
    const data = Buffer.from(JSON.stringify(body), 'utf8')
    const headers: Header[] = [
      {name: 'Content-Type', value: 'application/json'},
      {name: 'Content-Length', value: String(data.length)},
      {name: 'Cache-Control', value: 'no-store'},
    ]
    if (close) headers.push({name: 'Connection', value: 'close'})
    const head = encodeResponseHead('1.1', status, '', headers)
    this.recorder.answer(status, headers, data)
    return Buffer.concat([head, data])
  }

  /** A request the engine cannot read: answer it and close (the next request's start is unknown). */
  async fatal(status: number, code: string, message: string): Promise<void> {
    this.log.info('http request rejected', {status, reason: message})
    this.closing = true
    try {
      await this.sendJson(status, {error: {code, message}}, true)
    } catch {
      // the client is gone already
    }
  }

  /** A response broke off after its head went out: only closing the connection can tell the client. */
  abort(): void {
    this.closing = true
    this.stream.destroy()
  }

  /** The session is over: the client gets what was written, then the connection ends. */
  end(): void {
    const c = this.stream
    if (c.destroyed) return
    c.end()
    setTimeout(() => c.destroy(), END_GRACE_MS).unref()
  }
}
