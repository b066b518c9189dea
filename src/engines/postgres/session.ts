// The PostgreSQL engine at the gateway: drives one client session over two Duplex streams.
//
//   handleStartup -> connectUpstream (TLS + credential injection) -> makeClientReady
//     -> pumpClient (inspect, judge, forward or refuse) || pumpServer (correlate, mask, forward)
//
// Refusals go *through* the server: a refused statement is replaced by a text that fails to parse
// ("hoop_refused_statement"), and the server's error for it is rewritten into ours. The server
// thus puts its own transaction into exactly the state an error gives (failed inside BEGIN,
// rolled back implicit transaction in a pipeline), answers ReadyForQuery with the true status,
// and keeps the order of responses under pipelining. The target never sees the refused text.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html
//
// In the gate's hold mode (the default), nothing the server sends reaches the client before the
// audit records of the statements admitted so far are durable (pumpServer awaits the gate's
// untilDurable before each write); if one fails, the session ends with a FATAL AUDIT_UNAVAILABLE.
//
// One hop from here to each part of a statement's way: judge, admit (the audit record placed
// before forwarding), finish and refuse are the statement gate's (../gate.ts); mask planning is
// masking.ts; which response answers which statement is queue.ts; the target connection and
// credential injection are upstream.ts; column origins catalog.ts; cancel keys cancel.ts; the
// session recording's lines recording.ts.
import type {Duplex} from 'node:stream'
import type {CopyMasker, RowMasker} from '../../masking/result.js'
import {planIsEmpty, type MaskPlan} from '../../masking/types.js'
import {Framer, type Frame, type FramerError} from '../../protocol/pg/framer.js'
import {
  asFrame,
  B,
  F,
  decodeClientMessage,
  decodeCommandTag,
  decodeErrorFields,
  decodeRowDescription,
  decodeStartup,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeBind,
  encodeDescribe,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
  encodeParse,
  encodeQuery,
  encodeReadyForQuery,
  encodeTerminate,
  type ClientMessage,
} from '../../protocol/pg/messages.js'
import {encodeHoopFatal} from '../../protocol/pg/refusal.js'
import {HoopError, errorMessage} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {judgeStartupParameters} from '../../sql/pg-analyze.js'
import type {PgParses} from '../../sql/pg-parser.js'
import {refuseStoredFromViews, refusalMessage, ResponseWithheld, UNKNOWN_STATEMENT_RULE, type Refusal, type SessionResult, type StatementGate} from '../gate.js'
import {isPulledEnd, isPulledError, OutputBatch as Out, PullReader} from '../io.js'
import {forwardCancel, registerCancelKey, releaseCancelKey, type BackendKey} from './cancel.js'
import {Catalog, openCatalog} from './catalog.js'
import {guardFields, textGuardFor, type TextPolicy} from './channels.js'
import {MaskPlanner, planOf} from './masking.js'
import {ResponseQueue, type Pending, type Stmt} from './queue.js'
import {RECORDED_ROWS_PER_RESULT, summarizeClient, summarizeError, summarizeRow, summarizeRowDescription, summarizeServer} from './recording.js'
import {openAuthenticated, UpstreamRefused, type AuthenticatedConn, type FrameReader, type PgTarget} from './upstream.js'

export interface PgSessionOptions {
  client: Duplex
  openUpstream: () => Promise<Duplex>
  target: PgTarget
  gate: StatementGate
  logger: Logger
  /**
   * Told when a named protocol-level prepared statement is made (an allowed Parse) or closed, so
   * that the analyser's per-session state knows what SQL `EXECUTE name` would run.
   */
  prepared?: {parsed(name: string, sql: string): void; closed(name: string): void}
  /** The session's parses, shared with policy's analysis so that masking does not parse again. */
  parses?: PgParses
  limits?: {
    /** Largest client message held whole (Query, Parse, Bind...); default 256 MiB. */
    maxMessageBytes?: number
    /** Largest CopyData from the client; it is streamed through in pieces, never held whole. Default and most: 1 GiB - 2 (PostgreSQL's). */
    maxCopyDataBytes?: number
  }
}

export type PgSessionResult = SessionResult

