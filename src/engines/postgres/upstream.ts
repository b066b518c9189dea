// The PostgreSQL engine's side towards the target (Teleport's connector.go): dial, TLS
// negotiation (SSLRequest, then TLS over the same stream), the startup message and the
// authentication exchange with the stored secret (credential injection: SCRAM-SHA-256, md5,
// cleartext), so that the local client never needs the database password.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
import type {Duplex, Readable} from 'node:stream'
import {md5Password, SCRAM_MECHANISM, ScramClient} from '../../protocol/pg/auth.js'
import {Framer, type Frame, type FramerError} from '../../protocol/pg/framer.js'
import {
  B,
  decodeAuth,
  decodeBackendKeyData,
  decodeErrorFields,
  decodeReadyForQuery,
  encodePassword,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeSSLRequest,
  encodeStartup,
} from '../../protocol/pg/messages.js'
import {HoopError} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {isPulledEnd, isPulledError, PullReader} from '../io.js'
import {startUpstreamTls, type UpstreamTls} from '../upstream-tls.js'

/** A pull reader of whole PostgreSQL messages. */
export type FrameReader = PullReader<Frame, FramerError, Framer>

/** Server messages are bounded too (PostgreSQL's own limit on a single allocation is 1 GiB). */
const MAX_SERVER_MESSAGE = 1024 * 1024 * 1024

/** The target as the connection's configuration names it; the password is the stored secret. */
export interface PgTarget {
  database?: string
  username?: string
  password?: string
  tls: UpstreamTls
  host: string
}

/** How to reach the target: a fresh stream (a socket, or a relay stream through an agent) and its settings. */
export interface PgDial {
  openUpstream: () => Promise<Duplex>
  target: PgTarget
}

/** The server refused our login: its own ErrorResponse goes to the client as is. */
export class UpstreamRefused extends Error {
  constructor(
    readonly frame: Buffer,
    readonly fields: Record<string, string>,
  ) {
    super(fields.M ?? 'target refused the login')
  }
}

export interface AuthenticatedConn {
  stream: Duplex
  reader: FrameReader
  /** What the server sent between AuthenticationOk and ReadyForQuery (ParameterStatus, notices), for the client. */
  startupFrames: Frame[]
  backendKey?: {pid: number; key: Buffer}
  status: 'I' | 'T' | 'E'
}

/** Dials, negotiates TLS, sends the startup parameters and authenticates; resolves at the server's first ReadyForQuery. */
export async function openAuthenticated(dial: PgDial, params: Record<string, string>, log: Logger): Promise<AuthenticatedConn> {
  let stream = await dial.openUpstream()
  try {
    if (dial.target.tls.mode !== 'disable') stream = await negotiateTls(stream, dial.target.tls, dial.target.host)
    const reader: FrameReader = new PullReader<Frame, FramerError, Framer>(stream, new Framer('regular', MAX_SERVER_MESSAGE))
    stream.write(encodeStartup(params))
    await authenticate(stream, reader, params.user, dial.target.password, log)
    const startupFrames: Frame[] = []
    let backendKey: {pid: number; key: Buffer} | undefined
    for (;;) {
      const f = await reader.one()
      if (isPulledEnd(f)) throw new HoopError('TARGET_REFUSED', 'target closed the connection during startup')
      if (isPulledError(f)) throw new HoopError('PROTOCOL_ERROR', 'target sent an oversized startup message')
      if (f.type === B.ReadyForQuery) return {stream, reader, startupFrames, backendKey, status: decodeReadyForQuery(f)}
      if (f.type === B.BackendKeyData) backendKey = decodeBackendKeyData(f)
      else if (f.type === B.ErrorResponse) throw new UpstreamRefused(Buffer.from(f.bytes), decodeErrorFields(f))
      else startupFrames.push({...f, bytes: Buffer.from(f.bytes)})
    }
  } catch (err) {
    stream.destroy()
    throw err
  }
}

