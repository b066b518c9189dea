// The MySQL / MariaDB engine at the gateway: the state machine of one client session over two
// Duplex streams, reading like the protocol:
//
//   openTarget (dial, read the server's greeting) -> handleStartup (our greeting, the client's
//   response; no password checked: identity is the hoop identity) -> connectUpstream (TLS and
//   credential injection) -> makeClientReady (OK) -> commandLoop: judge each statement, forward it
//   or refuse it, relay the response with rows masked.
//
// The classic protocol is strictly request/response, so the command loop handles one command at
// a time: read it, judge it, forward it, relay the whole response, then read the next. A client
// that pipelines simply waits in its socket buffer. Refused statements never reach the target:
// the client gets an ERR packet and the session stays usable. In the gate's hold mode (the
// default) no packet reaches the client before the audit records of the statements admitted so
// far are durable (`flush` awaits the gate's untilDurable); if one fails, the response is dropped
// and the session ends with an ERR saying AUDIT_UNAVAILABLE. Between commands the target is
// watched too: when it ends the connection, the client's ends with it.
//
// Beside it: upstream.ts (dial, TLS, login with stored credentials), masking.ts (row maskers),
// packets.ts (reader, output with sequence ids), recording.ts (recording lines), ../gate.ts (judge,
// admit, finish, refuse).
// Protocol: https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html
import {randomBytes} from 'node:crypto'
import type {Duplex} from 'node:stream'
import {NATIVE_PASSWORD} from '../../protocol/mysql/auth.js'
import {commandName, decodeCommand, LAST_STATEMENT_ID, type Command} from '../../protocol/mysql/commands.js'
import {
  CAP,
  ER_ACCESS_DENIED_ERROR,
  ER_HANDSHAKE_ERROR,
  ER_NET_PACKET_TOO_LARGE,
  ER_NET_READ_ERROR,
  ER_TABLEACCESS_DENIED_ERROR,
  ER_UNKNOWN_COM_ERROR,
  ER_UNKNOWN_ERROR,
  ER_UNKNOWN_STMT_HANDLER,
  GATEWAY_CAPS,
  GATEWAY_MARIADB_CAPS,
  MARIADB_CAP,
  STATUS,
} from '../../protocol/mysql/constants.js'
import {encodePacket, type FramerError, type Packet} from '../../protocol/mysql/framer.js'
import {
  decodeColumnCount,
  decodeColumnDefinition,
  decodeErr,
  decodeHandshakeResponse,
  decodePrepareOk,
  encodeErr,
  encodeHandshake,
  encodeOk,
  isErr,
  isProgressReport,
  isResultTerminator,
  LOCAL_INFILE_HEADER,
  OK_HEADER,
  statusOf,
  type ColumnDefinition,
  type ErrPacket,
  type HandshakeV10,
} from '../../protocol/mysql/messages.js'
import {errorMessage, HoopError} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {refuseStoredFromViews, refusalMessage, ResponseWithheld, type Outcome, type SessionResult, type StatementGate} from '../gate.js'
import {observeNoBackslashEscapes, type MysqlSession as SqlSession} from '../../sql/mysql-session.js'
import {MysqlCatalog} from './catalog.js'
import {guardErr, ResultMasking, textSensitive, type RowMaskFn, type Stmt} from './masking.js'
import {FatalToClient, packetReader, PacketOutput, type PacketReader} from './packets.js'
import {summarizeCommand, summarizeRefusal} from './recording.js'
import {dialTarget, TargetClosed, UpstreamRefused, type Capabilities, type ClientHello, type MysqlTarget, type Upstream} from './upstream.js'

export interface MysqlSessionOptions {
  client: Duplex
  openUpstream: () => Promise<Duplex>
  target: MysqlTarget
  gate: StatementGate
  logger: Logger
  /**
   * The analyser's view of this session (sql_mode lexing, user variables), shared with policy's
   * analysis; masking reads statements the same way, and the engine reports what the server says
   * of NO_BACKSLASH_ESCAPES.
   */
  sqlSession?: SqlSession
  limits?: {
    /** Largest client packet payload accepted (checked before buffering). Default 16 MiB. */
    maxPacketBytes?: number
  }
}

