// PostgreSQL statement analysis: SQL text -> the protocol-neutral Operation that policy judges.
// Uses libpg-query (the real PostgreSQL parser compiled to WASM), so rewording (case, comments,
// whitespace, quoting) cannot change what a statement is. The walk is deliberately conservative:
// anything that can change data counts as a write, and every statement of a multi-statement
// string, every data-modifying CTE, every PREPARE body and every EXPLAIN ANALYZE target is
// reported so that a rule sees it.
import {parsePlPgSQLSync, parseSync} from 'libpg-query'
import type {ColumnRef, Operation, Statement, StatementKind, Store, StoreFlow} from '../policy/types.js'
import {errorMessage} from '../shared/errors.js'
import {baseName, isStatisticsFunction, isStatisticsRelation, regclassName, relationReader, sqlTextArgument, storingFunction, stringLiteral} from './pg-functions.js'
import {parsePg, pgParserReady, type PgParses} from './pg-parser.js'
import {forgetPrepared, preparedStatements, rememberPrepared} from './prepared.js'
import {statementFlows} from './pg-taint.js'

export interface AnalyzeOptions {
  /**
   * Prepared statements of the session, by name. PREPARE adds to it, DEALLOCATE and DISCARD ALL
   * retire entries; EXECUTE of a known name is judged as the prepared statement, EXECUTE of a name
   * never prepared through hoop cannot be judged (`unseen`). Engines keep one map per client
   * session (and add statements prepared with protocol Parse with `rememberPrepared`).
   */
  prepared?: Map<string, Statement[]>
  /** The session's parses (pg-parser.ts), shared with masking's taint analysis: one parse per text. */
  parses?: PgParses
}

/** Maximum SQL text analyzed; longer text is reported unparsable (and judged by the default). */
export const MAX_SQL_LENGTH = 1 << 20

export {forgetPrepared, preparedStatements, rememberPrepared}

/**
 * Analyzes SQL text. Requires `await loadPgParser()` once beforehand. Never throws: text that does
 * not parse, or that cannot be analysed for any reason (a tree too deep to walk...), is reported
 * `unparsable` and judged by policy's unparsable default.
 */
export function analyzePostgres(sql: string, opts: AnalyzeOptions = {}): Operation {
  if (!pgParserReady()) throw new Error('analyzePostgres called before loadPgParser() resolved')
  if (sql.length > MAX_SQL_LENGTH) {
    return {engine: 'postgres', statements: [], unparsable: {reason: `statement text of ${sql.length} characters exceeds the analysis limit of ${MAX_SQL_LENGTH}`}}
  }
  const tree = opts.parses ? opts.parses.get(sql) : parsePg(sql)
  if ('error' in tree) return {engine: 'postgres', statements: [], unparsable: {reason: tree.error}}
  const out: Statement[] = []
  const ctx: Ctx = {prepared: opts.prepared ?? new Map<string, Statement[]>(), textDepth: 0}
  try {
    tree.stmts.forEach((raw, index) => {
      if (raw.stmt) analyzeTop(raw.stmt, index, out, ctx, 0)
    })
  } catch (err) {
    // A tree too deep to walk (or any other failure) is judged like text that cannot be parsed,
    // never let through unseen and never thrown at the engine.
    return {engine: 'postgres', statements: [], unparsable: {reason: `statement too complex to analyze: ${errorMessage(err)}`}}
  }
  return {engine: 'postgres', statements: out}
}

// ---------------------------------------------------------------------------------------------
// The parse tree is JSON: a node is {TypeName: {...fields}}; some fields hold bare structs
// (e.g. DeleteStmt.relation is a RangeVar without the wrapper).

type Node = Record<string, unknown>
type Fields = Record<string, unknown>

const DATA_MODIFYING = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'])

/**
 * Functions that change state even when called from a SELECT. (set_config is judged as the SET it
 * is, see judgeCall: a write only when it takes a session out of read-only.)
 */
const WRITING_FUNCTIONS = new Set([
  'nextval', 'setval', 'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile',
  'pg_switch_wal', 'pg_create_restore_point', 'pg_promote', 'pg_logical_emit_message', 'lo_import', 'lo_export',
  'lo_unlink', 'lo_create', 'lo_creat', 'lo_from_bytea', 'lo_put', 'lo_truncate', 'dblink_exec', 'dblink',
  'pg_file_write', 'pg_file_unlink', 'pg_file_rename', 'pg_file_sync', 'pg_stat_reset', 'pg_create_logical_replication_slot',
  'pg_create_physical_replication_slot', 'pg_drop_replication_slot', 'pg_replication_origin_create',
])

/** Commands that neither read tables nor write anything. Anything not known counts as a write. */
const HARMLESS_OTHER: Record<string, string> = {
  DeallocateStmt: 'DEALLOCATE',
  DiscardStmt: 'DISCARD',
  ClosePortalStmt: 'CLOSE',
  FetchStmt: 'FETCH',
}

const COMMAND_NAMES: Record<string, string> = {
  CreateStmt: 'CREATE TABLE',
  IndexStmt: 'CREATE INDEX',
  ViewStmt: 'CREATE VIEW',
  RuleStmt: 'CREATE RULE',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateSeqStmt: 'CREATE SEQUENCE',
  CreatedbStmt: 'CREATE DATABASE',
  DropdbStmt: 'DROP DATABASE',
  CreatePLangStmt: 'CREATE LANGUAGE',
  CreateFdwStmt: 'CREATE FOREIGN DATA WRAPPER',
  CreateForeignServerStmt: 'CREATE SERVER',
  CreateForeignTableStmt: 'CREATE FOREIGN TABLE',
  CompositeTypeStmt: 'CREATE TYPE',
  CreateEnumStmt: 'CREATE TYPE',
  DefineStmt: 'CREATE',
  CommentStmt: 'COMMENT',
  AlterSystemStmt: 'ALTER SYSTEM',
  LoadStmt: 'LOAD',
  CheckPointStmt: 'CHECKPOINT',
  ReindexStmt: 'REINDEX',
  ClusterStmt: 'CLUSTER',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  LockStmt: 'LOCK TABLE',
  ListenStmt: 'LISTEN',
  UnlistenStmt: 'UNLISTEN',
  NotifyStmt: 'NOTIFY',
  VariableShowStmt: 'SHOW',
  ConstraintsSetStmt: 'SET CONSTRAINTS',
  SecLabelStmt: 'SECURITY LABEL',
  ReassignOwnedStmt: 'REASSIGN OWNED',
  DropOwnedStmt: 'DROP OWNED',
  ImportForeignSchemaStmt: 'IMPORT FOREIGN SCHEMA',
}

