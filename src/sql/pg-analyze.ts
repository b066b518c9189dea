// PostgreSQL statement analysis: SQL text -> the protocol-neutral Operation that policy judges.
// Uses libpg-query (the real PostgreSQL parser compiled to WASM), so rewording (case, comments,
// whitespace, quoting) cannot change what a statement is. The walk is deliberately conservative:
// anything that can change data counts as a write, and every statement of a multi-statement
// string, every data-modifying CTE, every PREPARE body and every EXPLAIN ANALYZE target is
// reported so that a rule sees it.
import {parsePlPgSQLSync, parseSync} from 'libpg-query'
import type {Operation, Statement, StatementKind} from '../policy/types.js'
import {errorMessage} from '../shared/errors.js'
import {pgParserReady} from './pg-parser.js'

export interface AnalyzeOptions {
  /**
   * Prepared statements of the session, by name. PREPARE adds to it; EXECUTE of a known name is
   * judged as the prepared statement. Engines keep one map per client session.
   */
  prepared?: Map<string, Statement[]>
}

/** Maximum SQL text analyzed; longer text is reported unparsable (and judged by the default). */
export const MAX_SQL_LENGTH = 1 << 20

/** Analyzes SQL text. Requires `await loadPgParser()` once beforehand. */
export function analyzePostgres(sql: string, opts: AnalyzeOptions = {}): Operation {
  if (!pgParserReady()) throw new Error('analyzePostgres called before loadPgParser() resolved')
  if (sql.length > MAX_SQL_LENGTH) {
    return {engine: 'postgres', statements: [], unparsable: {reason: `statement text of ${sql.length} characters exceeds the analysis limit of ${MAX_SQL_LENGTH}`}}
  }
  let tree: {stmts?: Array<{stmt?: Node}>}
  try {
    tree = parseSync(sql) as unknown as {stmts?: Array<{stmt?: Node}>}
  } catch (err) {
    return {engine: 'postgres', statements: [], unparsable: {reason: errorMessage(err) || 'syntax error'}}
  }
  const out: Statement[] = []
  const prepared = opts.prepared ?? new Map<string, Statement[]>()
  try {
    ;(tree.stmts ?? []).forEach((raw, index) => {
      if (raw.stmt) analyzeTop(raw.stmt, index, out, prepared, 0)
    })
  } catch (err) {
    // A tree too deep to walk is judged like text that cannot be parsed, never let through unseen.
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

/** Functions that change state even when called from a SELECT. */
const WRITING_FUNCTIONS = new Set([
  'nextval', 'setval', 'set_config', 'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile',
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
    if (name) f.functions.add(name.toLowerCase())
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
  const f: Findings = {tables: new Set(), functions: new Set(), nestedWrites: [], locksRows: false}
  walk(node, f, new Set(), true)
  return f
}

function booleanOption(options: unknown, name: string): boolean {
  if (!Array.isArray(options)) return false
  for (const o of options) {
    if (!isRecord(o) || !isRecord(o.DefElem) || o.DefElem.defname !== name) continue
    const arg = o.DefElem.arg
    if (!isRecord(arg)) return true // bare option: EXPLAIN (ANALYZE)
    const inner = Object.values(arg)[0]
    if (!isRecord(inner)) return true
    // A_Const {boolval: {boolval: true}} or {ival: {ival: 1}}; protobuf JSON omits false and 0.
    const v = inner.boolval ?? inner.sval ?? inner.ival
    if (isRecord(v)) return Boolean(v.boolval ?? v.ival)
    return !(v === false || v === 0 || v === undefined || ['false', 'off', '0', 'no'].includes(String(v).toLowerCase()))
  }
  return false
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

function analyzeTop(node: Node, index: number, out: Statement[], prepared: Map<string, Statement[]>, depth: number, via?: Statement['via']): void {
  const [type, fields] = unwrap(node)
  const start = out.length

  if (type === 'ExplainStmt' && isRecord(fields.query)) {
    if (booleanOption(fields.options, 'analyze')) {
      // EXPLAIN ANALYZE runs the statement: judge what it runs.
      analyzeTop(fields.query as Node, index, out, prepared, depth + 1, via ?? 'explain')
      const s = out[start]
      if (s) s.command = `EXPLAIN ANALYZE ${s.command}`
      return
    }
    const f = findings(fields.query as Node)
    out.push(statement('explain', 'EXPLAIN', f, index, via, {writes: false}))
    return
  }

  if (type === 'PrepareStmt' && isRecord(fields.query)) {
    analyzeTop(fields.query as Node, index, out, prepared, depth + 1, via ?? 'prepare')
    if (typeof fields.name === 'string') prepared.set(fields.name, out.slice(start).map((s) => ({...s})))
    return
  }

  if (type === 'ExecuteStmt') {
    const known = typeof fields.name === 'string' ? prepared.get(fields.name) : undefined
    if (known && known.length > 0) {
      for (const s of known) out.push({...s, index, via: via ?? 'execute'})
    } else {
      // Not seen: its PREPARE was judged when it was prepared (an engine that tracks the session's
      // prepared statements passes them in `prepared`).
      out.push(statement('execute', 'EXECUTE', findings(node), index, via, {writes: false}))
    }
    return
  }

  const f = findings(node)
  const s = classify(type, fields, f, index, via)
  out.push(s)

  // Data-modifying CTEs anywhere inside: each is judged as a statement of its own.
  for (const nested of f.nestedWrites) {
    const [ntype, nfields] = unwrap(nested)
    out.push(classify(ntype, nfields, findings(nested), index, 'cte'))
    s.writes = true
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
        analyzeTop(raw.stmt, index, out, new Map(), depth + 1, type === 'DoStmt' ? 'do' : 'function')
        for (const n of out.slice(before)) for (const fn of n.functions) if (!s.functions.includes(fn)) s.functions.push(fn)
      }
    }
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
  return s
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
    case 'UpdateStmt':
      return make('update', 'UPDATE', {hasWhere: fields.whereClause !== undefined})
    case 'DeleteStmt':
      return make('delete', 'DELETE', {hasWhere: fields.whereClause !== undefined})
    case 'MergeStmt':
      return make('merge', 'MERGE', {hasWhere: fields.joinCondition !== undefined})
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
      return make('ddl', `ALTER ${objectTypeName(fields.objtype)}`)
    case 'RenameStmt':
      return make('ddl', `ALTER ${objectTypeName(fields.renameType)} RENAME`)
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
      // Turning read-only off is how a read-only session would escape: count it as a write.
      const escapes = ['default_transaction_read_only', 'transaction_read_only'].includes(name) || fields.kind === 'VAR_RESET_ALL' || setsReadWrite(fields.args)
      return make('set', command, {writes: escapes, ...(name ? {settings: [name]} : {})})
    }
    case 'VariableShowStmt':
      return make('show', 'SHOW', {writes: false})
    case 'TransactionStmt':
      return make('transaction', TRANSACTION_COMMANDS[String(fields.kind)] ?? 'TRANSACTION', {writes: setsReadWrite(fields.options)})
    case 'LockStmt':
      return make('lock', 'LOCK TABLE')
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