export type MysqlSessionResult = SessionResult

const DEFAULT_MAX_CLIENT_PACKET = 16 * 1024 * 1024
/** Handshake collation ids of big5, sjis, gbk and cp932 (information_schema.collations, id < 256). */
const UNSAFE_CLIENT_COLLATIONS: ReadonlySet<number> = new Set([1, 13, 28, 84, 87, 88, 95, 96])
/** Characters of a prepared statement's text kept while it is open. */
const MAX_RETAINED_TEXT = 4096
/** What the idle watch yields when the target spoke before the client's next command. */
const TARGET_SPOKE: unique symbol = Symbol('target spoke')
/** A relayed response is flushed to the client at least every this many bytes. */
const FLUSH_BYTES = 64 * 1024
/** utf8mb4_general_ci: our greeting's character set when the target's announces none. */
const DEFAULT_CHARSET = 45

export function runMysqlSession(opts: MysqlSessionOptions): Promise<MysqlSessionResult> {
  return new MysqlSession(opts).run()
}

interface Prepared {
  stmt: Stmt
  /** Masker of the open cursor (COM_STMT_EXECUTE with a cursor flag), for COM_STMT_FETCH. */
  cursor?: {columns: number; masker?: RowMaskFn}
}

class MysqlSession {
  private readonly log: Logger
  private readonly gate: StatementGate
  private readonly result: MysqlSessionResult
  private readonly clientReader: PacketReader
  private up: Upstream | undefined
  /** Capabilities in force on both links. */
  private caps: Capabilities = {flags: 0, mariadb: undefined}
  /** The output of the command being answered: a session failure continues its sequence ids. */
  private out: PacketOutput | undefined
  /** The client has its OK: the command phase has begun. */
  private ready = false
  private readonly prepared = new Map<number, Prepared>()
  /** Whether the server's text about the latest statement, and the one before it, may echo masked data. */
  private lastSensitive = false
  private previousSensitive = false
  private lastPrepared: number | undefined
  private readonly masking: ResultMasking
  /** A second connection for routine look-ups (CALL results), opened on first use. */
  private catalog: MysqlCatalog | undefined
  private closed = false
  /** Whether the client has our greeting (an ERR before it has no SQLSTATE). */
  private greeted = false

  constructor(private readonly o: MysqlSessionOptions) {
    this.log = o.logger
    this.gate = o.gate
    this.result = o.gate.result
    this.masking = new ResultMasking(o.sqlSession)
    this.clientReader = packetReader(o.client, o.limits?.maxPacketBytes ?? DEFAULT_MAX_CLIENT_PACKET)
  }

  /** The target link; set by openTarget before anything reads or writes it. */
  private get upstream(): Upstream {
    return this.up as Upstream
  }

  private get deprecateEof(): boolean {
    return (this.caps.flags & CAP.DEPRECATE_EOF) !== 0
  }

  /** MariaDB extended column metadata in force (column definitions carry an extra block). */
  private get extendedMetadata(): boolean {
    return ((this.caps.mariadb ?? 0) & MARIADB_CAP.EXTENDED_METADATA) !== 0
  }

  /** MariaDB progress reports in force (ERR packets with code 0xFFFF inside a response). */
  private get progressReports(): boolean {
    return ((this.caps.mariadb ?? 0) & MARIADB_CAP.PROGRESS) !== 0
  }

  async run(): Promise<MysqlSessionResult> {
    this.o.client.on('error', (e) => this.log.debug('mysql client stream error', {error: e.message}))
    try {
      const greeting = await this.openTarget()
      const hello = await this.handleStartup(greeting)
      if (!hello) return this.result
      const status = await this.connectUpstream(greeting, hello)
      await this.makeClientReady(status, hello.seq)
      await this.commandLoop()
    } catch (err) {
      await this.failSession(err)
    } finally {
      this.shutdown()
    }
    return this.result
  }

  // --- connection phase ------------------------------------------------------------------------

