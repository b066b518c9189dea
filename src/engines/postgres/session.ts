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
import type {Duplex} from 'node:stream'
import {ColumnMatcher} from '../../masking/columns.js'
import {CopyMasker, RowMasker, type ColumnInfo} from '../../masking/result.js'
import {addCount, planIsEmpty, type MaskCounts, type MaskPlan} from '../../masking/types.js'
import {Framer, type Frame, type FramerError} from '../../protocol/pg/framer.js'
import {
  B,
  decodeClientMessage,
  decodeCopyResponse,
  decodeErrorFields,
  decodeRowDescription,
  decodeStartup,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeDescribe,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
  encodeParse,
  encodeQuery,
  encodeReadyForQuery,
  encodeTerminate,
  message,
  type ClientMessage,
  type FieldDescription,
} from '../../protocol/pg/messages.js'
import {HoopError, errorMessage} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {loadPgParser} from '../../sql/pg-parser.js'
import {analyzeSql, outputAt, type OutputItem, type StatementAnalysis} from '../../sql/pg-taint.js'
import {refusalMessage, type Judged, type Refusal, type SessionResult, type StatementGate, type Verdict} from '../gate.js'
import {isPulledEnd, isPulledError, OutputBatch as Out, PullReader} from '../io.js'
import {forwardCancel, registerCancelKey, releaseCancelKey, type BackendKey} from './cancel.js'
import {Catalog, openCatalog} from './catalog.js'
import {RECORDED_ROWS_PER_RESULT, summarizeClient, summarizeError, summarizeRow, summarizeRowDescription, summarizeServer} from './recording.js'
import {openAuthenticated, UpstreamRefused, type AuthenticatedConn, type FrameReader, type PgTarget} from './upstream.js'

export interface PgSessionOptions {
  client: Duplex
  openUpstream: () => Promise<Duplex>
  target: PgTarget
  gate: StatementGate
  logger: Logger
  limits?: {maxMessageBytes?: number}
}

export type PgSessionResult = SessionResult

const DEFAULT_MAX_CLIENT_MESSAGE = 16 * 1024 * 1024
/** Sent to the server in place of a refused statement: fails in the parser, does nothing. */
export const REFUSED_STATEMENT_TEXT = 'hoop_refused_statement'

interface Stmt extends Judged {
  analysis?: StatementAnalysis[]
  rowDesc?: FieldDescription[]
}

interface Portal {
  stmt?: Stmt
  resultFormats: number[]
  rowDesc?: FieldDescription[]
  described: boolean
  /** Outputs of a SQL cursor executed through the protocol. */
  cursorOutputs?: OutputItem[]
}

interface Tally {
  rows: number
  bytes: number
  error?: string
  masked: MaskCounts
}

