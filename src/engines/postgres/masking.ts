// Mask planning for PostgreSQL results: from a statement's verdict (its mask plan), its taint
// analysis and the catalog, decide which columns of a result are masked, and build the RowMasker
// (DataRow cells) or CopyMasker (COPY TO data) that rewrites them. A column is masked when its
// origin (table OID + attribute number in RowDescription) matches a masked column, when a view
// derives it from one, or when the taint analysis says its expression reads one; a column whose
// origin cannot be resolved is masked (fail closed). Value detectors (the plan's entities) apply
// to every cell of a result whose plan is not empty.
import {ColumnMatchers, type ColumnMatcher} from '../../masking/columns.js'
import type {RowShape} from '../../masking/whole-row.js'
import {CopyMasker, RowMasker, type ColumnInfo} from '../../masking/result.js'
import {planIsEmpty, type MaskCounts, type MaskPlan} from '../../masking/types.js'
import type {Frame} from '../../protocol/pg/framer.js'
import {B, decodeCopyResponse, type FieldDescription} from '../../protocol/pg/messages.js'
import {decodeParameterStatus} from '../../protocol/pg/notices.js'
import type {PgParses} from '../../sql/pg-parser.js'
import type {OutputItem, StatementAnalysis} from '../../sql/pg-taint.js'
import {outputAt, type WholeRow} from '../../sql/taint.js'
import type {Verdict} from '../gate.js'
import type {Catalog, RelInfo} from './catalog.js'
import type {Portal, Stmt} from './queue.js'

const JSON_OID = 114
const JSONB_OID = 3802

/**
 * Statements that run queries the taint analysis cannot see: their results and messages may hold
 * any data, so under a column mask they count as reading it.
 */
const OPAQUE_STATEMENTS: ReadonlySet<string> = new Set(['DoStmt', 'ExecuteStmt', 'CallStmt', 'CreateTableAsStmt', 'RefreshMatViewStmt'])

function opaque(a: StatementAnalysis): boolean {
  return a.kind === 'other' && OPAQUE_STATEMENTS.has(a.type)
}

/** A verdict's mask plan; nothing is masked for a statement that is not allowed (it never runs). */
export function planOf(v: Verdict | undefined): MaskPlan {
  return v?.effect === 'allow' ? v.mask : {columns: [], entities: [], ruleIds: []}
}

export class MaskPlanner {
  private readonly matchers = new ColumnMatchers()
  /**
   * Set once the session ran a statement that read masked data (or that the analysis could not
   * see into). Until then, a relation the catalog cannot see (created in the open transaction)
   * cannot hold masked data, so its columns are not masked; after it, they are (fail closed).
   */
  private readMasked = false
  /** Whether the session had read masked data before each admitted statement (whole-row composites). */
  private readonly readBefore = new WeakMap<Stmt, boolean>()
  /** The session's client_encoding, as the server reports it: whole-row values are read as UTF-8 only. */
  private clientEncoding: string | undefined
  /** Cursors DECLAREd in this session (by their analysed statement): whether their query reads masked data. */
  private readonly cursors = new Map<string, boolean>()
  /** Routines this session created, renamed or moved (`definedRoutine`): user code whatever their name. */
  private readonly defined = new Set<string>()

  constructor(
    private readonly catalog: Catalog,
    /** What a DECLAREd cursor's rows derive from, for FETCH. */
    private readonly cursorOutputs: (name: string) => OutputItem[] | undefined,
    /** The session's parses: policy's analysis of the same text already parsed it. */
    private readonly parses?: PgParses,
  ) {}

  /**
   * Which outputs of each statement in `sql` derive from a masked column of `plan`; a routine that
   * is not a built-in may read masked tables, so a statement running one reads masked data.
   */
  analyze(sql: string, plan: MaskPlan): Promise<StatementAnalysis[] | undefined> {
    return this.catalog.analyze(sql, this.matcher(plan), this.defined, this.parses)
  }

  /** The columns of the views among `rels` that derive from a column the plan masks (catalog.ts). */
  maskedViewColumns(rels: Array<{schema?: string; table: string}>, plan: MaskPlan): Promise<string[]> {
    return this.catalog.maskedViewColumns(rels, this.matcher(plan))
  }

