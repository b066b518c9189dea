// The connection to the target, and the request head the target sees. The connection is dialled
// when first needed (through the agent's stream, then TLS unless the connection disables it: see
// upstream-tls.ts), reused for the next request while both sides keep it alive, and dropped
// whenever a response leaves it in an unknown state. The head gets the target's own Host, loses
// hop-by-hop fields, and carries the connection's credentials (bearer or basic) instead of the
// caller's Authorization, so the client never needs the target's secret.
import {isIP} from 'node:net'
import type {Duplex} from 'node:stream'
import {encodeRequestHead, endToEndHeaders, type Header, type RequestHead} from '../../protocol/http/head.js'
import type {Logger} from '../../shared/log.js'
import {startUpstreamTls, type UpstreamTls} from '../upstream-tls.js'
import {pull, type Pull} from './streams.js'

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
  tls: UpstreamTls
}

/** Methods whose requests a server must tolerate receiving twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/**
 * A kept-alive target connection may have been closed by the server while idle; an idempotent
 * request that is wholly in hand may then be sent once more on a new connection.
 */
export function mayResend(method: string, bodyInHand: boolean): boolean {
  return bodyInHand && IDEMPOTENT.has(method)
}

/** An open target connection: its stream, its reader, and whether an earlier request used it. */
export interface TargetLink {
  up: Duplex
  upIn: Pull
  reused: boolean
}

export class TargetConnection {
  private stream: Duplex | undefined
  private reader: Pull | undefined
  /** Whether the open connection may carry the next request; whatever leaves it in doubt clears it. */
  reusable = false
  private readonly authorization: string | undefined
  /** Why the connection's secret cannot be sent, when it cannot: requests are then refused. */
  readonly credentialProblem: string | undefined

  constructor(
    private readonly target: HttpTarget,
    private readonly open: () => Promise<Duplex>,
    private readonly log: Logger,
  ) {
    if (target.token !== undefined) {
      const value =
        target.auth === 'basic' ? 'Basic ' + Buffer.from(`${target.username ?? ''}:${target.token}`, 'utf8').toString('base64') : `Bearer ${target.token}`
      // A secret with CR/LF would let it inject headers; refuse to use it rather than send it.
      if (/^[\x20-\x7e]+$/.test(value)) this.authorization = value
      else this.credentialProblem = 'the connection secret contains characters not allowed in a header value'
    }
  }

  /** The kept-alive connection when it is still usable, else a new one. */
  async connect(): Promise<TargetLink> {
    if (this.stream && this.reader && this.reusable && !this.stream.destroyed && !this.reader.isEnded) {
      return {up: this.stream, upIn: this.reader, reused: true}
    }
    this.drop()
    let s = await this.open()
    s.on('error', (e) => this.log.debug('http upstream stream error', {error: e.message}))
    if (this.target.tls.mode !== 'disable') s = await startUpstreamTls(s, this.target.tls, this.target.host, {ALPNProtocols: ['http/1.1']})
    this.stream = s
    this.reader = pull(s)
    this.reusable = true
    return {up: s, upIn: this.reader, reused: false}
  }

  drop(): void {
    this.reader?.detach()
    this.stream?.destroy()
    this.stream = undefined
    this.reader = undefined
    this.reusable = false
  }

  /**
   * The head sent to the target for a request to `forwardTarget` (the normalised target). When
   * the response is to be masked, the target is asked for no content coding: masking needs the
   * body as written.
   */
  requestHead(head: RequestHead, forwardTarget: string, maskOn: boolean): Buffer {
    return encodeRequestHead(head.method, forwardTarget, this.requestHeaders(head.headers, maskOn))
  }

  private requestHeaders(headers: readonly Header[], maskOn: boolean): Header[] {
    const t = this.target
    const out: Header[] = [{name: 'Host', value: hostHeader(t)}]
    const callerAuth = headers.find((h) => h.name.toLowerCase() === 'authorization')
    for (const h of endToEndHeaders(headers)) {
      const n = h.name.toLowerCase()
      if (n === 'host' || n === 'expect') continue
      if (n === 'authorization' && !t.forwardAuthorization) continue
      if (n === 'accept-encoding' && maskOn) continue
      out.push(h)
    }
    if (maskOn) out.push({name: 'Accept-Encoding', value: 'identity'})
    if (this.authorization && !(t.forwardAuthorization && callerAuth)) out.push({name: 'Authorization', value: this.authorization})
    return out
  }
}

/** Host as the target knows itself: the port only when it is not the scheme's default. */
function hostHeader(t: HttpTarget): string {
  const host = isIP(t.host) === 6 ? `[${t.host}]` : t.host
  const defaultPort = t.tls.mode === 'disable' ? 80 : 443
  return t.port === defaultPort ? host : `${host}:${t.port}`
}
