// The MySQL engine's link to the target: dial it, read its greeting, switch to TLS after an
// SSLRequest, and log in with the connection's stored credentials (credential injection: the
// client never sends the target's password). Speaks mysql_native_password, caching_sha2_password
// (fast and full authentication; the password in clear only inside TLS, RSA-encrypted otherwise),
// sha256_password and mysql_clear_password (TLS only), and follows AuthSwitchRequest.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
import type {Duplex} from 'node:stream'
import {
  CACHING_SHA2,
  CLEAR_PASSWORD,
  initialAuthResponse,
  NATIVE_PASSWORD,
  rsaEncryptPassword,
  SHA2_FAST_AUTH_OK,
  SHA2_FULL_AUTH,
  SHA2_REQUEST_PUBLIC_KEY,
  SHA256_PASSWORD,
} from '../../protocol/mysql/auth.js'
import {CAP, ER_CONNECT_TO_FOREIGN_DATA_SOURCE, ER_HANDSHAKE_ERROR, STATUS} from '../../protocol/mysql/constants.js'
import {encodePacket, type FramerError, type Packet} from '../../protocol/mysql/framer.js'
import {
  decodeAuthReply,
  decodeErr,
  decodeHandshake,
  encodeHandshakeResponse,
  encodeSSLRequest,
  isErr,
  statusOf,
  type ErrPacket,
  type HandshakeResponse,
  type HandshakeV10,
} from '../../protocol/mysql/messages.js'
import {errorMessage, HoopError} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {waitDrain} from '../io.js'
import {startUpstreamTls, type UpstreamTls} from '../upstream-tls.js'
import {FatalToClient, packetReader, type PacketReader} from './packets.js'

/** The target of a connection and the credentials hoop injects. */
export interface MysqlTarget {
  database?: string
  username?: string
  password?: string
  tls: UpstreamTls
  host: string
}

/** The client's HandshakeResponse41 and the sequence id it came with. */
export type ClientHello = HandshakeResponse & {seq: number}

/**
 * Capabilities in force on both links: the 32-bit flags, and the MariaDB extended capabilities
 * (undefined when CLIENT_MYSQL is set, i.e. the links speak plain MySQL).
 */
export interface Capabilities {
  flags: number
  mariadb: number | undefined
}

/** The server's own max_allowed_packet cannot exceed 1 GiB. */
const MAX_SERVER_PACKET = 1024 * 1024 * 1024
/** Authentication round trips allowed before the target is deemed stuck. */
const MAX_AUTH_ROUNDS = 8

/** The target refused our login; its ERR goes to the client. */
export class UpstreamRefused extends Error {
  constructor(readonly err: ErrPacket) {
    super(err.message)
  }
}

/**
 * The target closed the link (or it failed). In the command phase the client's link is closed the
 * same way, without a synthetic ERR: a driver then sees what it sees when a server goes away.
 */
export class TargetClosed extends HoopError {
  constructor(phase: string) {
    super('TARGET_REFUSED', `the target closed the connection during ${phase}`)
  }
}

/** Opens the target; an unreachable target is an ERR for the client. */
export async function dialTarget(open: () => Promise<Duplex>, log: Logger): Promise<Upstream> {
  let stream: Duplex
  try {
    stream = await open()
  } catch (err) {
    throw new FatalToClient({code: ER_CONNECT_TO_FOREIGN_DATA_SOURCE, sqlState: 'HY000', message: `hoop: cannot reach target: ${errorMessage(err)}`}, 0)
  }
  return new Upstream(stream, log)
}

/** One link to the target, from its greeting through the command phase. */
export class Upstream {
  private stream: Duplex
  private reader: PacketReader
  private tlsUsed = false
  /**
   * The read started by `watch()` while the session was idle: the next `read()` takes its result,
   * so there is only ever one read in flight and nothing the target sends is lost.
   */
  private inflight: Promise<Packet | {error: FramerError} | {end: true}> | undefined
  /** The in-flight read has its result. */
  private spoke = false
  /** Called once when the in-flight read has its result (one slot: a watcher replaces the last). */
  private onSpoke: (() => void) | undefined

  constructor(
    stream: Duplex,
    private readonly log: Logger,
  ) {
    this.stream = stream
    this.reader = this.listen(stream)
  }

  private listen(stream: Duplex): PacketReader {
    const reader = packetReader(stream, MAX_SERVER_PACKET)
    stream.on('error', (e) => this.log.debug('mysql upstream stream error', {error: e.message}))
    return reader
  }

