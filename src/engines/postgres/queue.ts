// Which server response answers which client message. PostgreSQL answers in order, so the engine
// keeps a queue of what the server still owes: pushed as client messages are forwarded, popped
// as the server's answers arrive (ParseComplete, BindComplete, CloseComplete, NoData,
// RowDescription, CommandComplete, PortalSuspended, ErrorResponse, ReadyForQuery). Popping a
// statement's last answer finishes it, or refuses it, at the statement gate. The queue also keeps
// what the client has named: prepared statements, portals and SQL cursors.
//
// After an error in the extended protocol the server ignores everything up to Sync; the queue
// drops the answers it will not send, and after a refused Parse it makes the engine skip the
// client's messages up to Sync as well. No I/O: the engine forwards; this only keeps count.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
import {addCount} from '../../masking/types.js'
import {B, encodeErrorResponse, type ClientMessage, type FieldDescription} from '../../protocol/pg/messages.js'
import type {OutputItem, StatementAnalysis} from '../../sql/pg-taint.js'
import {refusalMessage, type Judged, type Outcome, type Refusal, type StatementGate} from '../gate.js'

/** A judged statement, with what masking learnt of it: its taint analysis and its columns. */
export interface Stmt extends Judged {
  analysis?: StatementAnalysis[]
  rowDesc?: FieldDescription[]
}

export interface Portal {
  stmt?: Stmt
  resultFormats: number[]
  rowDesc?: FieldDescription[]
  described: boolean
  /** Outputs of a SQL cursor executed through the protocol. */
  cursorOutputs?: OutputItem[]
}

/** One answer the server owes, with the result counted so far where it carries one. */
export type Pending =
  | ({kind: 'query'; stmt: Stmt; refused?: Refusal; index: number} & Outcome)
  | {kind: 'parse'; stmt: Stmt; refused?: Refusal}
  | {kind: 'bind'}
  | {kind: 'close'}
  | {kind: 'describe'; stmt?: Stmt; portal?: Portal; internal: boolean}
  | ({kind: 'execute'; portal?: Portal} & Outcome)
  | {kind: 'sync'}
  | ({kind: 'function'; stmt: Stmt; refused?: Refusal} & Outcome)

/** Where popped statements go: the statement gate. */
export type StatementSink = Pick<StatementGate, 'finish' | 'refuse' | 'result'>

/** The ErrorResponse a refused statement answers with (the session stays usable). */
export function refusalError(v: Refusal): Buffer {
  const hint = v.effect === 'review' && v.approvalId ? `an approver runs: hoop approvals approve ${v.approvalId}` : undefined
  return encodeErrorResponse({severity: 'ERROR', code: '42501', message: refusalMessage(v), hint})
}

const tally = (): Outcome => ({rows: 0, bytes: 0, masked: {}})

export class ResponseQueue {
  private readonly pending: Pending[] = []
  /** Set by a refused Parse, cleared by Sync. */
  private skipping = false
  private readonly statements = new Map<string, Stmt>()
  private readonly portals = new Map<string, Portal>()
  private readonly cursors = new Map<string, Stmt & {outputs?: OutputItem[]}>()

  constructor(private readonly gate: StatementSink) {}

  /** The answer the server owes next. */
  get head(): Pending | undefined {
    return this.pending[0]
  }

  /** Answers still owed (for tests and diagnostics). */
  get length(): number {
    return this.pending.length
  }

  // --- client -> server: what the server will owe ------------------------------------------------

  /**
   * True when the engine must drop this client message unjudged: after a refused Parse, the
   * extended-protocol messages up to Sync, as the server itself would ignore them after an error.
   */
  skips(m: ClientMessage): boolean {
    if (!this.skipping) return false
    switch (m.kind) {
      case 'Parse':
      case 'Bind':
      case 'Describe':
      case 'Execute':
      case 'Close':
      case 'Flush':
        return true
      default:
        return false
    }
  }

  /** A simple Query (forwarded, or its refusal placeholder): one answer until ReadyForQuery. */
  query(stmt: Stmt, refused: Refusal | undefined): void {
    this.pending.push({kind: 'query', stmt, refused, index: 0, ...tally()})
    if (!refused) this.rememberCursors(stmt)
  }