const TRANSACTION_COMMANDS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'START TRANSACTION',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK TO',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION',
  TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED',
  TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
}

const MAX_DEPTH = 8

function unwrap(node: Node): [string, Fields] {
  const type = Object.keys(node)[0] ?? ''
  const fields = node[type]
  return [type, isRecord(fields) ? fields : {}]
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isTypedNode(v: Record<string, unknown>): boolean {
  const keys = Object.keys(v)
  return keys.length === 1 && /^[A-Z]/.test(keys[0]) && isRecord(v[keys[0]])
}

function words(type: string): string {
  return type
    .replace(/Stmt$/, '')
    .split(/(?=[A-Z])/)
    .join(' ')
    .toUpperCase()
}

function objectTypeName(objtype: unknown): string {
  const t = String(objtype ?? '').replace(/^OBJECT_/, '')
  if (t === 'MATVIEW') return 'MATERIALIZED VIEW'
  return t.replace(/_/g, ' ')
}

function qualifiedName(items: unknown): string | undefined {
  if (!Array.isArray(items)) return undefined
  const parts = items.map((i) => (isRecord(i) && isRecord(i.String) ? String(i.String.sval ?? '') : '')).filter(Boolean)
  return parts.length > 0 ? parts.join('.') : undefined
}

/** What a walk of one statement finds. */
interface Findings {
  tables: Set<string>
  functions: Set<string>
  nestedWrites: Node[]
  /** Every function call (its FuncCall fields), for the calls judged on their arguments. */
  calls: Fields[]
  locksRows: boolean
}

/**
 * Walks a subtree collecting tables, functions, row locks and nested data-modifying statements.
 * `ctes` holds the CTE names in scope, so that `FROM d` (a CTE) is not reported as a table.
 */
function walk(value: unknown, f: Findings, ctes: ReadonlySet<string>, top: boolean): void {
  if (Array.isArray(value)) {
    for (const v of value) walk(v, f, ctes, false)
    return
  }
  if (!isRecord(value)) return
  if (isTypedNode(value)) {
    const [type, fields] = unwrap(value)
    if (!top && DATA_MODIFYING.has(type)) f.nestedWrites.push(value)
    walkFields(fields, f, ctes)
    return
  }
  walkFields(value, f, ctes)
}

function walkFields(fields: Fields, f: Findings, ctes: ReadonlySet<string>): void {
  // A RangeVar, wrapped or bare.
  if (typeof fields.relname === 'string' && 'relpersistence' in fields) {
    const schema = typeof fields.schemaname === 'string' ? fields.schemaname : undefined
    if (schema || !ctes.has(fields.relname)) f.tables.add(schema ? `${schema}.${fields.relname}` : fields.relname)
  }
  // A FuncCall, wrapped or bare (CallStmt.funccall is bare).
  if (Array.isArray(fields.funcname) && 'funcformat' in fields) {
    const name = qualifiedName(fields.funcname)
    if (name) {
      f.functions.add(name.toLowerCase())
      f.calls.push(fields)
    }
  }
  if (Array.isArray(fields.lockingClause) && fields.lockingClause.length > 0) f.locksRows = true
  let scope = ctes
  const withClause = fields.withClause
  if (isRecord(withClause) && Array.isArray(withClause.ctes)) {
    const names = new Set(ctes)
    for (const c of withClause.ctes) {
      if (isRecord(c) && isRecord(c.CommonTableExpr) && typeof c.CommonTableExpr.ctename === 'string') names.add(c.CommonTableExpr.ctename)
    }
    scope = names
  }
  for (const [key, v] of Object.entries(fields)) {
    if (key === 'location' || typeof v !== 'object' || v === null) continue
    walk(v, f, scope, false)
  }
}

function findings(node: Node): Findings {
  const f: Findings = {tables: new Set(), functions: new Set(), nestedWrites: [], calls: [], locksRows: false}
  walk(node, f, new Set(), true)
  return f
}

// ---------------------------------------------------------------------------------------------
// Values as PostgreSQL reads them.

/**
 * An EXPLAIN option's boolean as PostgreSQL's defGetBoolean reads it: no value, `true`/`on` and
 * the integer 1 are true; `false`/`off` and 0 false (case-insensitive, quoted or not); anything
 * else (yes, no, 2, 1.0...) is an error, returned as undefined.
 */
function defBoolean(arg: unknown): boolean | undefined {
  if (!isRecord(arg)) return true
  if (isRecord(arg.Integer)) {
    const v = arg.Integer.ival ?? 0 // protobuf JSON omits 0
    return v === 0 ? false : v === 1 ? true : undefined
  }
  if (isRecord(arg.Boolean)) return arg.Boolean.boolval === true
  if (!isRecord(arg.String)) return undefined
  switch (String(arg.String.sval ?? '').toLowerCase()) {
    case 'true':
    case 'on':
      return true
    case 'false':
    case 'off':
      return false
    default:
      return undefined
  }
}

/**
 * Does this EXPLAIN run its statement? PostgreSQL applies its options in order, so the last
 * ANALYZE wins (`EXPLAIN (ANALYZE false, ANALYZE)` runs it). A value PostgreSQL rejects makes the
 * whole EXPLAIN fail; it is judged as if it ran (the stricter reading, should a server accept it).
 */
function explainRuns(options: unknown): boolean {
  let runs = false
  if (!Array.isArray(options)) return false
  for (const o of options) {
    if (!isRecord(o) || !isRecord(o.DefElem) || String(o.DefElem.defname ?? '').toLowerCase() !== 'analyze') continue
    const v = defBoolean(o.DefElem.arg)
    if (v === undefined) return true
    runs = v
  }
  return runs
}

/**
 * A run-time setting's boolean as PostgreSQL's parse_bool reads it: true, false, yes, no (or any
 * unique prefix of them), on, off (at least "of"), 1, 0; case-insensitive. Undefined otherwise.
 */
export function gucBoolean(text: string): boolean | undefined {
  const v = text.toLowerCase()
  if (v.length === 0) return undefined
  const prefixOf = (word: string) => v.length <= word.length && word.startsWith(v)
  if (prefixOf('true') || prefixOf('yes')) return true
  if (prefixOf('false')) return false
  if (v === 'n' || v === 'no') return false
  if (v === 'on') return true
  if (v === 'of' || v === 'off') return false
  if (v === '1') return true
  if (v === '0') return false
  return undefined
}

/** The text of a SET argument (A_Const string, integer, float or boolean); undefined for anything else. */
function constText(arg: unknown): string | undefined {
  if (!isRecord(arg)) return undefined
  if (isRecord(arg.TypeCast)) return constText(arg.TypeCast.arg)
  const c = arg.A_Const
  if (!isRecord(c)) return undefined
  if (isRecord(c.sval)) return String(c.sval.sval ?? '')
  if (isRecord(c.ival)) return String(c.ival.ival ?? 0)
  if (isRecord(c.fval)) return String(c.fval.fval ?? '0')
  if (isRecord(c.boolval)) return c.boolval.boolval === true ? 'true' : 'false'
  return undefined
}

/**
 * Client encodings whose multibyte characters may contain the bytes of `\` and other ASCII
 * characters (PostgreSQL's client-only encodings). hoop reads SQL text as UTF-8, so in one of these
 * the server could split strings where hoop does not: a session in one cannot be judged.
 */
const CLIENT_ONLY_ENCODINGS = new Set([
  'sjis', 'shiftjis', 'mskanji', 'win932', 'windows932', 'shiftjis2004', 'big5', 'win950', 'windows950',
  'gbk', 'win936', 'windows936', 'uhc', 'win949', 'windows949', 'johab', 'gb18030',
])

function isClientOnlyEncoding(value: string): boolean {
  return CLIENT_ONLY_ENCODINGS.has(value.toLowerCase().replace(/[^a-z0-9]/g, ''))
}

/** What changing a setting means for policy, beyond its name. */
interface SettingEffect {
  /** Takes a read-only session out of read-only. */
  writes: boolean
  /** Puts the session in a mode in which hoop cannot read later statements as the server does. */
  unseen?: string
}

/**
 * Judges `name = value` (value undefined: set to its default, or to something computed at run
 * time when `computed`). Turning read-only off is how a read-only session would escape; turning
 * standard_conforming_strings off or choosing a client-only encoding would make the server read
 * later strings differently from hoop's parser.
 */
function settingEffect(name: string, value: string | undefined, computed: boolean): SettingEffect {
  const n = name.toLowerCase()
  if (n === 'default_transaction_read_only' || n === 'transaction_read_only') {
    return {writes: computed || value === undefined || gucBoolean(value) !== true}
  }
  if (n === 'standard_conforming_strings' && (computed || (value !== undefined && gucBoolean(value) !== true))) {
    return {writes: false, unseen: 'standard_conforming_strings off makes the server read backslashes in strings differently from hoop, so later statements could not be judged'}
  }
  if (n === 'client_encoding' && (computed || (value !== undefined && isClientOnlyEncoding(value)))) {
    return {writes: false, unseen: `client encoding ${value ?? '(computed)'} lets multibyte characters hide quotes and backslashes from hoop, so later statements could not be judged`}
  }
  return {writes: false}
}

/** BEGIN READ WRITE / SET TRANSACTION READ WRITE: transaction_read_only set to 0. */
function setsReadWrite(options: unknown): boolean {
  if (!Array.isArray(options)) return false
  return options.some((o) => {
    if (!isRecord(o) || !isRecord(o.DefElem) || o.DefElem.defname !== 'transaction_read_only') return false
    const c = isRecord(o.DefElem.arg) ? o.DefElem.arg.A_Const : undefined
    return isRecord(c) && isRecord(c.ival) && !c.ival.ival
  })
}

// ---------------------------------------------------------------------------------------------
// WHERE clauses: does a condition bound the rows of the target, or could it hold for every row?

interface Target {
  /** Names that qualify the target's columns: its alias, or its name (and schema.name). */
  names: Set<string>
  /** Unqualified column names belong to the target (no other relation is in scope). */
  unqualified: boolean
}

function targetOf(rel: unknown, unqualified: boolean): Target {
  const names = new Set<string>()
  if (isRecord(rel)) {
    const alias = isRecord(rel.alias) ? rel.alias.aliasname : undefined
    if (typeof alias === 'string') names.add(alias)
    else if (typeof rel.relname === 'string') {
      names.add(rel.relname)
      if (typeof rel.schemaname === 'string') names.add(`${rel.schemaname}.${rel.relname}`)
    }
  }
  return {names, unqualified}
}

/**
 * True when `cond` restricts the rows of the target by their own values. A condition that
 * references no column of the target is the same for every row (`1 = 1`, `true`, `'a' = 'a'`,
 * `random() < 2`, `EXISTS (SELECT 1 FROM other)`), so it bounds nothing; nor does `x = x`. AND
 * bounds when any part does, OR only when every part does. `WHERE CURRENT OF` bounds (one row).
 */
function restricts(cond: unknown, t: Target): boolean {
  if (!isRecord(cond)) return false
  const [type, fields] = unwrap(cond)
  switch (type) {
    case 'BoolExpr': {
      const args = Array.isArray(fields.args) ? fields.args : []
      if (fields.boolop === 'AND_EXPR') return args.some((a) => restricts(a, t))
      if (fields.boolop === 'OR_EXPR') return args.length > 0 && args.every((a) => restricts(a, t))
      return refersTo(args, t, new Set())
    }
    case 'A_Expr': {
      const op = Array.isArray(fields.name) ? qualifiedName(fields.name) : undefined
      const same = fields.lexpr !== undefined && sameExpression(fields.lexpr, fields.rexpr)
      if (same && (fields.kind === 'AEXPR_NOT_DISTINCT' || (fields.kind === 'AEXPR_OP' && (op === '=' || op === '>=' || op === '<=')))) return false
      return refersTo(cond, t, new Set())
    }
    case 'CurrentOfExpr':
      return true
    case 'A_Const':
      return false
    default:
      return refersTo(cond, t, new Set())
  }
}

function sameExpression(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, (k, v: unknown) => (k === 'location' ? undefined : v)) === JSON.stringify(b, (k, v: unknown) => (k === 'location' ? undefined : v))
}