/** Client messages held whole are bounded by this by default (one copy in memory per message). */
export const DEFAULT_MAX_CLIENT_MESSAGE = 256 * 1024 * 1024
/** PostgreSQL's own bound on a CopyData message (PQ_LARGE_MESSAGE_LIMIT, MaxAllocSize - 1, with the length word). */
const MAX_COPY_DATA = 0x3fffffff - 1
/** A client CopyData longer than this that has not arrived whole is forwarded as it arrives. */
const STREAM_COPY_DATA_ABOVE = 64 * 1024
/** Sent to the server in place of a refused statement: fails in the parser, does nothing. */
export const REFUSED_STATEMENT_TEXT = 'hoop_refused_statement'
/** Bound in place of a refused Bind's statement: no such prepared statement, so the server fails it. */
const REFUSED_STATEMENT_NAME = 'hoop_refused_statement'

/** How long the server may take to answer what preceded the client's Terminate and close. */
const TERMINATE_GRACE_MS = 5_000

/** `p`, or nothing once `ms` have passed. */
function withDeadline(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer))
}

/** A client-visible error that ends the session (FATAL). */
class FatalToClient extends Error {
  constructor(
    readonly frame: Buffer,
    message: string,
  ) {
    super(message)
  }
}

export function runPgSession(opts: PgSessionOptions): Promise<PgSessionResult> {
  return new PgSession(opts).run()
}

class PgSession {
  private readonly log: Logger
  private readonly gate: StatementGate
  private readonly result: PgSessionResult
  private readonly clientReader: FrameReader
  private upstream: Duplex | undefined
  private upstreamReader: FrameReader | undefined
  private upstreamParams: Record<string, string> = {}
  private readonly catalog: Catalog
  private readonly queue: ResponseQueue
  private readonly masks: MaskPlanner
  /** The BackendKeyData the client got: the real pid, our own secret key (cancel.ts). */
  private cancelKey: BackendKey | undefined
  /** The mask plan of the latest allowed statement: what applies to messages no statement owns (notifications). */
  private lastPlan: MaskPlan = {columns: [], entities: [], ruleIds: []}
  private closed = false
  /** Rows of the current result already given to the recording hook. */
  private recordedRows = 0
  /** The client said goodbye: an upstream end after this is expected, not a failure. */
  private clientTerminated = false
  /** The client got ReadyForQuery: the session is established. */
  private ready = false
  /** The server sent its own FATAL (or PANIC): its close is the end it announced, and the client has the reason. */
  private serverEnded = false

  // server -> client result state
  private rowMasker: RowMasker | undefined
  private rowMaskerFor: Pending | undefined
  private copyMasker: CopyMasker | undefined

  constructor(private readonly o: PgSessionOptions) {
    this.log = o.logger
    this.gate = o.gate
    this.result = o.gate.result
    const copyMax = Math.min(o.limits?.maxCopyDataBytes ?? MAX_COPY_DATA, MAX_COPY_DATA)
    this.clientReader = new PullReader<Frame, FramerError, Framer>(
      o.client,
      new Framer('startup', o.limits?.maxMessageBytes ?? DEFAULT_MAX_CLIENT_MESSAGE, {stream: {types: [F.CopyData], above: STREAM_COPY_DATA_ABOVE, max: copyMax}}),
    )
    this.catalog = new Catalog(() => openCatalog(this.o, this.upstreamParams, this.log), this.log)
    this.queue = new ResponseQueue(o.gate)
    this.masks = new MaskPlanner(this.catalog, (cursor) => this.queue.cursorOutputs(cursor), o.parses)
  }

  async run(): Promise<PgSessionResult> {
    // A stream error after close must not become an uncaught exception.
    this.o.client.on('error', (e) => this.log.debug('pg client stream error', {error: e.message}))
    try {
      const startup = await this.handleStartup()
      if (!startup) return this.result
      const conn = await this.connectUpstream(startup)
      await this.makeClientReady(conn)
      this.ready = true
      const server = this.pumpServer()
      // After the client's Terminate the server still answers what came before it (a client may
      // send its last Query and Terminate together), then closes: wait for that, boundedly.
      const client = this.pumpClient().then(() => (this.clientTerminated ? withDeadline(server, TERMINATE_GRACE_MS) : undefined))
      const pumps = [client, server]
      // The losing pump ends when shutdown closes its stream; its outcome no longer matters.
      for (const p of pumps) p.catch(() => {})
      await Promise.race(pumps)
    } catch (err) {
      await this.failSession(err)
    } finally {
      this.shutdown()
    }
    return this.result
  }