  /** Opens the target and reads its greeting: we mirror its version, capabilities and connection id. */
  private async openTarget(): Promise<HandshakeV10> {
    this.up = await dialTarget(this.o.openUpstream, this.log)
    return this.up.greeting()
  }

  /**
   * Sends our greeting and reads the client's HandshakeResponse41. No password is checked. A MariaDB
   * target's extended capabilities are offered as far as the gateway carries them (GATEWAY_MARIADB_CAPS);
   * the client's choice is what the target login asks for, so both links speak the same dialect.
   */
  private async handleStartup(g: HandshakeV10): Promise<ClientHello | undefined> {
    const mariadb = !(g.capabilities & CAP.LONG_PASSWORD)
    const advertised = (g.capabilities & GATEWAY_CAPS) | (mariadb ? 0 : CAP.LONG_PASSWORD) | CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH
    const advertisedMariadb = mariadb ? g.mariadbCapabilities & GATEWAY_MARIADB_CAPS : 0
    const greeting = encodeHandshake({
      serverVersion: g.serverVersion,
      connectionId: g.connectionId,
      authData: scramble20(),
      capabilities: advertised,
      mariadbCapabilities: advertisedMariadb,
      charset: g.charset || DEFAULT_CHARSET,
      status: g.status,
      authPlugin: NATIVE_PASSWORD,
    })
    const out = new PacketOutput(this.o.client)
    out.packet(greeting)
    this.greeted = true
    this.result.bytesDown += out.bytes
    await out.flush()
    const r = await this.clientReader.one()
    if ('end' in r) return undefined
    if ('error' in r) throw this.lengthError(r.error)
    this.result.bytesUp += r.payload.length + 4
    const hello = decodeHandshakeResponse(r.payload)
    const next = (r.lastSeq + 1) & 0xff
    if (hello.kind === 'SSLRequest') {
      throw new FatalToClient({code: ER_HANDSHAKE_ERROR, sqlState: '08S01', message: 'hoop: TLS between the client and hoop connect is not offered (the link already runs inside the authenticated hoop tunnel); connect with --ssl-mode=DISABLED'}, next)
    }
    if (hello.kind === 'Malformed') throw new FatalToClient({code: ER_HANDSHAKE_ERROR, sqlState: '08S01', message: `hoop: invalid handshake response: ${hello.reason}`}, next)
    if (UNSAFE_CLIENT_COLLATIONS.has(hello.charset)) {
      // In these character sets a multi-byte character can swallow the backslash of an escaped
      // quote, so the server would split a statement where the analyser does not: refused.
      throw new FatalToClient({code: ER_HANDSHAKE_ERROR, sqlState: '08S01', message: `hoop: the client character set (collation ${hello.charset}: big5, sjis, gbk or cp932) is not supported, because statements in it cannot be read safely; use utf8mb4`}, next)
    }
    // What both links use: what the client asked for, within what we advertised.
    this.caps = {
      flags: hello.capabilities & advertised,
      mariadb: mariadb && hello.mariadbCapabilities !== undefined ? hello.mariadbCapabilities & advertisedMariadb : undefined,
    }
    this.result.startupUser = hello.username
    return {...hello, seq: r.lastSeq}
  }

  /** TLS to the target if configured, then its login with the stored credentials. Returns the server status. */
  private async connectUpstream(g: HandshakeV10, hello: ClientHello): Promise<number> {
    const database = this.o.target.database ?? hello.database
    this.result.database = database
    const openCatalog = async () => {
      const up = await dialTarget(this.o.openUpstream, this.log)
      await up.login(await up.greeting(), hello, this.caps, database, this.o.target)
      return up
    }
    this.catalog = new MysqlCatalog(openCatalog, this.deprecateEof, this.log)
    return this.upstream.login(g, hello, this.caps, database, this.o.target)
  }

  /** OK to the client only now that the target accepted us. */
  private async makeClientReady(status: number, helloSeq: number): Promise<void> {
    const out = new PacketOutput(this.o.client)
    out.seq = (helloSeq + 1) & 0xff
    out.packet(encodeOk({status}))
    this.result.bytesDown += out.bytes
    await out.flush()
    this.ready = true
  }