/** Does the expression reference a column (or the whole row) of the target? `shadow`: target names hidden by a subquery's own FROM. */
function refersTo(value: unknown, t: Target, shadow: ReadonlySet<string>, inSubquery = false): boolean {
  if (Array.isArray(value)) return value.some((v) => refersTo(v, t, shadow, inSubquery))
  if (!isRecord(value)) return false
  if (isRecord(value.ColumnRef)) {
    const fields = Array.isArray(value.ColumnRef.fields) ? value.ColumnRef.fields : []
    const parts = fields.map((x) => (isRecord(x) && isRecord(x.String) ? String(x.String.sval ?? '') : '*'))
    const qual = parts.length >= 2 && parts[parts.length - 1] === '*' ? parts.slice(0, -1) : parts.slice(0, -1)
    if (qual.length === 0) {
      // An unqualified name: the target's when nothing else is in scope (a subquery has its own FROM).
      return t.unqualified && !inSubquery && parts[0] !== '*'
    }
    const q = qual.join('.')
    const last = qual[qual.length - 1]
    return (t.names.has(q) || t.names.has(last)) && !shadow.has(last)
  }
  if (isRecord(value.SelectStmt) || isRecord(value.SubLink)) {
    const sel = isRecord(value.SelectStmt) ? value.SelectStmt : undefined
    const hidden = new Set(shadow)
    if (sel) {
      for (const n of fromNames(sel.fromClause)) if (t.names.has(n)) hidden.add(n)
      return Object.entries(sel).some(([k, v]) => k !== 'location' && refersTo(v, t, hidden, true))
    }
  }
  return Object.entries(value).some(([k, v]) => k !== 'location' && typeof v === 'object' && refersTo(v, t, shadow, inSubquery))
}