  /** A Parse; a refused one makes the engine skip the client's messages up to Sync. */
  parse(name: string, stmt: Stmt, refused: Refusal | undefined): void {
    this.statements.set(name, stmt)
    this.pending.push({kind: 'parse', stmt, refused})
    if (refused) this.skipping = true
    else this.rememberCursors(stmt)
  }

  /** Whether a protocol Parse of this statement name was seen (and not closed) in this session. */
  knows(statement: string): boolean {
    return this.statements.has(statement)
  }

  /**
   * A Bind the engine refuses (its statement's plan is unknown): answered like a refused Parse,
   * the server's error for the placeholder becomes the refusal and the pipeline skips to Sync.
   */
  refuseBind(stmt: Stmt, refused: Refusal): void {
    this.pending.push({kind: 'parse', stmt, refused})
    this.skipping = true
  }

  bind(portal: string, statement: string, resultFormats: number[]): void {
    this.portals.set(portal, {stmt: this.statements.get(statement), resultFormats, described: false})
    this.pending.push({kind: 'bind'})
  }

  /** The client's Describe of a statement ('S') or a portal ('P'). */
  describe(target: 'S' | 'P', name: string): void {
    if (target === 'S') this.pending.push({kind: 'describe', stmt: this.statements.get(name), internal: false})
    else {
      const portal = this.portal(name)
      portal.described = true
      this.pending.push({kind: 'describe', portal, internal: false})
    }
  }

  /** A Describe the engine sends itself (masking must know the columns); its answer is not the client's. */
  describeInternally(portal: Portal): void {
    portal.described = true
    this.pending.push({kind: 'describe', portal, internal: true})
  }

  execute(portal: Portal): void {
    this.pending.push({kind: 'execute', portal, ...tally()})
  }

  close(target: 'S' | 'P', name: string): void {
    if (target === 'S') this.statements.delete(name)
    else this.portals.delete(name)
    this.pending.push({kind: 'close'})
  }

  sync(): void {
    this.skipping = false
    this.pending.push({kind: 'sync'})
  }

  /** A fast-path FunctionCall (or its refusal placeholder): one answer until ReadyForQuery. */
  functionCall(stmt: Stmt, refused: Refusal | undefined): void {
    this.pending.push({kind: 'function', stmt, refused, ...tally()})
  }

  /** The named portal; a SQL cursor (DECLARE) executed as a protocol portal becomes one. */
  portal(name: string): Portal {
    let p = this.portals.get(name)
    if (!p) {
      const cur = this.cursors.get(name)
      p = {stmt: cur, resultFormats: [], described: false, cursorOutputs: cur?.outputs}
      this.portals.set(name, p)
    }
    return p
  }

  /** What a DECLAREd cursor's rows derive from (for FETCH). */
  cursorOutputs(name: string): OutputItem[] | undefined {
    return this.cursors.get(name)?.outputs
  }

  private rememberCursors(stmt: Stmt): void {
    for (const a of stmt.analysis ?? []) {
      if (a.kind === 'declare' && a.cursor) this.cursors.set(a.cursor, {...stmt, outputs: a.outputs})
    }
  }

  // --- server -> client: answers -------------------------------------------------------------------

  /** A DataRow of the head's result reached the client, `bytes` long (after masking). */
  countRow(bytes: number): void {
    const h = this.head
    if (h?.kind === 'query' || h?.kind === 'execute') {
      h.rows++
      h.bytes += bytes
    }
  }

  /** `count` CopyData messages (rows) of the head's COPY TO reached the client, `bytes` long in all (after masking). */
  countCopyData(bytes: number, count = 1): void {
    const h = this.head
    if (h && 'rows' in h) {
      h.rows += count
      h.bytes += bytes
    }
  }