  // --- command phase -----------------------------------------------------------------------------

  /**
   * One command at a time until the client quits or leaves: the protocol is request/response.
   * While it waits for the client, it watches the target too: a target that ends an idle
   * connection (KILL, wait_timeout) ends the client's at once, so pools evict it.
   */
  private async commandLoop(): Promise<void> {
    for (;;) {
      const r = await this.nextCommandOrTarget()
      if (r === TARGET_SPOKE) return this.onTargetWhileIdle()
      if ('end' in r) return
      if ('error' in r) throw this.lengthError(r.error)
      this.result.bytesUp += r.payload.length + 4
      const cmd = decodeCommand(r.payload)
      if (this.gate.recording) this.gate.record('client', summarizeCommand(cmd))
      const out = new PacketOutput(this.o.client)
      out.seq = (r.lastSeq + 1) & 0xff
      this.out = out
      const keepGoing = await this.onCommand(cmd, r, out)
      this.out = undefined
      if (!keepGoing) return
    }
  }

  /** The client's next command, or TARGET_SPOKE when the target sends something or closes first. */
  private nextCommandOrTarget(): Promise<Awaited<ReturnType<PacketReader['one']>> | typeof TARGET_SPOKE> {
    return new Promise((resolve, reject) => {
      this.upstream.watch(() => resolve(TARGET_SPOKE))
      this.clientReader.one().then((r) => {
        this.upstream.watch(undefined)
        resolve(r)
      }, reject)
    })
  }

  /**
   * The target spoke while no command was running: it closed the link, or sent an ERR first
   * (e.g. MySQL's ER_CLIENT_INTERACTION_TIMEOUT, MariaDB's ER_CONNECTION_KILLED) and then closes.
   * The ERR goes to the client as the server sent it; either way the session ends.
   */
  private async onTargetWhileIdle(): Promise<void> {
    const p = await this.upstream.readOrEnd()
    if (!p) {
      this.log.info('mysql target closed the connection while the client was idle')
      return
    }
    if (!isErr(p.payload)) throw new HoopError('PROTOCOL_ERROR', `the target sent an unexpected packet (0x${(p.payload[0] ?? 0).toString(16)}) while no command was running`)
    this.log.info('mysql target ended the connection while the client was idle', {error: errText(p.payload)})
    const out = new PacketOutput(this.o.client)
    out.seq = p.seq
    await this.emit(out, p)
    await this.flush(out)
  }