/** Names (aliases, or relation names) a FROM list puts in scope. */
function fromNames(from: unknown): string[] {
  const out: string[] = []
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit)
    if (!isRecord(v)) return
    for (const [type, fields] of Object.entries(v)) {
      if (!isRecord(fields)) continue
      const alias = isRecord(fields.alias) ? fields.alias.aliasname : undefined
      if (typeof alias === 'string') out.push(alias)
      else if (type === 'RangeVar' && typeof fields.relname === 'string') out.push(fields.relname)
      if (type === 'JoinExpr') {
        visit(fields.larg)
        visit(fields.rarg)
      }
    }
  }
  visit(from)
  return out
}

/** An INSERT whose rows are listed (VALUES, DEFAULT VALUES): its upsert touches at most those rows' conflicts. */
function insertsListedRows(fields: Fields): boolean {
  if (!isRecord(fields.selectStmt)) return true
  const sel = fields.selectStmt.SelectStmt
  return isRecord(sel) && Array.isArray(sel.valuesLists) && !sel.fromClause && (sel.op === undefined || sel.op === 'SETOP_NONE')
}

// ---------------------------------------------------------------------------------------------
// Statements

interface Ctx {
  prepared: Map<string, Statement[]>
  /** How deep in SQL text given to functions (query_to_xml('select query_to_xml(...)')) this is. */
  textDepth: number
}

/** SQL text inside SQL text is followed this deep; deeper is unseen. */
const MAX_TEXT_DEPTH = 4

function unseenStatement(command: string, reason: string, index: number, via: Statement['via']): Statement {
  const s: Statement = {kind: 'other', command, tables: [], writes: true, functions: [], index, unseen: reason}
  if (via) s.via = via
  return s
}

function analyzeTop(node: Node, index: number, out: Statement[], ctx: Ctx, depth: number, via?: Statement['via']): void {
  const [type, fields] = unwrap(node)
  const start = out.length

  if (type === 'ExplainStmt' && isRecord(fields.query)) {
    if (explainRuns(fields.options)) {
      // EXPLAIN ANALYZE runs the statement: judge what it runs.
      analyzeTop(fields.query as Node, index, out, ctx, depth + 1, via ?? 'explain')
      const s = out[start]
      if (s) s.command = `EXPLAIN ANALYZE ${s.command}`
      return
    }
    const f = findings(fields.query as Node)
    out.push(statement('explain', 'EXPLAIN', f, index, via, {writes: false}))
    return
  }

  if (type === 'PrepareStmt' && isRecord(fields.query)) {
    analyzeTop(fields.query as Node, index, out, ctx, depth + 1, via ?? 'prepare')
    if (typeof fields.name === 'string') rememberPrepared(ctx.prepared, fields.name, out.slice(start))
    return
  }

  if (type === 'ExecuteStmt') {
    const name = typeof fields.name === 'string' ? fields.name : ''
    const known = preparedStatements(ctx.prepared, name)
    if (known && known.length > 0) {
      for (const s of known) out.push({...s, index, via: via ?? 'execute'})
    } else {
      const s = statement('execute', 'EXECUTE', findings(node), index, via, {
        writes: true,
        unseen: `EXECUTE ${name}: no statement of that name was prepared in this session through hoop, so what it runs cannot be judged`,
      })
      out.push(s)
    }
    return
  }

  if (type === 'DeallocateStmt') forgetPrepared(ctx.prepared, fields.isall === true || typeof fields.name !== 'string' ? undefined : fields.name)
  if (type === 'DiscardStmt' && fields.target === 'DISCARD_ALL') forgetPrepared(ctx.prepared)

  const f = findings(node)
  const s = classify(type, fields, f, index, via)
  out.push(s)

  // CREATE TABLE AS EXECUTE p runs p.
  if (type === 'CreateTableAsStmt' && isRecord(fields.query) && isRecord(fields.query.ExecuteStmt)) {
    analyzeTop(fields.query as Node, index, out, ctx, depth + 1, 'execute')
  }

  // Data-modifying CTEs anywhere inside: each is judged as a statement of its own.
  for (const nested of f.nestedWrites) {
    const [ntype, nfields] = unwrap(nested)
    const nf = findings(nested)
    const n = classify(ntype, nfields, nf, index, 'cte')
    addStores(n, nested, nf)
    out.push(n)
    out.push(...writeParts(ntype, nfields, nf, index))
    s.writes = true
  }
  out.push(...writeParts(type, fields, f, index))
  addStores(s, node, f)

  // Calls judged on their arguments: settings, SQL text, relations named by text.
  if (depth < MAX_DEPTH) {
    const settingName = type === 'SelectStmt' ? pgSettingsNameFilter(fields) : undefined
    for (const call of f.calls) judgeCall(call, s, index, out, ctx, depth, settingName)
  }

  // Procedural bodies: best-effort look at the SQL inside (the statement stays opaque).
  if (depth < MAX_DEPTH && (type === 'DoStmt' || type === 'CreateFunctionStmt')) {
    for (const inner of proceduralBody(type, fields)) {
      let tree: {stmts?: Array<{stmt?: Node}>}
      try {
        tree = parseSync(inner) as unknown as {stmts?: Array<{stmt?: Node}>}
      } catch {
        continue
      }
      for (const raw of tree.stmts ?? []) {
        if (!raw.stmt) continue
        const before = out.length
        analyzeTop(raw.stmt, index, out, {prepared: new Map(), textDepth: ctx.textDepth}, depth + 1, type === 'DoStmt' ? 'do' : 'function')
        for (const n of out.slice(before)) for (const fn of n.functions) if (!s.functions.includes(fn)) s.functions.push(fn)
      }
    }
  }

  // Whatever a statement's parts write or cannot show, the statement itself does too.
  for (const n of out.slice(start + 1)) {
    if (n.writes) s.writes = true
    if (n.readsStatistics) s.readsStatistics = true
  }
}