/** Runs the target's authentication exchange with the stored secret. */
async function authenticate(stream: Duplex, reader: FrameReader, user: string, password: string | undefined, log: Logger): Promise<void> {
  const needPassword = (): string => {
    if (password === undefined) throw new HoopError('TARGET_REFUSED', 'target asks for a password but the connection has no stored secret')
    return password
  }
  let scram: ScramClient | undefined
  for (;;) {
    const f = await reader.one()
    if (isPulledEnd(f)) throw new HoopError('TARGET_REFUSED', 'target closed the connection during authentication')
    if (isPulledError(f)) throw new HoopError('PROTOCOL_ERROR', 'target sent an oversized authentication message')
    if (f.type === B.ErrorResponse) throw new UpstreamRefused(Buffer.from(f.bytes), decodeErrorFields(f))
    if (f.type === B.NegotiateProtocolVersion) continue
    if (f.type !== B.Authentication) throw new HoopError('PROTOCOL_ERROR', `target sent ${JSON.stringify(String.fromCharCode(f.type))} during authentication`)
    const a = decodeAuth(f)
    switch (a.kind) {
      case 'Ok':
        log.debug('pg target authentication ok')
        return
      case 'Cleartext':
        stream.write(encodePassword(needPassword()))
        break
      case 'MD5':
        stream.write(encodePassword(md5Password(user, needPassword(), a.salt)))
        break
      case 'SASL': {
        if (!a.mechanisms.includes(SCRAM_MECHANISM)) throw new HoopError('TARGET_REFUSED', `target offers no supported SASL mechanism (${a.mechanisms.join(', ')})`)
        scram = new ScramClient(needPassword())
        stream.write(encodeSASLInitialResponse(SCRAM_MECHANISM, scram.clientFirst()))
        break
      }
      case 'SASLContinue':
        if (!scram) throw new HoopError('PROTOCOL_ERROR', 'target sent SASLContinue before SASL')
        stream.write(encodeSASLResponse(scram.clientFinal(a.data)))
        break
      case 'SASLFinal':
        if (!scram) throw new HoopError('PROTOCOL_ERROR', 'target sent SASLFinal before SASL')
        scram.verifyServerFinal(a.data)
        break
      case 'Other':
        throw new HoopError('TARGET_REFUSED', `target asks for an unsupported authentication method (code ${a.code})`)
    }
  }
}

/** SSLRequest, then TLS over the same stream. `require` encrypts only; `verify-full` checks CA and host name. */
export async function negotiateTls(raw: Duplex, opts: UpstreamTls, host: string): Promise<Duplex> {
  raw.write(encodeSSLRequest())
  const answer = await readOneByte(raw)
  if (answer !== 0x53) throw new HoopError('TARGET_REFUSED', `target does not accept TLS but the connection requires sslmode=${opts.mode}`)
  // Bytes after 'S' and before the handshake could only be injected by a man in the middle (CVE-2021-23222).
  if (raw.readableLength > 0) throw new HoopError('PROTOCOL_ERROR', 'target sent unencrypted data after accepting TLS')
  return startUpstreamTls(raw, opts, host)
}

function readOneByte(s: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      s.off('readable', tryRead)
      s.off('end', onEnd)
      s.off('error', onErr)
    }
    const tryRead = () => {
      const b = s.read(1) as Buffer | null
      if (b !== null) {
        cleanup()
        resolve(b[0])
      }
    }
    const onEnd = () => {
      cleanup()
      reject(new HoopError('TARGET_REFUSED', 'target closed the connection during TLS negotiation'))
    }
    const onErr = (e: Error) => {
      cleanup()
      reject(new HoopError('TARGET_REFUSED', `target stream failed: ${e.message}`))
    }
    s.on('readable', tryRead)
    s.on('end', onEnd)
    s.on('error', onErr)
    tryRead()
  })
}