  /** Handles one command and its whole response; returns false when the session ends. */
  private async onCommand(cmd: Command, p: Packet, out: PacketOutput): Promise<boolean> {
    switch (cmd.kind) {
      case 'Query': {
        const stmt = await this.judgeStatement(cmd.sql)
        if (stmt.outputs && this.catalog) stmt.cleanCall = await this.masking.callReadsNoMask(cmd.sql, stmt, this.catalog)
        if (!(await this.admitOrRefuse(stmt, out))) return true
        const t = newOutcome()
        await this.upstream.forward(p)
        await this.relayResults(out, t, {stmt, binary: false})
        this.gate.finish(stmt, t)
        return true
      }
      case 'StmtPrepare': {
        const stmt = await this.judgeStatement(cmd.sql)
        if (!(await this.admitOrRefuse(stmt, out))) return true
        await this.upstream.forward(p)
        await this.relayPrepare(out, stmt)
        return true
      }
      case 'StmtExecute': {
        const id = cmd.statementId === LAST_STATEMENT_ID ? this.lastPrepared : cmd.statementId
        const ps = id === undefined ? undefined : this.prepared.get(id)
        if (!ps) return this.answerError(out, {code: ER_UNKNOWN_STMT_HANDLER, sqlState: 'HY000', message: `hoop: unknown prepared statement handler (${cmd.statementId}) given to COM_STMT_EXECUTE`})
        const t = newOutcome()
        await this.upstream.forward(p)
        ps.cursor = undefined
        await this.relayResults(out, t, {stmt: ps.stmt, binary: true, prepared: ps})
        this.gate.finish(ps.stmt, t)
        return true
      }
      case 'StmtFetch': {
        const ps = this.prepared.get(cmd.statementId)
        if (!ps) return this.answerError(out, {code: ER_UNKNOWN_STMT_HANDLER, sqlState: 'HY000', message: `hoop: unknown prepared statement handler (${cmd.statementId}) given to COM_STMT_FETCH`})
        const t = newOutcome()
        await this.upstream.forward(p)
        await this.relayRows(out, t, ps.cursor?.masker)
        this.gate.finish(ps.stmt, t)
        return true
      }
      case 'StmtClose':
        this.prepared.delete(cmd.statementId)
        await this.upstream.forward(p)
        return true
      case 'StmtSendLongData':
        if (this.prepared.has(cmd.statementId)) await this.upstream.forward(p)
        return true
      case 'StmtReset':
        if (!this.prepared.has(cmd.statementId)) return this.answerError(out, {code: ER_UNKNOWN_STMT_HANDLER, sqlState: 'HY000', message: `hoop: unknown prepared statement handler (${cmd.statementId}) given to COM_STMT_RESET`})
        await this.upstream.forward(p)
        await this.relayOne(out)
        return true
      case 'InitDb':
        return this.judgedSimple(`USE ${quoteIdent(cmd.database)}`, p, out)
      case 'FieldList':
        return this.judgedSimple(`SHOW COLUMNS FROM ${quoteIdent(cmd.table)}`, p, out, true)
      case 'ProcessKill':
        return this.judgedSimple(`KILL ${cmd.connectionId}`, p, out)
      case 'Ping':
      case 'Statistics':
      case 'SetOption':
        await this.upstream.forward(p)
        await this.relayOne(out)
        return true
      case 'ResetConnection':
        this.prepared.clear()
        this.lastPrepared = undefined
        await this.upstream.forward(p)
        await this.relayOne(out)
        return true
      case 'Quit':
        await this.upstream.forward(p)
        return false
      case 'ChangeUser':
        return this.answerError(out, {code: ER_UNKNOWN_COM_ERROR, sqlState: '08S01', message: 'hoop: COM_CHANGE_USER is not supported through the gateway (the target login is the connection\'s); open a new connection instead'})
      case 'Unknown':
        return this.answerError(out, {code: ER_UNKNOWN_COM_ERROR, sqlState: '08S01', message: `hoop: unsupported command ${commandName(cmd.command)}`})
      case 'Malformed':
        return this.answerError(out, {code: ER_UNKNOWN_COM_ERROR, sqlState: '08S01', message: `hoop: malformed ${cmd.command >= 0 ? commandName(cmd.command) : 'command'} packet: ${cmd.reason}`})
      default: {
        const never: never = cmd
        throw new Error(`unreachable ${String(never)}`)
      }
    }
  }

  /** Answers a command with an ERR instead of forwarding it; the session goes on. */
  private async answerError(out: PacketOutput, err: ErrPacket): Promise<boolean> {
    out.packet(encodeErr(err))
    await this.flush(out)
    return true
  }

  /** Commands that carry no SQL but act like a statement (COM_INIT_DB, COM_FIELD_LIST, COM_PROCESS_KILL). */
  private async judgedSimple(sql: string, p: Packet, out: PacketOutput, untilEof = false): Promise<boolean> {
    const stmt = await this.judgeStatement(sql)
    if (!(await this.admitOrRefuse(stmt, out))) return true
    const t = newOutcome()
    await this.upstream.forward(p)
    if (untilEof) await this.relayRows(out, t, undefined)
    else t.error = await this.relayOne(out)
    this.gate.finish(stmt, t)
    return true
  }