/** The update and delete parts of upserts and MERGE: judged as the updates and deletes they are. */
function writeParts(type: string, fields: Fields, f: Findings, index: number): Statement[] {
  const parts: Statement[] = []
  if (type === 'InsertStmt' && isRecord(fields.onConflictClause) && fields.onConflictClause.action === 'ONCONFLICT_UPDATE') {
    // Bounded by its own WHERE, or by the rows it lists; INSERT ... SELECT may collide with every row.
    const hasWhere = restricts(fields.onConflictClause.whereClause, targetOf(fields.relation, true)) || insertsListedRows(fields)
    parts.push(statement('update', 'INSERT ON CONFLICT DO UPDATE', f, index, 'upsert', {hasWhere}))
  }
  if (type === 'MergeStmt' && Array.isArray(fields.mergeWhenClauses)) {
    const target = targetOf(fields.relation, false)
    const seen = new Set<string>()
    for (const w of fields.mergeWhenClauses) {
      const c = isRecord(w) && isRecord(w.MergeWhenClause) ? w.MergeWhenClause : undefined
      if (!c) continue
      const kind: StatementKind | undefined = c.commandType === 'CMD_UPDATE' ? 'update' : c.commandType === 'CMD_DELETE' ? 'delete' : c.commandType === 'CMD_INSERT' ? 'insert' : undefined
      if (!kind) continue
      const extra: Partial<Statement> = kind === 'insert' ? {} : {hasWhere: restricts(c.condition, target)}
      const key = `${kind}:${String(extra.hasWhere)}`
      if (seen.has(key)) continue
      seen.add(key)
      parts.push(statement(kind, `MERGE ${kind.toUpperCase()}`, f, index, 'merge', extra))
    }
  }
  return parts
}

/** What the statement stores and which columns flow into it (for policy's no-laundering rule). */
function addStores(s: Statement, node: Node, f: Findings): void {
  const [type, fields] = unwrap(node)
  let by: string | undefined
  let store: Store | undefined
  switch (type) {
    case 'SelectStmt':
      if (isRecord(fields.intoClause)) [store, by] = ['table', 'SELECT INTO']
      break
    case 'CreateTableAsStmt': {
      const skip = isRecord(fields.into) && fields.into.skipData === true
      if (!skip) [store, by] = ['table', s.command]
      break
    }
    case 'ViewStmt':
      ;[store, by] = ['view', 'CREATE VIEW']
      break
    case 'CopyStmt':
      if (fields.is_from !== true && fields.is_program === true) [store, by] = ['program', 'COPY TO PROGRAM']
      else if (fields.is_from !== true && typeof fields.filename === 'string') [store, by] = ['file', 'COPY TO']
      break
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'MergeStmt':
      ;[store, by] = ['table', s.command]
      break
    default:
      break
  }
  // The flow walk finds nothing to report when nothing is stored: skip it (a SELECT, most often).
  if (!store && !f.calls.some(mayStore)) return
  const flows = statementFlows(node)
  const stores: StoreFlow[] = []
  if (store && by && flows.values.length > 0) stores.push({stores: store, by, flows: flows.values})
  for (const c of flows.calls) if (c.flows.length > 0) stores.push({stores: c.stores, by: c.fn, flows: c.flows.map((from) => ({from}))})
  if (stores.length > 0) s.stores = stores
}

/** A call the flow walk reports: one that stores a value, or one that runs SQL text (which may call one). */
function mayStore(call: Fields): boolean {
  const name = qualifiedName(call.funcname) ?? ''
  return storingFunction(name) !== undefined || sqlTextArgument(name, Array.isArray(call.args) ? call.args : []) !== undefined
}

/**
 * For `SELECT ... FROM [pg_catalog.]pg_settings WHERE name = 'literal'` (and nothing else in FROM),
 * the one setting name the rows can have.
 */
function pgSettingsNameFilter(fields: Fields): string | undefined {
  const from = Array.isArray(fields.fromClause) ? fields.fromClause : []
  const rv = from.length === 1 && isRecord(from[0]) && isRecord(from[0].RangeVar) ? from[0].RangeVar : undefined
  if (!rv || rv.relname !== 'pg_settings' || (rv.schemaname !== undefined && rv.schemaname !== 'pg_catalog')) return undefined
  const w = isRecord(fields.whereClause) && isRecord(fields.whereClause.A_Expr) ? fields.whereClause.A_Expr : undefined
  if (!w || w.kind !== 'AEXPR_OP' || !Array.isArray(w.name) || w.name.length !== 1) return undefined
  const op = isRecord(w.name[0]) && isRecord(w.name[0].String) ? w.name[0].String.sval : undefined
  if (op !== '=') return undefined
  if (isColumnNamed(w.lexpr, 'name')) return stringLiteral(w.rexpr)
  if (isColumnNamed(w.rexpr, 'name')) return stringLiteral(w.lexpr)
  return undefined
}

/** A column reference `name` or `pg_settings.name`. */
function isColumnNamed(node: unknown, column: string): boolean {
  const ref = isRecord(node) && isRecord(node.ColumnRef) ? node.ColumnRef : undefined
  const fieldsOf = ref && Array.isArray(ref.fields) ? ref.fields : []
  const last = fieldsOf[fieldsOf.length - 1]
  const name = isRecord(last) && isRecord(last.String) ? last.String.sval : undefined
  return name === column && fieldsOf.length <= 2
}