  // --- startup ---------------------------------------------------------------------------------

  /** Answers SSL/GSS requests with 'N' (the client link is already inside our tunnel), reads StartupMessage. */
  private async handleStartup(): Promise<{params: Record<string, string>; version: number} | undefined> {
    for (;;) {
      const f = await this.clientReader.one()
      if (isPulledEnd(f)) return undefined
      if (isPulledError(f)) throw this.lengthError(f.error)
      this.result.bytesUp += f.bytes.length
      const p = decodeStartup(f)
      switch (p.kind) {
        case 'SSLRequest':
        case 'GSSENCRequest':
          this.o.client.write(Buffer.from('N'))
          continue
        case 'CancelRequest':
          await forwardCancel({pid: p.pid, key: p.key}, this.log)
          return undefined
        case 'Startup':
          // The framer frames what follows as regular messages by itself, even within this chunk.
          return {params: p.params, version: p.version}
        case 'Malformed':
          throw new FatalToClient(encodeErrorResponse({severity: 'FATAL', code: '08P01', message: `hoop: invalid startup packet: ${p.reason}`}), p.reason)
        default: {
          const never: never = p
          throw new Error(`unreachable ${String(never)}`)
        }
      }
    }
  }

  /** Opens the target stream, negotiates TLS, authenticates with the stored secret (upstream.ts). */
  private async connectUpstream(startup: {params: Record<string, string>; version: number}): Promise<AuthenticatedConn> {
    const {params} = startup
    const user = this.o.target.username ?? params.user
    if (!user) throw new FatalToClient(encodeErrorResponse({severity: 'FATAL', code: '28000', message: 'hoop: no user name in the startup packet'}), 'no user')
    const database = this.o.target.database ?? params.database ?? user
    this.result.startupUser = params.user
    this.result.database = database
    const forwarded: Record<string, string> = {}
    for (const [k, v] of Object.entries(params)) {
      // replication connections would bypass statement policy; protocol extensions are ours to negotiate.
      if (k === 'user' || k === 'database' || k === 'replication' || k.startsWith('_pq_.')) continue
      forwarded[k] = v
    }
    this.upstreamParams = {user, database, ...forwarded}
    await this.judgeStartupSettings(params)
    const unsupported = Object.keys(params).filter((k) => k.startsWith('_pq_.'))
    if ((startup.version & 0xffff) !== 0 || unsupported.length) this.o.client.write(encodeNegotiateProtocolVersion(0, unsupported))
    const conn = await openAuthenticated(this.o, this.upstreamParams, this.log)
    this.upstream = conn.stream
    this.upstreamReader = conn.reader
    // A COPY TO's rows come as runs of CopyData, handled (counted, masked, forwarded) run by run.
    conn.reader.framer.coalesce(B.CopyData)
    this.upstream.on('error', (e) => this.log.debug('pg upstream stream error', {error: e.message}))
    if (conn.backendKey) this.cancelKey = registerCancelKey(conn.backendKey, this.o)
    return conn
  }

  /**
   * Settings in the StartupMessage (bare parameters and `options=-c ...`) take effect before any
   * statement, so they are judged like the SET statements they equal: harmless display settings
   * pass, a switch hoop cannot judge or a replication connection is refused, and the rest goes
   * through the gate (and the audit) as one statement. Protocol extensions (`_pq_.`) are
   * negotiated away instead.
   */
  private async judgeStartupSettings(params: Record<string, string>): Promise<void> {
    const j = judgeStartupParameters(Object.entries(params).filter(([k]) => !k.startsWith('_pq_.')))
    const fatal = (message: string) => new FatalToClient(encodeErrorResponse({severity: 'FATAL', code: '42501', message}), message)
    if (j.refuse) throw fatal(`hoop: ${j.refuse}`)
    if (!j.sql) return
    const stmt = await this.judgeStatement(j.sql)
    const refused = await this.gate.admit(stmt)
    if (!refused) return
    this.gate.refuse(stmt, refused)
    throw fatal(`${refusalMessage(refused)} (a setting in the startup packet: ${j.judged.map((x) => x.name).join(', ')})`)
  }