  /**
   * Judges a statement and, when a column is masked, analyses which outputs derive from one; a
   * statement that stores values read from a view column derived from a masked one is refused like
   * the built-in rule would (the gate's refuseStoredFromViews).
   */
  private async judgeStatement(sql: string): Promise<Stmt> {
    const judged: Stmt = await this.gate.judge(sql)
    const laundered = await refuseStoredFromViews(
      judged.verdict,
      async (rels, mask) => {
        // Set at login, before any statement; without it nothing can be checked (refused).
        if (!this.catalog) throw new Error('no catalog connection')
        return this.masking.maskedViewColumns(rels, mask, this.catalog)
      },
      this.log,
    )
    const stmt: Stmt = laundered ? {text: judged.text, verdict: laundered} : judged
    const v = stmt.verdict
    if (v.effect === 'allow' && v.mask.columns.length > 0 && this.catalog) Object.assign(stmt, await this.masking.taint(sql, v.mask, this.catalog))
    stmt.sensitive = textSensitive(stmt)
    return stmt
  }

  /** Writes the audit record of an allowed statement; otherwise answers the refusal (ERR) and returns false. */
  private async admitOrRefuse(stmt: Stmt, out: PacketOutput): Promise<boolean> {
    const refused = await this.gate.admit(stmt)
    if (!refused) return true
    const message = refusalMessage(refused)
    await this.answerError(out, {code: ER_TABLEACCESS_DENIED_ERROR, sqlState: '42000', message})
    this.gate.record('server', summarizeRefusal(message))
    this.gate.refuse(stmt, refused)
    return false
  }

  // --- responses -----------------------------------------------------------------------------------

  /** Queues one packet of a response; flushes every FLUSH_BYTES and whenever the target has nothing more buffered. */
  private async emit(out: PacketOutput, p: Packet, payload = p.payload): Promise<void> {
    out.packet(payload, payload === p.payload ? p.raw : undefined)
    if (out.pending >= FLUSH_BYTES || !this.upstream.hasBuffered) await this.flush(out)
  }

  /** The server says whether NO_BACKSLASH_ESCAPES is on: statements are lexed accordingly from now on. */
  private observeStatus(status: number | undefined): void {
    if (status !== undefined && this.o.sqlSession) observeNoBackslashEscapes(this.o.sqlSession, (status & STATUS.NO_BACKSLASH_ESCAPES) !== 0)
  }

  /** An ERR from the server about `stmt`: its message passes the text guard (masking.ts guardErr). */
  private async emitErr(out: PacketOutput, p: Packet, stmt: Stmt | undefined, t: Outcome): Promise<void> {
    await this.emit(out, p, guardErr(p.payload, stmt, t.masked))
  }

  /**
   * Sends what is queued; it counts towards the session's bytes down. Hold mode: not before the
   * records of the statements admitted so far are durable (throws ResponseWithheld if one failed).
   */
  private async flush(out: PacketOutput): Promise<void> {
    const records = this.gate.untilDurable()
    if (records) await records
    this.result.bytesDown += out.pending
    await out.flush()
  }

  /**
   * The next packet of a response. MariaDB progress reports (only sent when the client asked for
   * them) go to the client as they come; they carry no data, only a stage name and a percentage.
   */
  private async readResponse(out: PacketOutput, phase: string): Promise<Packet> {
    for (;;) {
      const p = await this.upstream.read(phase)
      if (!this.progressReports || !isProgressReport(p.payload)) return p
      await this.emit(out, p)
      await this.flush(out)
    }
  }

  /** Relays a one-packet answer (OK / ERR / EOF / a string); returns the error text if it was an ERR. */
  private async relayOne(out: PacketOutput): Promise<string | undefined> {
    const p = await this.readResponse(out, 'a command')
    await this.emit(out, p)
    await this.flush(out)
    return isErr(p.payload) ? errText(p.payload) : undefined
  }

  /** COM_STMT_PREPARE: PREPARE_OK, parameter and column definitions; remembers the statement. */
  private async relayPrepare(out: PacketOutput, stmt: Stmt): Promise<void> {
    const first = await this.readResponse(out, 'COM_STMT_PREPARE')
    await this.emit(out, first)
    const ok = first.payload[0] === OK_HEADER ? decodePrepareOk(first.payload) : undefined
    if (!ok) {
      await this.flush(out)
      this.gate.finish(stmt, {...newOutcome(), error: isErr(first.payload) ? errText(first.payload) : 'invalid COM_STMT_PREPARE response'})
      return
    }
    for (const n of [ok.params, ok.columns]) {
      for (let i = 0; i < n; i++) await this.emit(out, await this.upstream.read('COM_STMT_PREPARE'))
      if (n > 0 && !this.deprecateEof) await this.emit(out, await this.upstream.read('COM_STMT_PREPARE'))
    }
    await this.flush(out)
    // Its executes run under this verdict; the text only labels their results, so a client holding
    // thousands of prepared statements costs a few KiB each, whatever their length.
    this.prepared.set(ok.statementId, {stmt: stmt.text.length > MAX_RETAINED_TEXT ? {...stmt, text: stmt.text.slice(0, MAX_RETAINED_TEXT)} : stmt})
    this.lastPrepared = ok.statementId
  }

