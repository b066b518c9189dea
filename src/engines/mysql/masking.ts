// Masking of MySQL result rows. For each result set of an allowed statement, from its mask plan,
// the taint of its outputs (src/sql/mysql-taint.ts, through views: views.ts) and the result's column definitions, builds
// the function that rewrites one row, text or binary protocol: masked columns become '****' (NULL
// for non-string types), value detectors rewrite PII in any other text cell, and a row that does
// not match its column definitions is replaced by NULLs (fail closed). A masked JSON cell becomes the
// JSON string "****", so it still parses.
import {ColumnMatchers, type ColumnMatcher} from '../../masking/columns.js'
import {candidates, entityBits, maskCandidates, maskValue} from '../../masking/detectors.js'
import {addCount, planIsEmpty, type MaskCounts, type MaskEntity, type MaskPlan} from '../../masking/types.js'
import {STRING_TYPES, TYPE} from '../../protocol/mysql/constants.js'
import {decodeErr, encodeErr, type ColumnDefinition} from '../../protocol/mysql/messages.js'
import {nullRow, rewriteBinaryRow, rewriteTextRow, RowShapeError} from '../../protocol/mysql/rows.js'
import type {MysqlSession} from '../../sql/mysql-session.js'
import {procedureReadsMasked, procedureStatements, type MysqlOutputAnalysis} from '../../sql/mysql-taint.js'
import {outputAt} from '../../sql/taint.js'
import type {Judged} from '../gate.js'
import type {MysqlCatalog} from './catalog.js'
import {maskedViewColumns, originViews, taintThroughViews, type ViewTaint} from './views.js'

/** A judged statement and, when its plan masks a column, what each of its outputs derives from. */
export interface Stmt extends Judged {
  /** Output taint per statement of the text; 'unparsed' when the text did not parse; absent when no column is masked. */
  outputs?: MysqlOutputAnalysis[] | 'unparsed'
  /** The server's text about it (ERR messages, its warnings) may echo masked data (see `textSensitive`). */
  sensitive?: boolean
  /** The text is one CALL of a procedure whose body and arguments read no masked column (`callReadsNoMask`). */
  cleanCall?: boolean
  /** The plan's column patterns plus the columns of views that derive from masked ones (views.ts). */
  matcher?: ColumnMatcher
}