  /** AuthenticationOk only now that the target accepted us; then the server's parameters. */
  private async makeClientReady(conn: AuthenticatedConn): Promise<void> {
    const out = new Out()
    out.push(encodeAuthenticationOk())
    for (const f of conn.startupFrames) {
      this.masks.serverMessage(f)
      out.push(f.bytes)
    }
    if (this.cancelKey) out.push(encodeBackendKeyData(this.cancelKey.pid, this.cancelKey.key))
    out.push(encodeReadyForQuery(conn.status))
    // A setting in the startup packet was admitted as a statement: its record comes first.
    const startupRecord = this.gate.untilDurable()
    if (startupRecord) await startupRecord
    this.result.bytesDown += out.bytes
    await out.flush(this.o.client)
  }

  // --- client -> server --------------------------------------------------------------------------

  /** Reads the client's messages in batches, judges each statement, forwards one write per batch. */
  private async pumpClient(): Promise<void> {
    const up = this.upstream as Duplex
    for (;;) {
      const r = await this.clientReader.next()
      if ('end' in r) return
      if ('error' in r) throw this.lengthError(r.error)
      const out = new Out()
      for (const f of r.items) {
        this.result.bytesUp += f.bytes.length
        if (f.piece === 'middle' || f.piece === 'last') {
          // The rest of a large CopyData, passed on as it arrives (its first piece was handled).
          out.push(f.bytes)
          continue
        }
        const m = decodeClientMessage(f)
        if (this.gate.recording) this.gate.record('client', summarizeClient(m))
        const keepGoing = await this.onClientMessage(m, f, out)
        if (!keepGoing) {
          await out.flush(up)
          up.end()
          return
        }
      }
      await out.flush(up)
    }
  }

  /** Handles one client message; returns false when the session ends. */
  private async onClientMessage(m: ClientMessage, f: Frame, out: Out): Promise<boolean> {
    // After a refused Parse, like the server after an error: ignore everything up to the next Sync.
    if (this.queue.skips(m)) return true
    switch (m.kind) {
      case 'Query': {
        const stmt = await this.judgeStatement(m.sql)
        const refused = await this.gate.admit(stmt)
        if (!refused) this.masks.admitted(stmt)
        this.queue.query(stmt, refused)
        out.push(refused ? encodeQuery(REFUSED_STATEMENT_TEXT) : f.bytes)
        return true
      }
      case 'Parse': {
        const stmt = await this.judgeStatement(m.sql)
        const refused = await this.gate.admit(stmt)
        if (!refused) this.masks.admitted(stmt)
        this.queue.parse(m.name, stmt, refused)
        if (!refused && m.name !== '') this.o.prepared?.parsed(m.name, m.sql)
        out.push(refused ? encodeParse(m.name, REFUSED_STATEMENT_TEXT) : f.bytes)
        return true
      }
      case 'Bind': {
        if (!this.queue.knows(m.statement) && !planIsEmpty(this.lastPlan)) {
          // Prepared with SQL PREPARE (or never): no plan to judge or mask it by, so refused (fail closed).
          const refused: Refusal = {
            effect: 'block',
            ruleId: UNKNOWN_STATEMENT_RULE,
            message: `statement "${m.statement.slice(0, 64)}" was not prepared with a protocol Parse in this session, so hoop cannot judge or mask it; run it with EXECUTE, or Parse it first`,
          }
          this.queue.refuseBind({text: `<bind of statement ${JSON.stringify(m.statement.slice(0, 64))}>`, verdict: refused}, refused)
          out.push(encodeBind(m.portal, REFUSED_STATEMENT_NAME))
          return true
        }
        this.queue.bind(m.portal, m.statement, m.resultFormats)
        out.push(f.bytes)
        return true
      }
      case 'Describe':
        this.queue.describe(m.target, m.name)
        out.push(f.bytes)
        return true
      case 'Execute': {
        const portal = this.queue.portal(m.portal)
        if (!portal.described && !planIsEmpty(planOf(portal.stmt?.verdict))) {
          // We must know the columns (origin, type, format) to mask: ask the server ourselves.
          this.queue.describeInternally(portal)
          out.push(encodeDescribe('P', m.portal))
        }
        this.queue.execute(portal)
        out.push(f.bytes)
        return true
      }
      case 'Close':
        this.queue.close(m.target, m.name)
        if (m.target === 'S' && m.name !== '') this.o.prepared?.closed(m.name)
        out.push(f.bytes)
        return true
      case 'Sync':
        this.queue.sync()
        out.push(f.bytes)
        return true
      case 'Flush':
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        out.push(f.bytes)
        return true
      case 'FunctionCall': {
        // The fast-path function call carries no SQL: judge it as an opaque statement.
        const stmt = await this.judgeStatement('<function call>')
        const refused = await this.gate.admit(stmt)
        if (!refused) this.masks.admitted(stmt)
        this.queue.functionCall(stmt, refused)
        out.push(refused ? encodeQuery(REFUSED_STATEMENT_TEXT) : f.bytes)
        return true
      }
      case 'Terminate':
        this.clientTerminated = true
        out.push(f.bytes)
        return false
      case 'Unknown':
        throw new FatalToClient(
          encodeErrorResponse({severity: 'FATAL', code: '08P01', message: `hoop: unsupported frontend message type ${JSON.stringify(String.fromCharCode(m.type))}`}),
          'unknown message type',
        )
      case 'Malformed':
        throw new FatalToClient(
          encodeErrorResponse({severity: 'FATAL', code: '08P01', message: `hoop: malformed ${JSON.stringify(String.fromCharCode(m.type))} message: ${m.reason}`}),
          m.reason,
        )
      default: {
        const never: never = m
        throw new Error(`unreachable ${String(never)}`)
      }
    }
  }