  /** COM_QUERY / COM_STMT_EXECUTE: one or more results (OK, ERR or a result set), masked. */
  private async relayResults(out: PacketOutput, t: Outcome, ctx: {stmt: Stmt; binary: boolean; prepared?: Prepared}): Promise<void> {
    // SHOW WARNINGS reports on the statement before it: whether that one's text was sensitive.
    this.previousSensitive = this.lastSensitive
    this.lastSensitive = ctx.stmt.sensitive ?? false
    let index = 0
    for (;;) {
      const first = await this.readResponse(out, 'a result')
      const h = first.payload[0]
      if (isErr(first.payload)) {
        t.error ??= errText(first.payload)
        await this.emitErr(out, first, ctx.stmt, t)
        break
      }
      if (h === OK_HEADER) {
        await this.emit(out, first)
        this.observeStatus(statusOf(first.payload))
        if ((statusOf(first.payload) ?? 0) & STATUS.MORE_RESULTS_EXISTS) {
          index++
          continue
        }
        break
      }
      if (h === LOCAL_INFILE_HEADER && !ctx.binary) {
        // We never offer CLIENT_LOCAL_FILES; a server asking anyway gets "no file" (an empty packet).
        this.upstream.write(Buffer.alloc(0), (first.lastSeq + 1) & 0xff)
        continue
      }
      const n = decodeColumnCount(first.payload)
      if (n === undefined) throw new HoopError('PROTOCOL_ERROR', `the target sent an unexpected packet (0x${(h ?? 0).toString(16)}) for a result`)
      await this.emit(out, first)
      const defs: ColumnDefinition[] = []
      for (let i = 0; i < n; i++) {
        const p = await this.upstream.read('column definitions')
        const d = decodeColumnDefinition(p.payload, this.extendedMetadata)
        if (!d) throw new HoopError('PROTOCOL_ERROR', 'the target sent a malformed column definition')
        defs.push(d)
        await this.emit(out, p)
      }
      if (this.catalog) await this.masking.resolveOrigins(defs, ctx.stmt, ctx.binary, this.catalog)
      const masker = this.masking.rowMasker(defs, ctx.stmt, index, ctx.binary, t.masked, this.previousSensitive)
      if (!this.deprecateEof) {
        const eof = await this.upstream.read('column definitions')
        await this.emit(out, eof)
        if (ctx.binary && ((statusOf(eof.payload) ?? 0) & STATUS.CURSOR_EXISTS)) {
          if (ctx.prepared) ctx.prepared.cursor = {columns: n, masker}
          break
        }
      }
      const status = await this.relayRows(out, t, masker, ctx.stmt)
      if (ctx.binary && status !== undefined && status & STATUS.CURSOR_EXISTS && ctx.prepared) ctx.prepared.cursor = {columns: n, masker}
      if (status !== undefined && status & STATUS.MORE_RESULTS_EXISTS) {
        index++
        continue
      }
      break
    }
    await this.flush(out)
  }

  /** Rows until the terminator (EOF / OK) or an ERR; returns the terminator's status flags. */
  private async relayRows(out: PacketOutput, t: Outcome, masker: RowMaskFn | undefined, stmt?: Stmt): Promise<number | undefined> {
    for (;;) {
      const p = await this.readResponse(out, 'rows')
      if (isErr(p.payload)) {
        t.error ??= errText(p.payload)
        await this.emitErr(out, p, stmt, t)
        await this.flush(out)
        return undefined
      }
      if (isResultTerminator(p.payload, this.deprecateEof)) {
        await this.emit(out, p)
        await this.flush(out)
        this.observeStatus(statusOf(p.payload))
        return statusOf(p.payload) ?? 0
      }
      const payload = masker ? masker(p.payload) : p.payload
      t.rows++
      t.bytes += payload.length
      await this.emit(out, p, payload)
    }
  }