  /**
   * A CommandComplete's tag. A write's affected rows (INSERT 0 3, UPDATE 2, DELETE 1, MERGE 4)
   * count as its rows, so the audit says how many rows a write touched, not 0; reads are already
   * counted row by row.
   */
  commandTag(tag: string): void {
    const h = this.head
    if (h?.kind !== 'query' && h?.kind !== 'execute') return
    const m = /^(?:INSERT \d+|UPDATE|DELETE|MERGE) (\d+)$/.exec(tag)
    if (m) h.rows += Number(m[1])
  }

  /**
   * Pops what a server message completes: ParseComplete, BindComplete, CloseComplete, NoData,
   * CommandComplete / EmptyQueryResponse / PortalSuspended (an Execute is finished; a Query moves
   * to its next statement) and ReadyForQuery (a Query or function call is finished or refused).
   * Other types leave the queue alone. False when the client must not see the message: the
   * answer to a Describe the engine sent itself.
   */
  answer(type: number): boolean {
    const h = this.head
    switch (type) {
      case B.NoData:
        if (h?.kind !== 'describe') return true
        this.pending.shift()
        return !h.internal
      case B.CommandComplete:
      case B.EmptyQueryResponse:
      case B.PortalSuspended:
        if (h?.kind === 'query') h.index++
        else if (h?.kind === 'execute') {
          this.finishExecute(h)
          this.pending.shift()
        }
        return true
      case B.ReadyForQuery:
        if (h?.kind === 'query' || h?.kind === 'function') {
          this.pending.shift()
          if (h.refused) this.gate.refuse(h.stmt, h.refused)
          else this.gate.finish(h.stmt, h)
        } else if (h?.kind === 'sync') this.pending.shift()
        return true
      case B.ParseComplete:
        return this.popIf('parse')
      case B.BindComplete:
        return this.popIf('bind')
      case B.CloseComplete:
        return this.popIf('close')
      default:
        return true
    }
  }

  /** A RowDescription: when it answers a Describe, the columns are kept on its portal or statement. Same result as `answer`. */
  rowDescription(fields: FieldDescription[]): boolean {
    const h = this.head
    if (h?.kind !== 'describe') return true
    this.pending.shift()
    if (h.portal) h.portal.rowDesc = fields
    else if (h.stmt) h.stmt.rowDesc = fields
    return !h.internal
  }

  /**
   * The server's ErrorResponse (its fields decoded). A refused statement's error (the server
   * failed to parse our placeholder) becomes the refusal; otherwise the server's own error is the
   * statement's outcome. In the extended protocol the server now skips to Sync, and so does the
   * queue. Returns the ErrorResponse the client gets.
   */
  error(bytes: Buffer, fields: Record<string, string>): Buffer {
    const h = this.head
    const text = `${fields.C ?? ''} ${fields.M ?? ''}`.trim()
    if (h?.kind === 'query' || h?.kind === 'function') {
      if (h.refused) return refusalError(h.refused)
      h.error ??= text
      return bytes
    }
    if (!h || h.kind === 'sync') return bytes
    this.pending.shift()
    let answer = bytes
    if (h.kind === 'parse' && h.refused) {
      answer = refusalError(h.refused)
      this.gate.refuse(h.stmt, h.refused)
    } else if (h.kind === 'execute') {
      h.error = text
      this.finishExecute(h)
    }
    this.dropUntilSync()
    return answer
  }

  private popIf(kind: 'parse' | 'bind' | 'close'): true {
    if (this.head?.kind === kind) this.pending.shift()
    return true
  }

  /**
   * The server skips to Sync after an error. An Execute it skipped was admitted (its statement's
   * record is written), so it is finished as not run: the audit shows no statement without an end.
   */
  private dropUntilSync(): void {
    while (this.pending.length && this.pending[0].kind !== 'sync') {
      const h = this.pending.shift()!
      if (h.kind === 'execute') {
        h.error = 'not run: an earlier message of the pipeline failed'
        this.finishExecute(h)
      }
    }
  }

  /** An Execute of a portal we know nothing of still counts its masked cells. */
  private finishExecute(h: Extract<Pending, {kind: 'execute'}>): void {
    const stmt = h.portal?.stmt
    if (stmt) this.gate.finish(stmt, h)
    else for (const [k, n] of Object.entries(h.masked)) addCount(this.gate.result.maskingReport, k, n)
  }
}