  /**
   * Judges a statement (the gate) and, when a column is masked, analyses which outputs derive from
   * one; a statement that stores values read from a view column derived from a masked one is
   * refused like the built-in rule would (the gate's refuseStoredFromViews).
   */
  private async judgeStatement(sql: string): Promise<Stmt> {
    const stmt: Stmt = await this.gate.judge(sql)
    const v = stmt.verdict
    const laundered = await refuseStoredFromViews(v, (rels, mask) => this.masks.maskedViewColumns(rels, mask), this.log)
    if (laundered) return {text: stmt.text, verdict: laundered}
    if (v.effect === 'allow') this.lastPlan = v.mask
    if (v.effect === 'allow' && v.mask.columns.length > 0) stmt.analysis = await this.masks.analyze(sql, v.mask)
    return stmt
  }

  // --- server -> client --------------------------------------------------------------------------

  /** Reads the server's messages in batches, correlates and masks each, forwards one write per batch. */
  private async pumpServer(): Promise<void> {
    const reader = this.upstreamReader as FrameReader
    const client = this.o.client
    for (;;) {
      const r = await reader.next()
      if ('end' in r) {
        if (this.clientTerminated || this.closed || this.serverEnded) return
        // The target side went away under a live session, unannounced: tell the client why, in the protocol.
        const cause = reader.streamError
        throw new HoopError('TARGET_REFUSED', cause instanceof HoopError ? cause.message : `the target closed the connection${cause ? ` (${cause.message})` : ''}`)
      }
      if ('error' in r) throw new HoopError('PROTOCOL_ERROR', `target sent a message of length ${r.error.declared}, limit ${r.error.limit}`)
      const out = new Out()
      for (const f of r.items) {
        const p = this.onServerMessage(f, out)
        if (p) await p
      }
      // Hold mode: these answer statements admitted by now; their records must be durable first.
      const records = this.gate.untilDurable()
      if (records) await records
      this.result.bytesDown += out.bytes
      await out.flush(client)
    }
  }