/** `CALL [schema.]name[(arguments)]`, names plain or in backticks. */
const CALL_RE = /^\s*CALL\s+(?:(\w+|`[^`]+`)\s*\.\s*)?(\w+|`[^`]+`)\s*(?:\(([\s\S]*)\))?\s*;?\s*$/i

/** What replaces the message of an ERR packet that may echo masked data; code and SQLSTATE are kept. */
export const REDACTED_ERROR_TEXT = 'hoop: redacted (the statement reads masked data)'

/**
 * Whether the server's text about a statement may echo masked data: under a plan with column
 * patterns, when it reads a masked column, did not parse, or was not walked by the analysis
 * (CALL/EXECUTE, SET, SHOW, routines). Value detectors run regardless.
 */
export function textSensitive(stmt: Stmt): boolean {
  if (stmt.verdict.effect !== 'allow' || stmt.verdict.mask.columns.length === 0) return false
  if (stmt.outputs === undefined || stmt.outputs === 'unparsed') return true
  return stmt.outputs.some((a) => a.readsMasked !== undefined || a.kind === 'opaque' || !a.seen)
}

/** An ERR payload as the client may see it: redacted when sensitive, detectors otherwise. */
export function guardErr(payload: Buffer, stmt: Stmt | undefined, counts: MaskCounts): Buffer {
  if (!stmt || stmt.verdict.effect !== 'allow') return payload
  const e = decodeErr(payload)
  const withState = payload.length > 3 && payload[3] === 0x23
  if (stmt.sensitive) {
    if (e.message === REDACTED_ERROR_TEXT) return payload
    addCount(counts, 'message:error')
    return encodeErr({...e, message: REDACTED_ERROR_TEXT}, withState)
  }
  const entities = new Set<MaskEntity>(stmt.verdict.mask.entities)
  const found = entities.size > 0 ? maskValue(e.message, entities) : undefined
  if (!found) return payload
  for (const [entity, c] of Object.entries(found.found)) addCount(counts, `entity:${entity}`, c)
  return encodeErr({...e, message: found.text}, withState)
}

/** Rewrites one row packet's payload. */
export type RowMaskFn = (payload: Buffer) => Buffer

const STARS = Buffer.from('****')
/** A masked JSON value stays JSON (a string), so drivers that parse JSON columns do not fail on it. */
const JSON_STARS = Buffer.from('"****"')
/** Text-protocol types whose values cannot carry the entities the detectors look for. */
const NO_DETECT_TYPES: ReadonlySet<number> = new Set([TYPE.TINY, TYPE.SHORT, TYPE.LONG, TYPE.INT24, TYPE.FLOAT, TYPE.DOUBLE, TYPE.YEAR, TYPE.NULL, TYPE.DATE, TYPE.NEWDATE, TYPE.TIME, TYPE.TIME2, TYPE.DATETIME, TYPE.DATETIME2, TYPE.TIMESTAMP, TYPE.TIMESTAMP2, TYPE.BIT, TYPE.GEOMETRY])

/** The masking of one session: one column matcher per pattern list (masking/columns.ts). */
export class ResultMasking {
  private readonly matchers = new ColumnMatchers()

  /** `session`: how the session's statements are lexed (sql_mode), as policy's analysis reads them. */
  constructor(private readonly session?: MysqlSession) {}

  /** Which outputs of each statement of `sql` derive from a column the plan masks, directly or through a view. */
  taint(sql: string, plan: MaskPlan, catalog: MysqlCatalog): Promise<ViewTaint> {
    return taintThroughViews(sql, this.matcher(plan), catalog, this.session)
  }

  /** The columns of the views among `rels` that derive from a column the plan masks (views.ts). */
  maskedViewColumns(rels: Array<{schema?: string; table: string}>, plan: MaskPlan, catalog: MysqlCatalog): Promise<string[]> {
    return maskedViewColumns(rels, this.matcher(plan), catalog)
  }

  /**
   * Before a result's rows are masked: when the statement's text does not show where its columns
   * come from (CALL, EXECUTE, an unparsed text) or it was prepared (a view it reads may have been
   * replaced since), the views among the columns' origins are read from the catalog now, so that a
   * view column derived from a masked one is masked by origin.
   */
  async resolveOrigins(defs: readonly ColumnDefinition[], stmt: Stmt, binary: boolean, catalog: MysqlCatalog): Promise<void> {
    const v = stmt.verdict
    if (v.effect !== 'allow' || v.mask.columns.length === 0) return
    const hidden = !Array.isArray(stmt.outputs) || stmt.outputs.some((a) => a.kind === 'opaque')
    if (hidden || binary) stmt.matcher = await originViews(defs, stmt.matcher ?? this.matcher(v.mask), catalog)
  }

  /**
   * Whether `sql`, a single CALL, provably reads no masked column: the body of every procedure its
   * name can mean is read in full and reads none (`procedureReadsMasked`), its arguments read none,
   * and neither calls a stored function (code hoop does not follow). Then its result sets' computed
   * columns are not masked. Anything else, or a failed look-up, is false (fail closed).
   */
  async callReadsNoMask(sql: string, stmt: Stmt, catalog: MysqlCatalog): Promise<boolean> {
    const v = stmt.verdict
    if (v.effect !== 'allow' || v.mask.columns.length === 0 || !Array.isArray(stmt.outputs) || stmt.outputs.length !== 1) return false
    const m = CALL_RE.exec(sql)
    if (!m) return false
    const unquote = (s: string | undefined) => s?.replace(/^`|`$/g, '')
    const routines = await catalog.forCall(unquote(m[1]), unquote(m[2]) as string)
    if (!routines || routines.bodies.length === 0) return false
    const matcher = this.matcher(v.mask)
    const args = m[3]?.trim() ?? ''
    if (args) {
      const a = (await taintThroughViews(`SELECT ${args}`, matcher, catalog, this.session)).outputs
      if (a === 'unparsed' || a.length !== 1 || !a[0].seen || a[0].readsMasked !== undefined) return false
    }
    const texts = [args, ...routines.bodies]
    if (texts.some((t) => t === null || callsAny(t, routines.functions))) return false
    for (const body of routines.bodies as string[]) {
      // The views a body reads count as they would in a query.
      const viewAware = (await taintThroughViews(procedureStatements(body), matcher, catalog, this.session)).matcher
      if (procedureReadsMasked(body, viewAware, this.session)) return false
    }
    return true
  }

  private matcher(plan: MaskPlan): ColumnMatcher {
    return this.matchers.get(plan.columns)
  }

  /**
   * Which cells of result set `index` to mask. A column with an origin (org_table, org_name) is
   * matched by origin, so aliases do not unmask; a computed column is masked when the statement's
   * parse tree derives it from a masked column (taint); value detectors run on every text cell.
   * Returns undefined when nothing can be masked (rows pass through untouched).
   */
  rowMasker(defs: ColumnDefinition[], stmt: Stmt, index: number, binary: boolean, counts: MaskCounts, afterSensitive = false): RowMaskFn | undefined {
    const plan = stmt.verdict.effect === 'allow' ? stmt.verdict.mask : undefined
    if (!plan || planIsEmpty(plan)) return undefined
    const matcher = stmt.matcher ?? this.matcher(plan)
    const keys: (string | undefined)[] = defs.map(() => undefined)
    if (!matcher.empty) {
      const analysis = stmt.outputs === 'unparsed' ? undefined : stmt.outputs?.[index]
      const n = defs.length
      for (let i = 0; i < n; i++) {
        const d = defs[i]
        const hasOrigin = d.orgTable !== '' && d.orgName !== ''
        if (hasOrigin) {
          const hit = matcher.match({schema: d.schema || undefined, table: d.orgTable, column: d.orgName})
          if (hit) {
            keys[i] = `column:${d.schema ? d.schema + '.' : ''}${d.orgTable}.${d.orgName}`
            continue
          }
        }
        if (stmt.cleanCall) continue // every result set comes from a procedure body that reads no masked column
        if (stmt.outputs === 'unparsed' || !analysis || analysis.kind === 'opaque') {
          // We cannot see what computed this column: mask it (fail closed).
          if (!hasOrigin) keys[i] = stmt.outputs === 'unparsed' ? 'derived:unparsed-statement' : 'derived:opaque-statement'
          continue
        }
        if (analysis.kind === 'other') {
          // SHOW WARNINGS / SHOW ERRORS after a statement whose text is sensitive: their messages
          // quote the values that statement read.
          if (!hasOrigin && afterSensitive) keys[i] = 'derived:diagnostics-of-masked-statement'
          continue
        }
        if (!analysis.outputs) continue
        const o = outputAt(analysis.outputs, i, n)
        if (o === 'unknown') {
          if (!hasOrigin && analysis.readsMasked) keys[i] = `derived:${analysis.readsMasked}`
        } else if (o.source) keys[i] = `derived:${o.source}`
      }
    }
    const entities = new Set<MaskEntity>(plan.entities)
    const detect = entities.size > 0
    const want = entityBits(entities)
    if (!detect && keys.every((k) => k === undefined)) return undefined
    const types = defs.map((d) => d.type)
    const textual = defs.map((d) => STRING_TYPES.has(d.type))
    // MySQL's JSON type, or MariaDB's JSON (a BLOB) marked by extended metadata.
    const stars = defs.map((d) => (d.type === TYPE.JSON || d.formatName === 'json' ? JSON_STARS : STARS))
    const rewrite = (i: number, value: Buffer | null): Buffer | null | undefined => {
      if (value === null) return undefined
      const key = keys[i]
      if (key) {
        addCount(counts, key)
        return textual[i] ? stars[i] : null
      }
      if (!detect) return undefined
      if (binary ? !textual[i] : NO_DETECT_TYPES.has(types[i])) return undefined
      const bits = candidates(value, 0, value.length) & want
      if (bits === 0) return undefined
      const found = maskCandidates(value.toString('utf8'), bits)
      if (!found) return undefined
      for (const [entity, c] of Object.entries(found.found)) addCount(counts, `entity:${entity}`, c)
      return textual[i] ? Buffer.from(found.text, 'utf8') : null
    }
    return (payload: Buffer) => {
      try {
        return binary ? rewriteBinaryRow(payload, types, rewrite) : rewriteTextRow(payload, defs.length, rewrite)
      } catch (err) {
        if (!(err instanceof RowShapeError)) throw err
        addCount(counts, 'row:unparsable')
        return nullRow(defs.length, binary)
      }
    }
  }
}

/** Does `text` call any of these functions (a name followed by `(`, anywhere, strings included: fail closed)? */
function callsAny(text: string, functions: readonly string[]): boolean {
  if (functions.length === 0) return false
  const names = functions.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')
  return new RegExp(`(?:^|[^\\w$])(?:${names})\\s*\\(`, 'i').test(text)
}