type Pending =
  | ({kind: 'query'; stmt: Stmt; refused?: Refusal; index: number} & Tally)
  | {kind: 'parse'; stmt: Stmt; refused?: Refusal}
  | {kind: 'bind'}
  | {kind: 'close'}
  | {kind: 'describe'; stmt?: Stmt; portal?: Portal; internal: boolean}
  | ({kind: 'execute'; portal?: Portal} & Tally)
  | {kind: 'sync'}
  | ({kind: 'function'; stmt: Stmt; refused?: Refusal} & Tally)

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
  /** The BackendKeyData the client got in place of the target's. */
  private cancelKey: BackendKey | undefined

  private readonly statements = new Map<string, Stmt>()
  private readonly portals = new Map<string, Portal>()
  private readonly cursors = new Map<string, Stmt & {outputs?: OutputItem[]}>()
  private pending: Pending[] = []
  private skipUntilSync = false
  private closed = false
  /** Rows of the current result already given to the recording hook. */
  private recordedRows = 0
  /** The client said goodbye: an upstream end after this is expected, not a failure. */
  private clientTerminated = false
  private readonly matchers = new WeakMap<MaskPlan, ColumnMatcher>()

  // server -> client result state
  private rowMasker: RowMasker | undefined
  private rowMaskerFor: Pending | undefined
  private copyMasker: CopyMasker | undefined

  constructor(private readonly o: PgSessionOptions) {
    this.log = o.logger
    this.gate = o.gate
    this.result = o.gate.result
    this.clientReader = new PullReader<Frame, FramerError, Framer>(o.client, new Framer('startup', o.limits?.maxMessageBytes ?? DEFAULT_MAX_CLIENT_MESSAGE))
    this.catalog = new Catalog(() => openCatalog(this.o, this.upstreamParams, this.log), this.log)
  }

  async run(): Promise<PgSessionResult> {
    // A stream error after close must not become an uncaught exception.
    this.o.client.on('error', (e) => this.log.debug('pg client stream error', {error: e.message}))
    try {
      const startup = await this.handleStartup()
      if (!startup) return this.result
      const conn = await this.connectUpstream(startup)
      await this.makeClientReady(conn)
      const pumps = [this.pumpClient(), this.pumpServer()]
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
          this.clientReader.framer.setMode('regular')
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
    const unsupported = Object.keys(params).filter((k) => k.startsWith('_pq_.'))
    if ((startup.version & 0xffff) !== 0 || unsupported.length) this.o.client.write(encodeNegotiateProtocolVersion(0, unsupported))
    const conn = await openAuthenticated(this.o, this.upstreamParams, this.log)
    this.upstream = conn.stream
    this.upstreamReader = conn.reader
    this.upstream.on('error', (e) => this.log.debug('pg upstream stream error', {error: e.message}))
    if (conn.backendKey) this.cancelKey = registerCancelKey(conn.backendKey, this.o)
    return conn
  }

  /** AuthenticationOk only now that the target accepted us; then the server's parameters. */
  private async makeClientReady(conn: AuthenticatedConn): Promise<void> {
    const out = new Out()
    out.push(encodeAuthenticationOk())
    for (const f of conn.startupFrames) out.push(f.bytes)
    if (this.cancelKey) out.push(encodeBackendKeyData(this.cancelKey.pid, this.cancelKey.key))
    out.push(encodeReadyForQuery(conn.status))
    this.result.bytesDown += out.bytes
    await out.flush(this.o.client)
  }

  // --- client -> server --------------------------------------------------------------------------

  private async pumpClient(): Promise<void> {
    const up = this.upstream as Duplex
    for (;;) {
      const r = await this.clientReader.next()
      if ('end' in r) return
      if ('error' in r) throw this.lengthError(r.error)
      const out = new Out()
      for (const f of r.items) {
        this.result.bytesUp += f.bytes.length
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
    switch (m.kind) {
      case 'Query': {
        const stmt = await this.judgeStatement(m.sql)
        const refused = await this.gate.admit(stmt)
        this.pending.push({kind: 'query', stmt, refused, index: 0, rows: 0, bytes: 0, masked: {}})
        out.push(refused ? encodeQuery(REFUSED_STATEMENT_TEXT) : f.bytes)
        if (!refused) this.rememberCursors(stmt)
        return true
      }
      case 'Parse': {
        if (this.skipUntilSync) return true
        const stmt = await this.judgeStatement(m.sql)
        const refused = await this.gate.admit(stmt)
        this.statements.set(m.name, stmt)
        this.pending.push({kind: 'parse', stmt, refused})
        out.push(refused ? encodeParse(m.name, REFUSED_STATEMENT_TEXT) : f.bytes)
        // Like the server after an error: ignore everything up to the next Sync.
        if (refused) this.skipUntilSync = true
        else this.rememberCursors(stmt)
        return true
      }
      case 'Bind': {
        if (this.skipUntilSync) return true
        this.portals.set(m.portal, {stmt: this.statements.get(m.statement), resultFormats: m.resultFormats, described: false})
        this.pending.push({kind: 'bind'})
        out.push(f.bytes)
        return true
      }
      case 'Describe': {
        if (this.skipUntilSync) return true
        if (m.target === 'S') this.pending.push({kind: 'describe', stmt: this.statements.get(m.name), internal: false})
        else {
          const portal = this.portalFor(m.name)
          portal.described = true
          this.pending.push({kind: 'describe', portal, internal: false})
        }
        out.push(f.bytes)
        return true
      }
      case 'Execute': {
        if (this.skipUntilSync) return true
        const portal = this.portalFor(m.portal)
        if (!portal.described && !planIsEmpty(planOf(portal.stmt?.verdict))) {
          // We must know the columns (origin, type, format) to mask: ask the server ourselves.
          portal.described = true
          this.pending.push({kind: 'describe', portal, internal: true})
          out.push(encodeDescribe('P', m.portal))
        }
        this.pending.push({kind: 'execute', portal, rows: 0, bytes: 0, masked: {}})
        out.push(f.bytes)
        return true
      }
      case 'Close': {
        if (this.skipUntilSync) return true
        if (m.target === 'S') this.statements.delete(m.name)
        else this.portals.delete(m.name)
        this.pending.push({kind: 'close'})
        out.push(f.bytes)
        return true
      }
      case 'Sync':
        this.skipUntilSync = false
        this.pending.push({kind: 'sync'})
        out.push(f.bytes)
        return true
      case 'Flush':
        if (!this.skipUntilSync) out.push(f.bytes)
        return true
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        out.push(f.bytes)
        return true
      case 'FunctionCall': {
        // The fast-path function call carries no SQL: judge it as an opaque statement.
        const stmt = await this.judgeStatement('<function call>')
        const refused = await this.gate.admit(stmt)
        this.pending.push({kind: 'function', stmt, refused, rows: 0, bytes: 0, masked: {}})
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

  private portalFor(name: string): Portal {
    let p = this.portals.get(name)
    if (!p) {
      // A SQL cursor (DECLARE) can be executed as a protocol portal.
      const cur = this.cursors.get(name)
      p = {stmt: cur, resultFormats: [], described: false, cursorOutputs: cur?.outputs}
      this.portals.set(name, p)
    }
    return p
  }

  /** Judges a statement and, when a column is masked, analyses which outputs derive from one. */
  private async judgeStatement(sql: string): Promise<Stmt> {
    const stmt: Stmt = await this.gate.judge(sql)
    const v = stmt.verdict
    if (v.effect === 'allow' && v.mask.columns.length > 0) {
      await loadPgParser()
      stmt.analysis = analyzeSql(sql, this.matcher(v.mask))
    }
    return stmt
  }

  private rememberCursors(stmt: Stmt): void {
    for (const a of stmt.analysis ?? []) {
      if (a.kind === 'declare' && a.cursor) this.cursors.set(a.cursor, {...stmt, outputs: a.outputs})
    }
  }

  private matcher(plan: MaskPlan): ColumnMatcher {
    let m = this.matchers.get(plan)
    if (!m) this.matchers.set(plan, (m = new ColumnMatcher(plan.columns)))
    return m
  }

  // --- server -> client --------------------------------------------------------------------------

  private async pumpServer(): Promise<void> {
    const reader = this.upstreamReader as FrameReader
    const client = this.o.client
    for (;;) {
      const r = await reader.next()
      if ('end' in r) {
        if (this.clientTerminated || this.closed) return
        // The target side went away under a live session: tell the client why, in the protocol.
        const cause = reader.streamError
        throw new HoopError('TARGET_REFUSED', cause instanceof HoopError ? cause.message : `the target closed the connection${cause ? ` (${cause.message})` : ''}`)
      }
      if ('error' in r) throw new HoopError('PROTOCOL_ERROR', `target sent a message of length ${r.error.declared}, limit ${r.error.limit}`)
      const out = new Out()
      for (const f of r.items) {
        const p = this.onServerMessage(f, out)
        if (p) await p
      }
      this.result.bytesDown += out.bytes
      await out.flush(client)
    }
  }

  private head(): Pending | undefined {
    return this.pending[0]
  }

  private popHead(): void {
    this.pending.shift()
  }

  /** Forwards, rewrites or swallows one server message. Returns a promise only when it must wait (catalog). */
  private onServerMessage(f: Frame, out: Out): Promise<void> | void {
    const h = this.head()
    if (h?.kind === 'execute' && this.rowMaskerFor !== h && f.type === B.DataRow) {
      // Extended protocol: build the masker when an Execute's first row arrives.
      return this.prepareExecuteMasker().then(() => this.onServerMessage(f, out))
    }
    switch (f.type) {
      case B.DataRow: {
        const m = this.rowMasker
        const bytes = m ? m.maskDataRow(f.bytes) : f.bytes
        if (h && (h.kind === 'query' || h.kind === 'execute')) {
          h.rows++
          h.bytes += bytes.length
        }
        out.push(bytes)
        // The recording keeps the first rows of each result as the client saw them (masked).
        if (this.gate.recording && this.recordedRows++ < RECORDED_ROWS_PER_RESULT) this.gate.record('server', summarizeRow(bytes))
        return
      }
      case B.RowDescription:
        return this.onRowDescription(f, out, h)
      case B.NoData:
        if (h?.kind === 'describe') {
          this.popHead()
          if (h.internal) return
        }
        break
      case B.CommandComplete:
      case B.EmptyQueryResponse:
      case B.PortalSuspended:
        this.recordedRows = 0
        this.rowMasker = undefined
        this.copyMasker = undefined
        if (h?.kind === 'query') h.index++
        else if (h?.kind === 'execute') {
          this.finishStatement(h.portal?.stmt, h)
          this.popHead()
        }
        break
      case B.ErrorResponse:
        return this.onError(f, out, h)
      case B.ReadyForQuery: {
        this.rowMasker = undefined
        this.copyMasker = undefined
        if (h?.kind === 'query' || h?.kind === 'function') {
          this.popHead()
          if (h.refused) this.gate.refuse(h.stmt, h.refused)
          else this.gate.finish(h.stmt, h)
        } else if (h?.kind === 'sync') this.popHead()
        break
      }
      case B.ParseComplete:
        if (h?.kind === 'parse') this.popHead()
        break
      case B.BindComplete:
        if (h?.kind === 'bind') this.popHead()
        break
      case B.CloseComplete:
        if (h?.kind === 'close') this.popHead()
        break
      case B.CopyOutResponse:
        return this.onCopyOut(f, out, h)
      case B.CopyData: {
        const cm = this.copyMasker
        if (cm?.active) {
          const payload = f.bytes.subarray(5)
          const masked = cm.maskPayload(payload)
          const bytes = masked === payload ? f.bytes : message(B.CopyData, masked)
          if (h && 'rows' in h) {
            h.rows++
            h.bytes += bytes.length
          }
          out.push(bytes)
          return
        }
        if (h && 'rows' in h) {
          h.rows++
          h.bytes += f.bytes.length
        }
        break
      }
      default:
        break
    }
    out.push(f.bytes)
    if (this.gate.recording) this.gate.record('server', summarizeServer(f))
  }

  private onError(f: Frame, out: Out, h: Pending | undefined): void {
    this.rowMasker = undefined
    this.copyMasker = undefined
    const fields = decodeErrorFields(f)
    const text = `${fields.C ?? ''} ${fields.M ?? ''}`.trim()
    let bytes = f.bytes
    if (h?.kind === 'query' || h?.kind === 'function') {
      if (h.refused) bytes = refusalError(h.refused)
      else h.error ??= text
    } else if (h && h.kind !== 'sync') {
      // Extended protocol: the server skips to Sync; so do the responses we expect.
      if (h.kind === 'parse' && h.refused) {
        bytes = refusalError(h.refused)
        this.popHead()
        out.push(bytes)
        this.gate.refuse(h.stmt, h.refused)
        this.dropUntilSync()
        return
      }
      if (h.kind === 'execute') {
        h.error = text
        this.finishStatement(h.portal?.stmt, h)
      }
      this.popHead()
      this.dropUntilSync()
    }
    out.push(bytes)
    if (this.gate.recording) this.gate.record('server', summarizeError(bytes))
    if (fields.S === 'FATAL' || fields.S === 'PANIC') this.log.info('pg target ended the session', {code: fields.C})
  }

  private dropUntilSync(): void {
    while (this.pending.length && this.pending[0].kind !== 'sync') this.pending.shift()
  }

  /** An Execute of a portal we know nothing of still counts its masked cells. */
  private finishStatement(stmt: Stmt | undefined, t: Tally): void {
    if (stmt) this.gate.finish(stmt, t)
    else for (const [k, n] of Object.entries(t.masked)) addCount(this.result.maskingReport, k, n)
  }

  private async onRowDescription(f: Frame, out: Out, h: Pending | undefined): Promise<void> {
    const fields = decodeRowDescription(f) ?? []
    if (h?.kind === 'describe') {
      this.popHead()
      if (h.portal) h.portal.rowDesc = fields
      else if (h.stmt) h.stmt.rowDesc = fields
      if (h.internal) return
    } else if (h?.kind === 'query') {
      const a = h.stmt.analysis?.[h.index]
      const outputs = a?.kind === 'fetch' ? this.cursors.get(a.cursor ?? '')?.outputs : a?.outputs
      this.rowMasker = await this.buildRowMasker(fields, h.stmt.verdict, a, outputs, h.stmt.analysis === undefined, h.masked)
      this.rowMaskerFor = h
    }
    out.push(f.bytes)
    if (this.gate.recording) this.gate.record('server', summarizeRowDescription(fields))
  }

  /** Builds the masker for an Execute at the head of the queue, from its portal's description. */
  private async prepareExecuteMasker(): Promise<void> {
    const h = this.head()
    if (h?.kind !== 'execute' || this.rowMaskerFor === h) return
    this.rowMaskerFor = h
    const portal = h.portal
    const stmt = portal?.stmt
    const desc = portal?.rowDesc ?? stmt?.rowDesc
    if (!portal || !desc) {
      this.rowMasker = undefined
      return
    }
    const formats = portal.rowDesc ? undefined : portal.resultFormats
    const fields = formats ? desc.map((d, i) => ({...d, format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : (formats[i] ?? 0)})) : desc
    const a = stmt?.analysis?.[0]
    const outputs = portal.cursorOutputs ?? (a?.kind === 'fetch' ? this.cursors.get(a.cursor ?? '')?.outputs : a?.outputs)
    this.rowMasker = await this.buildRowMasker(fields, stmt?.verdict, a, outputs, stmt !== undefined && stmt.analysis === undefined, h.masked)
  }

  private async buildRowMasker(
    fields: FieldDescription[],
    verdict: Verdict | undefined,
    analysis: StatementAnalysis | undefined,
    outputs: OutputItem[] | undefined,
    unparsed: boolean,
    counts: MaskCounts,
  ): Promise<RowMasker | undefined> {
    const plan = planOf(verdict)
    if (planIsEmpty(plan)) return undefined
    const matcher = this.matcher(plan)
    const cols: ColumnInfo[] = fields.map((fd) => ({typeOid: fd.typeOid, format: fd.format}))
    if (!matcher.empty) {
      for (let i = 0; i < fields.length; i++) {
        const fd = fields[i]
        if (fd.tableOid !== 0 && fd.attnum > 0) {
          const rel = await this.catalog.relation(fd.tableOid, matcher)
          if (!rel) {
            cols[i].maskKey = 'column:unresolved'
            continue
          }
          const name = rel.columns.get(fd.attnum)
          if (!name) continue
          const hit = matcher.match({schema: rel.schema, table: rel.table, column: name})
          if (hit) cols[i].maskKey = `column:${rel.schema}.${rel.table}.${name}`
          else {
            // A view's column is masked when its definition derives it from a masked column.
            const src = rel.viewOutputs ? outputAt(rel.viewOutputs, fd.attnum - 1, rel.viewOutputs.length) : undefined
            if (src && src !== 'unknown' && src.source) cols[i].maskKey = `derived:${src.source}`
          }
          continue
        }
        if (fd.tableOid === 0) {
          // Computed column: tainted when its expression reads a masked column.
          if (unparsed) cols[i].maskKey = 'derived:unparsed-statement'
          else if (outputs) {
            const o = outputAt(outputs, i, fields.length)
            if (o === 'unknown') {
              if (analysis?.readsMasked) cols[i].maskKey = `derived:${analysis.readsMasked}`
            } else if (o.source) cols[i].maskKey = `derived:${o.source}`
          } else if (analysis?.readsMasked) cols[i].maskKey = `derived:${analysis.readsMasked}`
        }
      }
    }
    const m = new RowMasker(cols, plan.entities, counts)
    return m.active ? m : undefined
  }

  private async onCopyOut(f: Frame, out: Out, h: Pending | undefined): Promise<void> {
    this.copyMasker = undefined
    const stmt = h?.kind === 'query' ? h.stmt : h?.kind === 'execute' ? h.portal?.stmt : undefined
    const plan = planOf(stmt?.verdict)
    if (!planIsEmpty(plan) && h && 'masked' in h) {
      const {format, columnFormats} = decodeCopyResponse(f)
      const a = stmt?.analysis?.[h.kind === 'query' ? h.index : 0]
      const copy = a?.copy
      const n = columnFormats.length
      const keys: (string | undefined)[] = new Array(n).fill(undefined)
      const matcher = this.matcher(plan)
      if (!matcher.empty) {
        if (!copy) keys.fill('derived:unparsed-statement')
        else if (copy.outputs) {
          for (let i = 0; i < n; i++) {
            const o = outputAt(copy.outputs, i, n)
            if (o === 'unknown') keys[i] = a?.readsMasked ? `derived:${a.readsMasked}` : undefined
            else if (o.source) keys[i] = `derived:${o.source}`
          }
        } else if (copy.relation) {
          const rel = await this.catalog.relationByName(copy.relation.schema, copy.relation.table, matcher)
          if (!rel) keys.fill('column:unresolved')
          else {
            const names = copy.columns ?? [...rel.columns.entries()].sort((x, y) => x[0] - y[0]).map((e) => e[1])
            for (let i = 0; i < n; i++) {
              const name = names[i]
              const hit = name ? matcher.match({schema: rel.schema, table: rel.table, column: name}) : undefined
              if (hit) keys[i] = `column:${rel.schema}.${rel.table}.${name}`
            }
          }
        }
      }
      const fmt = format === 1 ? 'binary' : (copy?.format ?? 'text')
      this.copyMasker = new CopyMasker({format: fmt, delimiter: copy?.delimiter ?? '\t', maskKeys: keys, entities: plan.entities, counts: h.masked})
    }
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
    } else if (err instanceof UpstreamRefused) {
      this.log.info('pg target refused the login', {code: err.fields.C})
      frame = err.frame
    } else if (err instanceof HoopError) {
      this.log.warn('pg session failed', {code: err.code, error: err.message})
      frame = encodeErrorResponse({severity: 'FATAL', code: '08006', message: `hoop: ${err.message}`})
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

function planOf(v: Verdict | undefined): MaskPlan {
  return v?.effect === 'allow' ? v.mask : {columns: [], entities: [], ruleIds: []}
}

function refusalError(v: Refusal): Buffer {
  const hint = v.effect === 'review' && v.approvalId ? `an approver runs: hoop approvals approve ${v.approvalId}` : undefined
  return encodeErrorResponse({severity: 'ERROR', code: '42501', message: refusalMessage(v), hint})
}