  /** The server's greeting: the session mirrors its version, capabilities and connection id. */
  async greeting(): Promise<HandshakeV10> {
    const p = await this.read('greeting')
    if (isErr(p.payload)) {
      // The server refused us before the handshake (too many connections, host blocked).
      throw new FatalToClient({...decodeErr(p.payload), message: `hoop: target refused the connection: ${decodeErr(p.payload).message}`}, 0)
    }
    const g = decodeHandshake(p.payload)
    if (!g) throw new FatalToClient({code: ER_HANDSHAKE_ERROR, sqlState: '08S01', message: 'hoop: the target did not send a MySQL protocol 10 handshake'}, 0)
    if (!(g.capabilities & CAP.PROTOCOL_41)) throw new FatalToClient({code: ER_HANDSHAKE_ERROR, sqlState: '08S01', message: 'hoop: the target does not speak protocol 4.1'}, 0)
    return g
  }

  /**
   * TLS if the target config asks for it, then HandshakeResponse41 with the stored credentials and
   * the authentication exchange. `caps` is what the client and hoop agreed on. Returns the server
   * status of the final OK.
   */
  async login(g: HandshakeV10, hello: ClientHello, caps: Capabilities, database: string | undefined, target: MysqlTarget): Promise<number> {
    const user = target.username ?? hello.username
    const password = target.password ?? ''
    // CLIENT_MYSQL (LONG_PASSWORD) clear only when the MariaDB extended capabilities are in force.
    let upCaps = (caps.flags & g.capabilities) | CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION
    upCaps = caps.mariadb === undefined ? upCaps | CAP.LONG_PASSWORD : upCaps & ~CAP.LONG_PASSWORD
    const mariadbCapabilities = caps.mariadb
    upCaps |= g.capabilities & (CAP.PLUGIN_AUTH | CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA)
    upCaps = database ? upCaps | CAP.CONNECT_WITH_DB : upCaps & ~CAP.CONNECT_WITH_DB
    if (!hello.attributes) upCaps &= ~CAP.CONNECT_ATTRS
    let seq = 1
    const maxPacket = hello.maxPacket || MAX_SERVER_PACKET
    if (target.tls.mode !== 'disable') {
      if (!(g.capabilities & CAP.SSL)) throw new FatalToClient({code: ER_HANDSHAKE_ERROR, sqlState: '08S01', message: `hoop: the target does not offer TLS but the connection requires tls mode ${target.tls.mode}`}, hello.seq + 1)
      this.write(encodeSSLRequest(upCaps, maxPacket, hello.charset, mariadbCapabilities), seq++)
      await this.startTls(target)
      upCaps |= CAP.SSL
    }
    let plugin = g.authPlugin
    let scramble = g.authData
    let token = initialAuthResponse(plugin, password, scramble)
    if (!token) {
      // A plugin we do not speak: answer as mysql_native_password; the server switches or refuses.
      plugin = NATIVE_PASSWORD
      token = initialAuthResponse(plugin, password, scramble) as Buffer
    }
    const pluginAuth = (upCaps & CAP.PLUGIN_AUTH) !== 0
    this.write(
      encodeHandshakeResponse({capabilities: upCaps, maxPacket, charset: hello.charset, username: user, authResponse: token, database, authPlugin: pluginAuth ? plugin : undefined, attributes: hello.attributes, mariadbCapabilities}),
      seq,
    )
    for (let rounds = 0; rounds < MAX_AUTH_ROUNDS; rounds++) {
      const p = await this.read('authentication')
      const next = (p.lastSeq + 1) & 0xff
      const reply = decodeAuthReply(p.payload)
      switch (reply.kind) {
        case 'OK':
          this.log.debug('mysql target authentication ok', {plugin})
          return statusOf(p.payload) ?? STATUS.AUTOCOMMIT
        case 'ERR':
          throw new UpstreamRefused(reply.err)
        case 'AuthSwitch': {
          plugin = reply.plugin
          scramble = reply.data
          const t = initialAuthResponse(plugin, password, scramble)
          if (t) this.write(t, next)
          else if (plugin === CLEAR_PASSWORD || plugin === SHA256_PASSWORD) {
            if (this.tlsUsed) this.write(Buffer.from(password + '\0', 'utf8'), next)
            else if (plugin === SHA256_PASSWORD) this.write(Buffer.from([0x01]), next)
            else throw new HoopError('TARGET_REFUSED', 'the target asks for mysql_clear_password without TLS; refusing to send the password in clear')
          } else throw new HoopError('TARGET_REFUSED', `the target asks for the unsupported authentication plugin ${plugin}`)
          break
        }
        case 'MoreData': {
          const d = reply.data
          if (plugin === CACHING_SHA2 && d.length === 1 && d[0] === SHA2_FAST_AUTH_OK) break
          if (plugin === CACHING_SHA2 && d.length === 1 && d[0] === SHA2_FULL_AUTH) {
            if (this.tlsUsed) this.write(Buffer.from(password + '\0', 'utf8'), next)
            else this.write(Buffer.from([SHA2_REQUEST_PUBLIC_KEY]), next)
            break
          }
          if (plugin === CACHING_SHA2 || plugin === SHA256_PASSWORD) {
            // The server's RSA public key (PEM): encrypt the password for it.
            this.write(rsaEncryptPassword(password, scramble, d.toString('latin1')), next)
            break
          }
          throw new HoopError('PROTOCOL_ERROR', `the target sent unexpected authentication data for ${plugin}`)
        }
        case 'Unknown':
          throw new HoopError('PROTOCOL_ERROR', `the target sent an unexpected packet (0x${reply.header.toString(16)}) during authentication`)
      }
    }
    throw new HoopError('PROTOCOL_ERROR', 'the target did not finish authentication')
  }