/** set_config, functions that run SQL text, functions that read relations named by text. */
function judgeCall(call: Fields, s: Statement, index: number, out: Statement[], ctx: Ctx, depth: number, settingName?: string): void {
  const name = (qualifiedName(call.funcname) ?? '').toLowerCase()
  const args = Array.isArray(call.args) ? call.args : []
  const base = baseName(name)

  if (base === 'set_config') {
    // set_config(name, value, is_local): a SET.
    // pg_dump 15 writes `SELECT set_config(name, '...', false) FROM pg_settings WHERE name = '...'`:
    // the WHERE names the one setting the column `name` can hold.
    const setting = args[0] === undefined ? undefined : (stringLiteral(args[0]) ?? (isColumnNamed(args[0], 'name') ? settingName : undefined))
    if (setting === undefined) {
      out.push(unseenStatement('SET', `${name}() with a setting name computed at run time`, index, 'function'))
      return
    }
    const value = args[1] === undefined ? undefined : stringLiteral(args[1])
    const effect = settingEffect(setting, value, value === undefined)
    const st: Statement = {kind: 'set', command: 'SET', tables: [], writes: effect.writes, functions: [name], index, via: 'function', settings: [setting.toLowerCase()]}
    if (effect.unseen) st.unseen = effect.unseen
    out.push(st)
    return
  }

  const sqlArg = sqlTextArgument(name, args)
  if (sqlArg !== undefined) {
    const text = sqlArg < 0 ? undefined : stringLiteral(args[sqlArg])
    if (text === undefined) {
      out.push(unseenStatement(`${base.toUpperCase()} SQL`, `${name}() runs SQL text computed at run time, which cannot be judged`, index, 'sql-text'))
      return
    }
    if (ctx.textDepth >= MAX_TEXT_DEPTH) {
      out.push(unseenStatement(`${base.toUpperCase()} SQL`, `${name}() runs SQL text nested too deeply to follow`, index, 'sql-text'))
      return
    }
    let tree: {stmts?: Array<{stmt?: Node}>}
    try {
      tree = parseSync(text) as unknown as {stmts?: Array<{stmt?: Node}>}
    } catch (err) {
      out.push(unseenStatement(`${base.toUpperCase()} SQL`, `${name}() runs SQL text that does not parse (${errorMessage(err)})`, index, 'sql-text'))
      return
    }
    for (const raw of tree.stmts ?? []) {
      if (!raw.stmt) continue
      const before = out.length
      analyzeTop(raw.stmt, index, out, {prepared: ctx.prepared, textDepth: ctx.textDepth + 1}, depth + 1, 'sql-text')
      for (const n of out.slice(before)) for (const fn of n.functions) if (!s.functions.includes(fn)) s.functions.push(fn)
    }
    return
  }

  const reader = relationReader(name)
  if (reader === 'table') {
    const text = args[0] === undefined ? undefined : stringLiteral(args[0])
    const rel = text === undefined ? undefined : regclassName(text)
    if (!rel) {
      out.push(unseenStatement('SELECT', `${name}() reads a table chosen at run time`, index, 'sql-text'))
      return
    }
    const t = rel.schema ? `${rel.schema}.${rel.table}` : rel.table
    if (!s.tables.includes(t)) s.tables.push(t)
    if (isStatisticsRelation(t)) s.readsStatistics = true
  } else if (reader === 'schema' || reader === 'database') {
    out.push(unseenStatement('SELECT', `${name}() reads every table of a ${reader}, which table rules cannot see`, index, 'sql-text'))
  }
}

function statement(kind: StatementKind, command: string, f: Findings, index: number, via: Statement['via'], extra: Partial<Statement>): Statement {
  const s: Statement = {
    kind,
    command,
    tables: [...f.tables],
    writes: true,
    functions: [...f.functions],
    index,
    ...extra,
  }
  if (via) s.via = via
  if (s.tables.some(isStatisticsRelation) || s.functions.some(isStatisticsFunction)) s.readsStatistics = true
  return s
}

/** A relation as a ColumnRef for `alters`: column '*' (the whole table) or the column named. */
function relationRef(rel: unknown, column = '*'): ColumnRef[] {
  if (!isRecord(rel) || typeof rel.relname !== 'string') return []
  return [{...(typeof rel.schemaname === 'string' ? {schema: rel.schemaname} : {}), table: rel.relname, column}]
}

const RELATION_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE'])

/** What DDL renames or alters (or hangs a trigger or rule on), for hoop.masked-ddl. */
function altersOf(type: string, fields: Fields): ColumnRef[] {
  switch (type) {
    case 'RenameStmt':
      if (fields.renameType === 'OBJECT_COLUMN') return relationRef(fields.relation, typeof fields.subname === 'string' ? fields.subname : '*')
      if (fields.renameType === 'OBJECT_SCHEMA' && typeof fields.subname === 'string') return [{schema: fields.subname, table: '*', column: '*'}]
      return RELATION_OBJECTS.has(String(fields.renameType)) ? relationRef(fields.relation) : []
    case 'AlterObjectSchemaStmt':
      return RELATION_OBJECTS.has(String(fields.objectType)) ? relationRef(fields.relation) : []
    case 'AlterTableStmt':
    case 'CreateTrigStmt':
    case 'RuleStmt':
      return relationRef(fields.relation)
    default:
      return []
  }
}