  /** Forwards, rewrites or swallows one server message. Returns a promise only when it must wait (catalog). */
  private onServerMessage(f: Frame, out: Out): Promise<void> | void {
    const h = this.queue.head
    if (h?.kind === 'execute' && this.rowMaskerFor !== h && f.type === B.DataRow) {
      // Extended protocol: build the masker when an Execute's first row arrives.
      return this.prepareExecuteMasker(h).then(() => this.onServerMessage(f, out))
    }
    this.masks.serverMessage(f)
    const guard = f.type === B.ErrorResponse ? undefined : textGuardFor(f.type)
    if (guard) f = asFrame(guard(f, this.textPolicy(h)))
    switch (f.type) {
      case B.DataRow: {
        const m = this.rowMasker
        const bytes = m ? m.maskDataRow(f.bytes) : f.bytes
        this.queue.countRow(bytes.length)
        out.push(bytes)
        // The recording keeps the first rows of each result as the client saw them (masked).
        if (this.gate.recording && this.recordedRows++ < RECORDED_ROWS_PER_RESULT) this.gate.record('server', summarizeRow(bytes))
        return
      }
      case B.RowDescription:
        return this.onRowDescription(f, out, h)
      case B.CopyOutResponse:
        return this.onCopyOut(f, out, h)
      case B.CopyData: {
        // A run of CopyData messages (one per row of a COPY TO; framer.ts `coalesce`).
        const cm = this.copyMasker
        if (cm?.active) return this.maskCopyData(f, cm, out)
        const n = f.count ?? 1
        this.queue.countCopyData(f.bytes.length, n)
        out.push(f.bytes)
        if (this.gate.recording) {
          const line = summarizeServer(f)
          for (let i = 0; i < n; i++) this.gate.record('server', line)
        }
        return
      }
      case B.ErrorResponse:
        return this.onError(f, out, h)
      case B.CommandComplete:
      case B.EmptyQueryResponse:
      case B.PortalSuspended:
        if (f.type === B.CommandComplete) this.queue.commandTag(decodeCommandTag(f))
        // One result ends: the next gets its own masker and its own recorded rows.
        this.recordedRows = 0
        this.rowMasker = undefined
        this.copyMasker = undefined
        break
      case B.ReadyForQuery:
        this.rowMasker = undefined
        this.copyMasker = undefined
        break
      default:
        break
    }
    // The queue pops what this answers, finishing or refusing statements at the gate.
    if (!this.queue.answer(f.type)) return
    out.push(f.bytes)
    if (this.gate.recording) this.gate.record('server', summarizeServer(f))
  }

  /**
   * Masks each CopyData message of a run on its own (a row per message), as the client gets it.
   * A run with a masked row is rebuilt into one buffer (one output part per run, not per row).
   */
  private maskCopyData(f: Frame, cm: CopyMasker, out: Out): void {
    const run = f.bytes
    const payloads: Buffer[] = []
    let changed = false
    let total = 0
    for (let at = 0; at < run.length; ) {
      const end = at + 1 + run.readInt32BE(at + 1)
      const payload = run.subarray(at + 5, end)
      const masked = cm.maskPayload(payload)
      if (masked !== payload) changed = true
      payloads.push(masked)
      total += 5 + masked.length
      at = end
    }
    this.queue.countCopyData(total, payloads.length)
    if (!changed) {
      out.push(run)
      return
    }
    const bytes = Buffer.allocUnsafe(total)
    let pos = 0
    for (const p of payloads) {
      bytes[pos] = B.CopyData
      bytes.writeInt32BE(4 + p.length, pos + 1)
      p.copy(bytes, pos + 5)
      pos += 5 + p.length
    }
    out.push(bytes)
  }

  /** The server's error: ours for a refused statement, the statement's outcome otherwise. */
  private onError(f: Frame, out: Out, h: Pending | undefined): void {
    this.rowMasker = undefined
    this.copyMasker = undefined
    const fields = decodeErrorFields(f)
    const policy = this.textPolicy(h)
    const answer = this.queue.error(f.bytes, fields)
    // Our own refusal goes out as is; the server's error passes the text guard.
    const bytes = answer === f.bytes ? guardFields(f, policy) : answer
    out.push(bytes)
    // V is the severity never translated (PostgreSQL 9.6+), S the one in the server's language.
    const severity = fields.V ?? fields.S
    if (severity === 'FATAL' || severity === 'PANIC') {
      this.serverEnded = true
      this.log.info('pg target ended the session', {code: fields.C})
    }
    // A refused Parse's error is audited by the gate's refusal, and is not recorded here.
    if (h?.kind === 'parse' && h.refused) return
    if (this.gate.recording) this.gate.record('server', summarizeError(bytes))
  }