  /**
   * Whether the server's text about this statement (errors, notices, reported settings, function
   * results) may echo masked data: it reads a masked column, or the engine cannot tell (the text
   * did not parse, or a statement is opaque to the analysis, or no statement is known at all).
   * Only a plan with column patterns makes text sensitive; value detectors run regardless.
   */
  textSensitive(stmt: Stmt | undefined, plan: MaskPlan = planOf(stmt?.verdict)): boolean {
    if (this.matcher(plan).empty) return false
    if (!stmt) return true
    if (stmt.verdict.effect !== 'allow') return false
    if (stmt.analysis === undefined) return true
    return stmt.analysis.some((a) => a.readsMasked !== undefined || opaque(a) || (a.kind === 'fetch' && this.cursors.get(a.cursor ?? '') !== false))
  }

  /** A server message the client gets: ParameterStatus tells the client encoding. */
  serverMessage(f: Frame): void {
    if (f.type !== B.ParameterStatus) return
    const s = decodeParameterStatus(f)
    if (s?.name === 'client_encoding') this.clientEncoding = s.value
  }

  /** An allowed statement is about to run: remember whether it reads masked data. */
  admitted(stmt: Stmt): void {
    this.readBefore.set(stmt, this.readMasked)
    if (this.textSensitive(stmt)) this.readMasked = true
    for (const a of stmt.analysis ?? []) {
      if (a.defines) this.defined.add(a.defines)
      // FETCH and MOVE run the cursor's query: its errors are as sensitive as the DECLARE's.
      if (a.kind === 'declare' && a.cursor !== undefined) this.cursors.set(a.cursor, a.readsMasked !== undefined)
    }
  }

  /** The mask key for a column whose relation the catalog cannot resolve. */
  private unresolved(): string | undefined {
    return this.readMasked ? 'column:unresolved' : undefined
  }

  /** The masker for the current result of a simple Query: its `index`-th statement's. */
  forQuery(stmt: Stmt, index: number, fields: FieldDescription[], counts: MaskCounts): Promise<RowMasker | undefined> {
    const a = stmt.analysis?.[index]
    const before = this.readBefore.get(stmt) !== false || (stmt.analysis ?? []).slice(0, index).some((x) => x.readsMasked !== undefined || opaque(x))
    return this.rowMasker(fields, stmt.verdict, a, this.outputsOf(a), stmt.analysis === undefined, counts, before)
  }

  /**
   * The masker for an Execute's rows, from its portal's description, or else its statement's with
   * the Bind's result formats applied. Undefined when neither was described (nothing to mask by).
   */
  forExecute(portal: Portal | undefined, counts: MaskCounts): Promise<RowMasker | undefined> {
    const stmt = portal?.stmt
    const desc = portal?.rowDesc ?? stmt?.rowDesc
    if (!portal || !desc) return Promise.resolve(undefined)
    const formats = portal.rowDesc ? undefined : portal.resultFormats
    const fields = formats ? desc.map((d, i) => ({...d, format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : (formats[i] ?? 0)})) : desc
    const a = stmt?.analysis?.[0]
    const outputs = portal.cursorOutputs ?? this.outputsOf(a)
    return this.rowMasker(fields, stmt?.verdict, a, outputs, stmt !== undefined && stmt.analysis === undefined, counts, !stmt || this.readBefore.get(stmt) !== false)
  }