function classify(type: string, fields: Fields, f: Findings, index: number, via: Statement['via']): Statement {
  const writingFn = [...f.functions].some((fn) => WRITING_FUNCTIONS.has(fn.split('.').pop()!))
  const make = (kind: StatementKind, command: string, extra: Partial<Statement> = {}) => statement(kind, command, f, index, via, extra)
  switch (type) {
    case 'SelectStmt': {
      if (isRecord(fields.intoClause)) return make('ddl', 'SELECT INTO')
      const extra: Partial<Statement> = {writes: f.locksRows || writingFn}
      if (f.locksRows) extra.locksRows = true
      return make('select', 'SELECT', extra)
    }
    case 'InsertStmt':
      return make('insert', 'INSERT')
    case 'UpdateStmt': {
      const others = Array.isArray(fields.fromClause) && fields.fromClause.length > 0
      return make('update', 'UPDATE', {hasWhere: restricts(fields.whereClause, targetOf(fields.relation, !others))})
    }
    case 'DeleteStmt': {
      const others = Array.isArray(fields.usingClause) && fields.usingClause.length > 0
      return make('delete', 'DELETE', {hasWhere: restricts(fields.whereClause, targetOf(fields.relation, !others))})
    }
    case 'MergeStmt': {
      // Bounded when every WHEN action that updates or deletes has a condition on the target; the
      // join condition only pairs rows, so it bounds nothing. A MERGE that only inserts has no WHERE.
      const target = targetOf(fields.relation, false)
      const actions = (Array.isArray(fields.mergeWhenClauses) ? fields.mergeWhenClauses : [])
        .map((w) => (isRecord(w) && isRecord(w.MergeWhenClause) ? w.MergeWhenClause : {}))
        .filter((c) => c.commandType === 'CMD_UPDATE' || c.commandType === 'CMD_DELETE')
      return make('merge', 'MERGE', actions.length ? {hasWhere: actions.every((c) => restricts(c.condition, target))} : {})
    }
    case 'TruncateStmt':
      return make('truncate', 'TRUNCATE')
    case 'DropStmt': {
      const what = objectTypeName(fields.removeType)
      const s = make('drop', `DROP ${what}`)
      if (['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE', 'SEQUENCE', 'INDEX'].includes(what) && Array.isArray(fields.objects)) {
        for (const o of fields.objects) {
          const name = isRecord(o) && isRecord(o.List) ? qualifiedName(o.List.items) : undefined
          if (name && !s.tables.includes(name)) s.tables.push(name)
        }
      }
      return s
    }
    case 'CopyStmt': {
      const program = fields.is_program === true
      const file = !program && typeof fields.filename === 'string'
      const from = fields.is_from === true
      const extra: Partial<Statement> = {writes: from || program || file}
      if (program) extra.copyProgram = true
      if (file) extra.copyFile = true
      return make('copy', from ? 'COPY FROM' : 'COPY TO', extra)
    }
    case 'CallStmt':
      return make('call', 'CALL')
    case 'DoStmt':
      return make('do', 'DO', {opaque: true})
    case 'CreateFunctionStmt':
      return make('ddl', fields.is_procedure === true ? 'CREATE PROCEDURE' : 'CREATE FUNCTION', {opaque: true})
    case 'CreateTableAsStmt':
      return make('ddl', fields.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS')
    case 'AlterTableStmt':
      return make('ddl', `ALTER ${objectTypeName(fields.objtype)}`, {alters: altersOf(type, fields)})
    case 'RenameStmt':
      return make('ddl', `ALTER ${objectTypeName(fields.renameType)} RENAME`, {alters: altersOf(type, fields)})
    case 'AlterObjectSchemaStmt':
    case 'CreateTrigStmt':
    case 'RuleStmt': {
      const alters = altersOf(type, fields)
      return make('ddl', COMMAND_NAMES[type] ?? words(type), alters.length ? {alters} : {})
    }
    case 'GrantStmt':
      return make('grant', fields.is_grant === true ? 'GRANT' : 'REVOKE')
    case 'GrantRoleStmt':
      return make('grant', fields.is_grant === true ? 'GRANT ROLE' : 'REVOKE ROLE')
    case 'CreateRoleStmt':
    case 'AlterRoleStmt':
    case 'AlterRoleSetStmt':
    case 'AlterDefaultPrivilegesStmt':
    case 'AlterPolicyStmt':
    case 'CreatePolicyStmt':
      return make('grant', type === 'AlterRoleSetStmt' ? 'ALTER ROLE SET' : words(type))
    case 'VariableSetStmt': {
      const name = typeof fields.name === 'string' ? fields.name.toLowerCase() : ''
      const command =
        fields.kind === 'VAR_RESET' ? 'RESET' :
        fields.kind === 'VAR_RESET_ALL' ? 'RESET ALL' :
        name === 'role' ? 'SET ROLE' :
        name === 'session_authorization' ? 'SET SESSION AUTHORIZATION' :
        fields.kind === 'VAR_SET_MULTI' ? `SET ${name.toUpperCase()}` : 'SET'
      let value: string | undefined
      if (fields.kind === 'VAR_SET_VALUE' && Array.isArray(fields.args)) {
        const texts = fields.args.map(constText)
        if (texts.every((t) => t !== undefined)) value = texts.join(', ')
      }
      const effect: SettingEffect = fields.kind === 'VAR_SET_MULTI' ? {writes: false} : settingEffect(name, value, false)
      // Turning read-only off is how a read-only session would escape: count it as a write.
      const escapes = effect.writes || fields.kind === 'VAR_RESET_ALL' || setsReadWrite(fields.args)
      return make('set', command, {writes: escapes, ...(name ? {settings: [name]} : {}), ...(effect.unseen ? {unseen: effect.unseen} : {})})
    }
    case 'VariableShowStmt':
      return make('show', 'SHOW', {writes: false})
    case 'TransactionStmt':
      return make('transaction', TRANSACTION_COMMANDS[String(fields.kind)] ?? 'TRANSACTION', {writes: setsReadWrite(fields.options)})
    case 'LockStmt':
      // PostgreSQL allows ACCESS SHARE, ROW SHARE and ROW EXCLUSIVE (modes 1-3) in a read-only
      // transaction: they change no data (pg_dump takes ACCESS SHARE on every table it dumps).
      return make('lock', 'LOCK TABLE', {writes: !(typeof fields.mode === 'number' && fields.mode >= 1 && fields.mode <= 3)})
    case 'VacuumStmt':
      return make('maintenance', fields.is_vacuumcmd === true ? 'VACUUM' : 'ANALYZE')
    case 'ReindexStmt':
    case 'ClusterStmt':
    case 'CheckPointStmt':
    case 'RefreshMatViewStmt':
      return make('maintenance', COMMAND_NAMES[type])
    case 'ListenStmt':
    case 'UnlistenStmt':
    case 'NotifyStmt':
      return make('listen', COMMAND_NAMES[type], {writes: false})
    case 'DeclareCursorStmt': {
      // DECLARE c CURSOR FOR <query>: the query is what runs.
      const extra: Partial<Statement> = {writes: f.locksRows || writingFn}
      if (f.locksRows) extra.locksRows = true
      return make('select', 'DECLARE CURSOR', extra)
    }
    case 'DropdbStmt':
    case 'DropOwnedStmt':
      return make('drop', COMMAND_NAMES[type])
    default:
      break
  }
  if (HARMLESS_OTHER[type]) return make('other', HARMLESS_OTHER[type], {writes: false})
  if (type === 'ConstraintsSetStmt') return make('set', 'SET CONSTRAINTS', {writes: false})
  if (type.startsWith('Drop')) return make('drop', COMMAND_NAMES[type] ?? words(type))
  if (type.startsWith('Create') || type.startsWith('Alter') || COMMAND_NAMES[type] || /^(Index|View|Rule|Comment|Define|CompositeType|SecLabel|ImportForeignSchema|ReassignOwned)Stmt$/.test(type)) {
    const command = COMMAND_NAMES[type] ?? words(type)
    if (type === 'LoadStmt') return make('other', command)
    return make('ddl', command)
  }
  // Unknown to this analyzer: report it, and count it as a write so read-only never lets it by.
  return make('other', words(type) || 'UNKNOWN')
}

/** SQL inside a DO block or function body (plpgsql or sql), as separate texts. */
function proceduralBody(type: string, fields: Fields): string[] {
  let body: string | undefined
  let language = type === 'DoStmt' ? 'plpgsql' : 'sql'
  const options = type === 'DoStmt' ? fields.args : fields.options
  if (Array.isArray(options)) {
    for (const o of options) {
      if (!isRecord(o) || !isRecord(o.DefElem)) continue
      const arg = o.DefElem.arg
      if (o.DefElem.defname === 'language' && isRecord(arg) && isRecord(arg.String)) language = String(arg.String.sval).toLowerCase()
      if (o.DefElem.defname === 'as' && isRecord(arg)) {
        if (isRecord(arg.String)) body = String(arg.String.sval)
        else if (isRecord(arg.List) && Array.isArray(arg.List.items)) {
          const first = arg.List.items[0]
          if (isRecord(first) && isRecord(first.String)) body = String(first.String.sval)
        }
      }
    }
  }
  if (body === undefined) {
    // SQL-standard body: CREATE FUNCTION ... BEGIN ATOMIC ... END is already parsed (sql_body).
    return []
  }
  if (language === 'sql') return [body]
  if (language !== 'plpgsql') return []
  let parsed: unknown
  try {
    // parsePlPgSQL wants a whole CREATE FUNCTION; wrap the body in one with a quote that cannot clash.
    const tag = `$hoop${Math.random().toString(36).slice(2, 10)}$`
    if (body.includes(tag)) return []
    parsed = parsePlPgSQLSync(`CREATE FUNCTION hoop_body() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}`)
  } catch {
    return []
  }
  const texts: string[] = []
  collectPlpgsql(parsed, texts, undefined)
  return texts
}

function collectPlpgsql(value: unknown, texts: string[], parentKey: string | undefined): void {
  if (Array.isArray(value)) {
    for (const v of value) collectPlpgsql(v, texts, parentKey)
    return
  }
  if (!isRecord(value)) return
  for (const [key, v] of Object.entries(value)) {
    if (key === 'PLpgSQL_expr' && isRecord(v) && typeof v.query === 'string') {
      const q = v.query
      if (parentKey === 'query' && /^\s*'(?:[^']|'')*'\s*$/.test(q)) {
        // EXECUTE 'literal': the literal is SQL we can see.
        texts.push(q.trim().slice(1, -1).replace(/''/g, "'"))
      } else if (v.parseMode === 0) texts.push(q)
      else texts.push(`SELECT ${q}`) // an expression: look for the functions it calls
      continue
    }
    collectPlpgsql(v, texts, key)
  }
}