  /** How to treat the server's text about the statement at the head of the queue (or the session's latest). */
  private textPolicy(h: Pending | undefined): TextPolicy {
    const stmt = h === undefined ? undefined : 'stmt' in h ? h.stmt : h.kind === 'execute' ? h.portal?.stmt : h.kind === 'describe' ? (h.portal?.stmt ?? h.stmt) : undefined
    const plan = stmt ? planOf(stmt.verdict) : this.lastPlan
    const counts = h && 'masked' in h ? h.masked : this.result.maskingReport
    return {sensitive: this.masks.textSensitive(stmt, plan), entities: plan.entities, counts}
  }

  /** Columns of a result (a Query's: build its masker) or the answer to a Describe (kept for Execute). */
  private async onRowDescription(f: Frame, out: Out, h: Pending | undefined): Promise<void> {
    const fields = decodeRowDescription(f) ?? []
    if (!this.queue.rowDescription(fields)) return
    if (h?.kind === 'query') {
      this.rowMasker = await this.masks.forQuery(h.stmt, h.index, fields, h.masked)
      this.rowMaskerFor = h
    }
    out.push(f.bytes)
    if (this.gate.recording) this.gate.record('server', summarizeRowDescription(fields))
  }

  /** Builds the masker for an Execute at the head of the queue, from its portal's description. */
  private async prepareExecuteMasker(h: Extract<Pending, {kind: 'execute'}>): Promise<void> {
    this.rowMaskerFor = h
    this.rowMasker = await this.masks.forExecute(h.portal, h.masked)
  }

  /** COPY TO starts: its data is masked like rows. */
  private async onCopyOut(f: Frame, out: Out, h: Pending | undefined): Promise<void> {
    this.copyMasker = undefined
    if (h?.kind === 'query') this.copyMasker = await this.masks.forCopyOut(f, h.stmt, h.index, h.masked)
    else if (h?.kind === 'execute') this.copyMasker = await this.masks.forCopyOut(f, h.portal?.stmt, 0, h.masked)
    out.push(f.bytes)
  }

  // --- errors and shutdown ----------------------------------------------------------------------

  private lengthError(e: FramerError): FatalToClient {
    return new FatalToClient(
      encodeErrorResponse({severity: 'FATAL', code: '08P01', message: `hoop: invalid message length ${e.declared} (limit ${e.limit})`}),
      `message length ${e.declared} exceeds limit ${e.limit}`,
    )
  }

  /** Only deliberate errors reach the client as such; anything else is logged and answered generically. */
  private async failSession(err: unknown): Promise<void> {
    let frame: Buffer
    if (err instanceof FatalToClient) {
      this.log.info('pg session refused', {reason: err.message})
      frame = err.frame
    } else if (err instanceof ResponseWithheld) {
      // The code of hoop's refusals (42501), so `hoop exec` and scripts see AUDIT_UNAVAILABLE as such.
      frame = encodeErrorResponse({severity: 'FATAL', code: '42501', message: err.message})
    } else if (err instanceof UpstreamRefused) {
      this.log.info('pg target refused the login', {code: err.fields.C})
      frame = err.frame
    } else if (err instanceof HoopError) {
      this.log.warn('pg session failed', {code: err.code, error: err.message})
      // A target lost under a live session is a connection failure (08006), not a refused connection (08001).
      frame = encodeHoopFatal(err.code, err.message, this.ready && err.code === 'TARGET_REFUSED' ? '08006' : undefined)
    } else {
      this.log.error('pg session failed', {error: errorMessage(err)})
      frame = encodeErrorResponse({severity: 'FATAL', code: 'XX000', message: 'hoop: internal error in the gateway'})
    }
    const c = this.o.client
    if (!c.destroyed && !c.writableEnded) await new Promise<void>((resolve) => c.end(frame, () => resolve()))
  }

  /** Ends both sides once: Terminate to the target, the catalog closed, the cancel key forgotten. */
  private shutdown(): void {
    if (this.closed) return
    this.closed = true
    if (this.cancelKey) releaseCancelKey(this.cancelKey)
    this.clientReader.detach()
    this.upstreamReader?.detach()
    const up = this.upstream
    if (up && !up.destroyed) {
      if (!up.writableEnded) up.end(encodeTerminate())
      setTimeout(() => up.destroy(), 1000).unref()
    }
    this.catalog.close()
    const c = this.o.client
    if (!c.writableEnded) c.end()
    setTimeout(() => c.destroy(), 1000).unref()
  }
}