  /**
   * The masker for COPY TO data (CopyOutResponse), for the `index`-th statement of `stmt`: columns
   * by the COPY's query outputs, or by the copied table's columns in the catalog.
   */
  async forCopyOut(f: Frame, stmt: Stmt | undefined, index: number, counts: MaskCounts): Promise<CopyMasker | undefined> {
    const plan = planOf(stmt?.verdict)
    if (planIsEmpty(plan)) return undefined
    const {format, columnFormats} = decodeCopyResponse(f)
    const a = stmt?.analysis?.[index]
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
        const rels = await this.catalog.relationsByName(copy.relation.schema, copy.relation.table, matcher)
        if (!rels) keys.fill('column:unresolved')
        else if (rels.length === 0) keys.fill(this.unresolved())
        else {
          // Several relations of that name (other schemas): mask what any of them would.
          for (const rel of rels) {
            const names = copy.columns ?? [...rel.columns.entries()].sort((x, y) => x[0] - y[0]).map((e) => e[1])
            for (let i = 0; i < n; i++) {
              const name = names[i]
              const hit = name ? matcher.match({schema: rel.schema, table: rel.table, column: name}) : undefined
              if (hit) keys[i] ??= `column:${rel.schema}.${rel.table}.${name}`
            }
          }
        }
      }
    }
    const fmt = format === 1 ? 'binary' : (copy?.format ?? 'text')
    return new CopyMasker({format: fmt, delimiter: copy?.delimiter ?? '\t', maskKeys: keys, entities: plan.entities, counts})
  }

  private matcher(plan: MaskPlan): ColumnMatcher {
    return this.matchers.get(plan.columns)
  }

  /** A FETCH's rows derive from its cursor's query; any other statement's from its own outputs. */
  private outputsOf(a: StatementAnalysis | undefined): OutputItem[] | undefined {
    return a?.kind === 'fetch' ? this.cursorOutputs(a.cursor ?? '') : a?.outputs
  }

  private async rowMasker(
    fields: FieldDescription[],
    verdict: Verdict | undefined,
    analysis: StatementAnalysis | undefined,
    outputs: OutputItem[] | undefined,
    unparsed: boolean,
    counts: MaskCounts,
    /** The session read masked data before this statement (or in it, before this result). */
    readBefore: boolean,
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
          if (rel === undefined) {
            cols[i].maskKey = 'column:unresolved' // the catalog failed: fail closed
            continue
          }
          const name = rel === 'missing' ? undefined : rel.columns.get(fd.attnum)
          if (rel === 'missing' || !name) {
            // Created (or the column added) in the open transaction, invisible to the catalog.
            cols[i].maskKey = this.unresolved()
            continue
          }
          cols[i].maskKey = columnKey(rel, fd.attnum, name, matcher)
          continue
        }
        if (fd.tableOid === 0 || fd.attnum === 0) {
          // Computed column, or a table's whole row (`select t from t`: attribute 0): tainted when
          // its expression reads a masked column.
          if (unparsed) cols[i].maskKey = 'derived:unparsed-statement'
          else if (analysis && opaque(analysis)) cols[i].maskKey = `derived:opaque-${analysis.type}`
          else if (outputs) {
            const o = outputAt(outputs, i, fields.length)
            if (o === 'unknown') {
              if (analysis?.readsMasked) cols[i].maskKey = `derived:${analysis.readsMasked}`
            } else {
              if (o.source) cols[i].maskKey = `derived:${o.source}`
              if (o.row) await this.wholeRow(cols[i], o.row, fd, matcher, readBefore)
            }
          } else if (analysis?.kind === 'fetch') cols[i].maskKey = 'derived:unknown-cursor' // not DECLAREd in SQL hoop read (a function's refcursor)
          else if (analysis?.readsMasked) cols[i].maskKey = `derived:${analysis.readsMasked}`
        }
      }
    }
    const m = new RowMasker(cols, plan.entities, counts)
    return m.active ? m : undefined
  }

  /**
   * A column that is a whole row of a relation (row_to_json(t), ROW(t.*)...). When the catalog
   * knows that relation for certain, the value is masked if any of its columns is (a view's
   * derived ones included), and, in a form whose text the masker reads (text format, UTF-8, the
   * type the form makes), only those fields are. A composite's fields are read by position, which
   * a same-named relation made in the open transaction would shift: once the session read masked
   * data (such a relation could hold a copy), composites are masked whole again.
   */
  private async wholeRow(col: ColumnInfo, row: WholeRow, fd: FieldDescription, matcher: ColumnMatcher, readBefore: boolean): Promise<void> {
    const rels = await this.catalog.relationsByName(row.rel.schema, row.rel.table, matcher)
    // Unknown, or several relations of that name: what the taint analysis said stands.
    if (rels?.length !== 1) return
    const rel = rels[0]
    const byNum = [...rel.columns.entries()].sort((a, b) => a[0] - b[0])
    const masked = new Map<string, string>()
    for (const [attnum, name] of byNum) {
      const key = columnKey(rel, attnum, name, matcher)
      if (key) masked.set(name, key)
    }
    if (masked.size) col.maskKey ??= `derived:${rel.schema}.${rel.table}.*`
    if (!col.maskKey || fd.format !== 0 || this.clientEncoding !== 'UTF8') return
    const json = fd.typeOid === JSON_OID || fd.typeOid === JSONB_OID
    if (row.form === 'json' ? !json : json || readBefore) return
    const shape: RowShape = {form: row.form, names: byNum.map((e) => e[1]), masked}
    col.row = shape
  }
}

/** The report key of a relation's column when it is masked: by pattern, or a view's column derived from a masked one. */
function columnKey(rel: RelInfo, attnum: number, name: string, matcher: ColumnMatcher): string | undefined {
  if (matcher.match({schema: rel.schema, table: rel.table, column: name})) return `column:${rel.schema}.${rel.table}.${name}`
  if (rel.view && !rel.viewOutputs) return 'derived:unanalysed-view' // fail closed
  const src = rel.viewOutputs ? outputAt(rel.viewOutputs, attnum - 1, rel.viewOutputs.length) : undefined
  return src && src !== 'unknown' && src.source ? `derived:${src.source}` : undefined
}