  /** Wraps the link in TLS after an SSLRequest. `require` encrypts only; `verify-full` checks CA and host name. */
  private async startTls(target: MysqlTarget): Promise<void> {
    const left = this.reader.takeLeftover()
    if (left && left.length) throw new HoopError('PROTOCOL_ERROR', 'the target sent unencrypted data after an SSLRequest')
    this.reader.detach()
    const sock = await startUpstreamTls(this.stream, target.tls, target.host)
    this.tlsUsed = true
    this.stream = sock
    this.reader = this.listen(sock)
  }

  /**
   * Forwards a client command as the first packet of a new exchange (sequence id 0), and waits
   * until the link takes more: the session reads the client's next command only then, so commands
   * that get no answer (COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE) cannot pile up towards a slow target.
   */
  async forward(p: Packet): Promise<void> {
    const up = this.stream
    if (up.destroyed || up.writableEnded) throw new TargetClosed('a command')
    if (!up.write(p.raw && p.seq === 0 ? p.raw : encodePacket(p.payload, 0).bytes)) await waitDrain(up)
  }

  write(payload: Buffer, seq: number): void {
    this.stream.write(encodePacket(payload, seq).bytes)
  }

  /** The next packet from the target; its end (TargetClosed) or an oversized packet ends the session. */
  async read(phase: string): Promise<Packet> {
    const r = await this.readOrEnd()
    if (!r) throw new TargetClosed(phase)
    return r
  }

  /** The next packet, or undefined when the target closed the link. */
  async readOrEnd(): Promise<Packet | undefined> {
    const pending = this.inflight
    this.inflight = undefined
    this.spoke = false
    this.onSpoke = undefined
    const r = await (pending ?? this.reader.one())
    if ('end' in r) return undefined
    if ('error' in r) throw new HoopError('PROTOCOL_ERROR', `the target sent a packet of ${r.error.declared} bytes, limit ${r.error.limit}`)
    return r
  }

  /**
   * Calls `cb` once when the target sends something or closes, without consuming it (the next read
   * gets it); `undefined` cancels. The session watches while it waits for the client's next command:
   * a server that kills an idle connection (KILL, wait_timeout) closes it, sometimes after an
   * unsolicited ERR. One slot and one read however often it is called, so a client sending many
   * commands that get no answer (COM_STMT_CLOSE) piles nothing up.
   */
  watch(cb: (() => void) | undefined): void {
    this.onSpoke = cb
    if (!cb) return
    if (this.spoke) {
      this.onSpoke = undefined
      cb()
      return
    }
    if (this.inflight) return
    const p = this.reader.one()
    this.inflight = p
    void p.then(() => {
      if (this.inflight !== p) return
      this.spoke = true
      const f = this.onSpoke
      this.onSpoke = undefined
      f?.()
    })
  }

  /** True when a whole packet from the target is already buffered (lets the session batch writes). */
  get hasBuffered(): boolean {
    return this.reader.hasBuffered
  }

  /** Stops reading and ends the link; destroys it if the target has not closed within a second. */
  close(): void {
    this.reader.detach()
    const up = this.stream
    if (!up.destroyed) {
      if (!up.writableEnded) up.end()
      setTimeout(() => up.destroy(), 1000).unref()
    }
  }
}