  // --- errors and shutdown ----------------------------------------------------------------------

  /** A client packet declared larger than the limit: refused from its header, before buffering. */
  private lengthError(e: FramerError): FatalToClient {
    // Numbered after the packet that declared too much, as the server does (a statement of 16 MiB
    // or more is refused at its second physical packet).
    return new FatalToClient({code: ER_NET_PACKET_TOO_LARGE, sqlState: '08S01', message: `hoop: packet of ${e.declared} bytes exceeds the limit of ${e.limit}`}, (e.seq + 1) & 0xff)
  }

  /**
   * Only deliberate errors reach the client as such; anything else is logged and answered
   * generically. In the command phase the ERR continues the current response's sequence ids, and a
   * target that closed the link closes the client's the same way, without an ERR of ours.
   */
  private async failSession(err: unknown): Promise<void> {
    let e: ErrPacket
    let seq = 0
    const out = this.out
    if (out && !this.o.client.destroyed && !(err instanceof ResponseWithheld)) {
      await this.flush(out).catch((withheld: unknown) => {
        if (!(withheld instanceof ResponseWithheld)) throw withheld
        err = withheld
      })
    }
    // A withheld response is dropped: the ERR takes the sequence id of its first packet.
    if (out && err instanceof ResponseWithheld) out.discard()
    if (err instanceof TargetClosed && this.ready) {
      this.log.info('mysql target closed the connection during a command', {error: err.message})
      return
    }
    if (err instanceof FatalToClient) {
      this.log.info('mysql session refused', {reason: err.message})
      e = err.err
      seq = err.seq
    } else if (err instanceof ResponseWithheld) {
      e = {code: ER_TABLEACCESS_DENIED_ERROR, sqlState: '42000', message: err.message}
    } else if (err instanceof UpstreamRefused) {
      this.log.info('mysql target refused the login', {code: err.err.code})
      e = {code: err.err.code || ER_ACCESS_DENIED_ERROR, sqlState: err.err.sqlState, message: `hoop: the target refused the login: ${err.err.message}`}
      seq = 2
    } else if (err instanceof HoopError) {
      this.log.warn('mysql session failed', {code: err.code, error: err.message})
      e = {code: ER_NET_READ_ERROR, sqlState: '08S01', message: `hoop: ${err.message}`}
    } else {
      this.log.error('mysql session failed', {error: errorMessage(err)})
      e = {code: ER_UNKNOWN_ERROR, sqlState: 'HY000', message: 'hoop: internal error in the gateway'}
    }
    if (out) seq = out.seq
    const c = this.o.client
    if (c.destroyed || c.writableEnded) return
    await new Promise<void>((resolve) => c.end(encodePacket(encodeErr(e, this.greeted), seq).bytes, () => resolve()))
  }

  /** Ends both links once; a peer that has not closed within a second is destroyed. */
  private shutdown(): void {
    if (this.closed) return
    this.closed = true
    this.clientReader.detach()
    this.up?.close()
    this.catalog?.close()
    const c = this.o.client
    if (!c.writableEnded) c.end()
    setTimeout(() => c.destroy(), 1000).unref()
  }
}

function newOutcome(): Outcome {
  return {rows: 0, bytes: 0, masked: {}}
}

function errText(p: Buffer): string {
  const e = decodeErr(p)
  return `${e.code} ${e.sqlState} ${e.message}`
}

function scramble20(): Buffer {
  // Printable, non-NUL bytes as real servers send.
  const b = randomBytes(20)
  for (let i = 0; i < b.length; i++) b[i] = 0x21 + (b[i] % 94)
  return b
}

function quoteIdent(s: string): string {
  return '`' + s.replace(/`/g, '``') + '`'
}