// ---------------------------------------------------------------------------------------------
// Startup parameters. A StartupMessage carries run-time settings (`DateStyle=ISO`) and an
// `options` string of command-line switches (`-c name=value`, `--name=value`) that the server
// applies before the session starts, so a client could begin a session with a setting a SET would
// be refused for. These become the SET statements they are equivalent to, for the engine to judge.

/**
 * Settings passed on unjudged: they change how values are written and read back, nothing else.
 * `client_encoding` only when it is not a client-only encoding (SJIS, BIG5, GBK...), which would
 * let the server read quotes where hoop does not. `search_path` is not here: it changes which
 * table an unqualified name means, so it is judged like `SET search_path`.
 */
export const HARMLESS_STARTUP_SETTINGS: readonly string[] = ['application_name', 'client_encoding', 'datestyle', 'timezone', 'extra_float_digits', 'intervalstyle']

/** Startup parameters that are not settings: the engine handles them. */
const CONNECTION_PARAMETERS = new Set(['user', 'database'])

export interface StartupSetting {
  /** As the server reads it: lower-case; in `options`, dashes become underscores. */
  name: string
  value: string
  from: 'options' | 'parameter'
}

export interface StartupJudgement {
  /** Settings passed on unjudged (HARMLESS_STARTUP_SETTINGS). */
  passed: StartupSetting[]
  /** Settings to judge, in the order the server applies them (options first, then parameters). */
  judged: StartupSetting[]
  /**
   * The SET statements equivalent to `judged`, joined with "; " (empty when there are none): the
   * engine judges this text like any statement (`analyzePostgres`, policy) before it forwards the
   * StartupMessage, and refuses the session when it is blocked.
   */
  sql: string
  /** Set when the session must be refused whatever the policy: a switch hoop does not understand, a replication connection. */
  refuse?: string
}

/**
 * Splits an `options` value the way PostgreSQL's pg_split_opts does: at unescaped white space; a
 * backslash makes the next character literal (`-c search_path=a\ b` is one argument).
 */
export function splitStartupOptions(options: string): string[] {
  const out: string[] = []
  let i = 0
  const space = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f'
  while (i < options.length) {
    while (i < options.length && space(options[i])) i++
    if (i >= options.length) break
    let arg = ''
    let escaped = false
    while (i < options.length) {
      const c = options[i]
      if (space(c) && !escaped) break
      if (!escaped && c === '\\') escaped = true
      else {
        escaped = false
        arg += c
      }
      i++
    }
    out.push(arg)
  }
  return out
}

function quoteIdent(part: string): string {
  return `"${part.replace(/"/g, '""')}"`
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}

/** The SET statement equivalent to a startup setting. */
function setStatement(name: string, value: string): string {
  return `SET ${name.split('.').map(quoteIdent).join('.')} TO ${quoteLiteral(value)}`
}

/**
 * Turns a StartupMessage's parameters into what policy must judge. Never throws. `params` in the
 * order the client sent them (an object keeps insertion order).
 */
export function judgeStartupParameters(params: Record<string, string> | ReadonlyArray<readonly [string, string]>): StartupJudgement {
  const entries: Array<readonly [string, string]> = Array.isArray(params) ? [...params] : Object.entries(params as Record<string, string>)
  const fromOptions: StartupSetting[] = []
  const fromParams: StartupSetting[] = []
  const refuse = (why: string): StartupJudgement => ({passed: [], judged: [], sql: '', refuse: why})
  for (const [rawName, value] of entries) {
    const name = rawName.toLowerCase()
    if (CONNECTION_PARAMETERS.has(name)) continue
    if (name === 'replication') {
      if (gucBoolean(value) === false) continue
      return refuse(`replication connections (replication=${value}) are not supported through hoop: their commands cannot be judged`)
    }
    if (name.startsWith('_pq_.')) return refuse(`protocol option ${rawName} is not supported through hoop`)
    if (name === 'options') {
      const args = splitStartupOptions(value)
      for (let k = 0; k < args.length; k++) {
        const a = args[k]
        let setting: string | undefined
        if (a === '-c') setting = args[++k]
        else if (a.startsWith('-c')) setting = a.slice(2)
        else if (a.startsWith('--') && a.length > 2) setting = a.slice(2)
        else return refuse(`startup option "${a}" is not supported through hoop (only -c name=value and --name=value are)`)
        if (setting === undefined) return refuse('startup option -c needs name=value')
        const eq = setting.indexOf('=')
        if (eq <= 0) return refuse(`startup option "${setting}" needs name=value`)
        // PostgreSQL's ParseLongOption: dashes in the name are underscores.
        fromOptions.push({name: setting.slice(0, eq).replace(/-/g, '_').toLowerCase(), value: setting.slice(eq + 1), from: 'options'})
      }
      continue
    }
    if (name === '') return refuse('a startup parameter with an empty name')
    fromParams.push({name, value, from: 'parameter'})
  }
  const passed: StartupSetting[] = []
  const judged: StartupSetting[] = []
  for (const s of [...fromOptions, ...fromParams]) {
    const harmless = HARMLESS_STARTUP_SETTINGS.includes(s.name) && !(s.name === 'client_encoding' && isClientOnlyEncoding(s.value))
    ;(harmless ? passed : judged).push(s)
  }
  return {passed, judged, sql: judged.map((s) => setStatement(s.name, s.value)).join('; ')}
}
