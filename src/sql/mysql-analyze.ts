// MySQL / MariaDB statement analysis for policy: SQL text -> the protocol-neutral Operation that
// policy judges. (Which output columns derive from a masked column is mysql-taint.ts.)
//
// Statements are parsed with node-sql-parser (MySQL grammar, MariaDB grammar as a fallback). Before
// parsing, a small lexer that knows MySQL's quoting and comment rules (mysql-parser.ts)
//   - splits the text into statements at top-level `;` (a multi-statement COM_QUERY),
//   - drops comments, and turns executable comments (`/*!50000 DROP TABLE t */`, MariaDB's
//     `/*M!100100 ... */`) into plain SQL, because the server runs them,
// so rewording with comments, case or statement stacking cannot change what is judged.
// Statements the grammar does not cover but whose effect is clear from their leading keywords
// (PREPARE, EXECUTE, HANDLER, DO, FLUSH, KILL, CREATE PROCEDURE, ...) are classified by keyword,
// conservatively. Anything else that does not parse makes the whole operation `unparsable`.
import type {ColumnRef, Operation, Statement, StatementKind, StoreFlow} from '../policy/types.js'
import {errorMessage} from '../shared/errors.js'
import {isRecord, LexError, MAX_SQL_LENGTH, nextStatement, parseMysql, ROUTINE_RE, unquoteString, Unparsable, type Node} from './mysql-parser.js'
import {ALL_MODES, assignVariable, lexMode, MODE_VALUE_PREFIX, type ModeKey, type MysqlSession, mysqlSessionOf, parseSqlMode, variableValues} from './mysql-session.js'
import {mysqlStatementFlows} from './mysql-taint.js'
import {forgetPrepared, preparedStatements, rememberPrepared} from './prepared.js'

const MAX_DEPTH = 6

export interface MysqlAnalyzeOptions {
  /**
   * Prepared statements of the session (SQL-level PREPARE), by lower-case name. PREPARE adds to
   * it, DEALLOCATE retires names; EXECUTE of a known name is judged as the prepared statement, of
   * a name never prepared through hoop as `unseen`. One map per client session.
   */
  prepared?: Map<string, Statement[]>
  /** User variables assigned a string literal in the session (`SET @sql = '...'`), by lower-case name: the last one. */
  variables?: Map<string, string>
  /**
   * The session's lexing state (sql_mode, user variables): see mysql-session.ts. When absent, the
   * state kept beside `variables` (or `prepared`) is used, so engines that pass those once per
   * session get sql_mode tracking without more.
   */
  session?: MysqlSession
}

// ---------------------------------------------------------------------------------------------
// The Operation

/** Analyzes SQL text sent in one COM_QUERY (or COM_STMT_PREPARE). Never throws. */
export function analyzeMysql(sql: string, opts: MysqlAnalyzeOptions = {}): Operation {
  if (sql.length > MAX_SQL_LENGTH) {
    return {engine: 'mysql', statements: [], unparsable: {reason: `statement text of ${sql.length} characters exceeds the analysis limit of ${MAX_SQL_LENGTH}`}}
  }
  const session = mysqlSessionOf(opts)
  const ctx: Ctx = {prepared: opts.prepared ?? new Map(), variables: opts.variables ?? new Map(), session, mode: ''}
  session.last = {sql, modes: [...session.modes]}
  try {
    const out: Statement[] = []
    analyzeText(sql, ctx, out, 0, undefined, undefined)
    return {engine: 'mysql', statements: out}
  } catch (err) {
    if (err instanceof Unparsable || err instanceof LexError) return {engine: 'mysql', statements: [], unparsable: {reason: err.message}}
    // Anything else (a tree too deep to walk...) is judged like text that cannot be parsed, never thrown at the engine.
    return {engine: 'mysql', statements: [], unparsable: {reason: `statement too complex to analyze: ${errorMessage(err)}`}}
  }
}

interface Ctx {
  prepared: Map<string, Statement[]>
  variables: Map<string, string>
  session: MysqlSession
  /** The lexing mode the statement being analyzed is read in (one of session.modes). */
  mode: ModeKey
}

/**
 * Reads text statement by statement, as the server does: each statement is split and parsed in the
 * sql_mode left by the one before it. When the session may be in several modes, every statement
 * must end at the same place in all of them (or the text is unparsable: a quote trick could hide a
 * statement), and what it is read as in each mode is judged.
 */
function analyzeText(sql: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number | undefined): void {
  if (depth > MAX_DEPTH) throw new Unparsable('statements nested too deeply')
  let pos = 0
  const inExec = new Map<ModeKey, boolean>()
  for (let k = 0; ; k++) {
    const modes = [...ctx.session.modes]
    const nexts = modes.map((m) => {
      try {
        return nextStatement(sql, pos, lexMode(m), inExec.get(m) ?? false)
      } catch (err) {
        if (modes.length === 1) throw err
        return err instanceof Error ? err : new Error(String(err))
      }
    })
    const first = nexts[0]
    if (modes.length > 1 && nexts.some((n) => n instanceof Error || n?.end !== (first instanceof Error ? -1 : first?.end))) {
      throw new Unparsable(`the session's sql_mode may be any of ${modes.map(describeMode).join(', ')}, and this text splits into statements differently in them`)
    }
    if (first === undefined || first instanceof Error) return
    pos = first.end
    const idx = index ?? k
    const before = ctx.session.modes
    const results: Statement[][] = []
    const next = new Set<ModeKey>()
    let rest = false
    for (const [i, m] of modes.entries()) {
      const n = nexts[i] as {text: string; inExec: boolean}
      inExec.set(m, n.inExec)
      const piece: Statement[] = []
      ctx.mode = m
      ctx.session.modes = new Set([m])
      // A stored program body contains `;`: the rest of the text is one statement.
      if (ROUTINE_RE.test(n.text)) {
        routine([n.text, ...safeSplit(sql.slice(pos), m, n.inExec)].join('; '), ctx, piece, depth, via, idx)
        results.push(piece)
        for (const x of ctx.session.modes) next.add(x)
        rest = true
        continue
      }
      analyzeOne(n.text, ctx, piece, depth, via, idx)
      results.push(piece)
      for (const x of ctx.session.modes) next.add(x)
    }
    // The statement may not run (refused, or an earlier one failed): the modes before it stay possible.
    ctx.session.modes = new Set([...before, ...next])
    out.push(...unionOf(results))
    if (rest || pos >= sql.length) return
  }
}

function describeMode(k: ModeKey): string {
  const flags = [k.includes('A') ? 'ANSI_QUOTES' : '', k.includes('N') ? 'NO_BACKSLASH_ESCAPES' : ''].filter(Boolean)
  return flags.length ? flags.join('+') : 'default'
}

/** The statements read in every mode, each once. */
function unionOf(results: Statement[][]): Statement[] {
  if (results.length === 1) return results[0]
  const seen = new Set<string>()
  const out: Statement[] = []
  for (const r of results) {
    for (const s of r) {
      const key = JSON.stringify(s)
      if (seen.has(key)) continue
      seen.add(key)
      out.push(s)
    }
  }
  return out
}

function routine(text: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number): void {
  const m = ROUTINE_RE.exec(text) as RegExpExecArray
  const s = make('ddl', `CREATE ${m[1].toUpperCase().replace(/\s+/g, ' ')}`, index, via, {writes: true, opaque: true})
  const on = /\bON\s+([`\w.$]+)/i.exec(text)
  if (m[1].toUpperCase() === 'TRIGGER' && on) {
    s.tables.push(tableName(on[1]))
    s.alters = [{...tableRef(tableName(on[1])), column: '*'}]
  }
  out.push(s)
  // Best effort: the SQL statements inside the body, judged as reached through a function.
  const body = text.replace(/^[\s\S]*?\bBEGIN\b/i, '')
  for (const piece of safeSplit(body, ctx.mode, false)) {
    const inner: Statement[] = []
    try {
      analyzeOne(piece.replace(/^(?:BEGIN|DECLARE\b[^;]*|END\b.*|[\w]+\s*:\s*)\s*/i, ''), ctx, inner, depth + 1, 'function', index)
    } catch {
      continue
    }
    for (const st of inner) {
      out.push(st)
      for (const f of st.functions) if (!s.functions.includes(f)) s.functions.push(f)
    }
  }
}

function safeSplit(text: string, mode: ModeKey, inExec: boolean): string[] {
  const out: string[] = []
  let pos = 0
  let exec = inExec
  try {
    for (;;) {
      const n = nextStatement(text, pos, lexMode(mode), exec)
      if (!n) return out
      out.push(n.text)
      pos = n.end
      exec = n.inExec
    }
  } catch {
    return out
  }
}

function make(kind: StatementKind, command: string, index: number, via: Statement['via'], extra: Partial<Statement> = {}): Statement {
  const s: Statement = {kind, command, tables: [], writes: false, functions: [], index, ...extra}
  if (via) s.via = via
  return s
}

function tableName(raw: string): string {
  return raw
    .split('.')
    .map((p) => p.replace(/^`(.*)`$/, '$1').replace(/``/g, '`'))
    .join('.')
}

const IDENT = String.raw`(?:\`(?:[^\`]|\`\`)+\`|[\w$]+)`
const QNAME = String.raw`${IDENT}(?:\s*\.\s*${IDENT})?`
const STRING = String.raw`'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"`

/** Statements the grammar lacks, classified by their leading keywords. Returns false to use the parser. */
function byKeyword(text: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number): boolean {
  const words = text.split(/\s+/, 4).map((w) => w.toUpperCase())
  const [w0, w1] = words
  const add = (kind: StatementKind, command: string, extra: Partial<Statement> = {}) => {
    out.push(make(kind, command, index, via, extra))
    return true
  }
  switch (w0) {
    case 'PREPARE': {
      const m = new RegExp(String.raw`^PREPARE\s+(${IDENT})\s+FROM\s+(${STRING}|@${IDENT})\s*$`, 'is').exec(text)
      if (!m) throw new Unparsable('PREPARE statement not understood')
      const name = tableName(m[1]).toLowerCase()
      const src = m[2]
      const start = out.length
      if (src.startsWith('@')) {
        // The text is whatever the variable holds when PREPARE runs: every literal it may hold is
        // judged; a value computed at run time cannot be.
        const variable = tableName(src.slice(1))
        const values = variableValues(ctx.session, variable)
        const sql = values?.filter((v) => !v.startsWith(MODE_VALUE_PREFIX))
        const extra: Partial<Statement> = {writes: true, opaque: true}
        if (!sql || sql.length !== values?.length) extra.unseen = `PREPARE ${name} FROM @${variable}: the variable may hold text computed at run time, which cannot be judged`
        add('other', 'PREPARE FROM VARIABLE', extra)
        if (depth < MAX_DEPTH) for (const v of sql ?? []) analyzeText(v, ctx, out, depth + 1, via ?? 'prepare', index)
        rememberPrepared(ctx.prepared, name, out.slice(start))
        return true
      }
      analyzeText(unquoteString(src), ctx, out, depth + 1, via ?? 'prepare', index)
      if (out.length === start) add('other', 'PREPARE', {writes: false})
      rememberPrepared(ctx.prepared, name, out.slice(start))
      return true
    }
    case 'EXECUTE': {
      const m = new RegExp(String.raw`^EXECUTE\s+(${IDENT})(?:\s+USING\s+.*)?$`, 'is').exec(text)
      if (!m) {
        if (/^EXECUTE\s+IMMEDIATE\b/i.test(text)) return add('other', 'EXECUTE IMMEDIATE', {writes: true, opaque: true, unseen: 'EXECUTE IMMEDIATE runs text computed at run time, which cannot be judged'})
        throw new Unparsable('EXECUTE statement not understood')
      }
      const name = tableName(m[1]).toLowerCase()
      const known = preparedStatements(ctx.prepared, name)
      if (known && known.length) {
        for (const s of known) out.push({...s, index, via: via ?? 'execute'})
        // A prepared SET sql_mode takes effect now; what it sets was not tracked at PREPARE time.
        if (known.some((s) => s.settings?.includes('sql_mode'))) ctx.session.modes = new Set(ALL_MODES)
      } else add('execute', 'EXECUTE', {writes: true, opaque: true, unseen: `EXECUTE ${name}: no statement of that name was prepared in this session through hoop, so what it runs cannot be judged`})
      return true
    }
    case 'DEALLOCATE': {
      const m = new RegExp(String.raw`^DEALLOCATE\s+PREPARE\s+(${IDENT})\s*$`, 'is').exec(text)
      if (m) forgetPrepared(ctx.prepared, tableName(m[1]).toLowerCase())
      return add('other', 'DEALLOCATE PREPARE')
    }
    case 'HANDLER': {
      const m = new RegExp(String.raw`^HANDLER\s+(${QNAME})\s+(OPEN|READ|CLOSE)\b`, 'is').exec(text)
      if (!m) throw new Unparsable('HANDLER statement not understood')
      return add('select', `HANDLER ${m[2].toUpperCase()}`, {tables: [tableName(m[1].replace(/\s+/g, ''))]})
    }
    case 'DO': {
      const inner = selectFindings(`SELECT ${text.slice(2)}`)
      return add('other', 'DO', {tables: inner.tables, functions: inner.functions, writes: inner.writes})
    }
    case 'SAVEPOINT':
      return add('transaction', 'SAVEPOINT')
    case 'RELEASE':
      return add('transaction', 'RELEASE SAVEPOINT')
    case 'XA':
      return add('transaction', `XA ${w1 ?? ''}`.trim(), {writes: true})
    case 'UNLOCK':
      return add('lock', 'UNLOCK TABLES')
    case 'FLUSH':
    case 'RESET':
    case 'PURGE':
    case 'CACHE':
      return add('maintenance', w0, {writes: true})
    case 'OPTIMIZE':
    case 'REPAIR':
    case 'CHECK':
    case 'CHECKSUM':
      return add('maintenance', `${w0} TABLE`, {writes: w0 === 'OPTIMIZE' || w0 === 'REPAIR', tables: tablesAfter(text, /^\w+\s+(?:NO_WRITE_TO_BINLOG\s+|LOCAL\s+)?TABLES?\s+/i)})
    case 'ANALYZE': {
      if (/^ANALYZE\s+(?:NO_WRITE_TO_BINLOG\s+|LOCAL\s+)?TABLES?\b/i.test(text)) return add('maintenance', 'ANALYZE TABLE', {writes: true, tables: tablesAfter(text, /^ANALYZE\s+(?:NO_WRITE_TO_BINLOG\s+|LOCAL\s+)?TABLES?\s+/i)})
      // MariaDB's ANALYZE <statement> runs the statement.
      return runs(text.replace(/^ANALYZE\s+(?:FORMAT\s*=\s*\w+\s+)?/i, ''), 'ANALYZE', ctx, out, depth, via, index)
    }
    case 'EXPLAIN':
    case 'DESCRIBE':
    case 'DESC': {
      const a = /^(?:EXPLAIN|DESCRIBE|DESC)\s+(?:FORMAT\s*=\s*\w+\s+)?ANALYZE\s+(?:FORMAT\s*=\s*\w+\s+)?/i.exec(text)
      if (a) return runs(text.slice(a[0].length), 'EXPLAIN ANALYZE', ctx, out, depth, via, index)
      const rest = text.replace(/^(?:EXPLAIN|DESCRIBE|DESC)\s+(?:EXTENDED\s+|PARTITIONS\s+|FORMAT\s*=\s*\w+\s+)?/i, '')
      if (/^(SELECT|WITH|INSERT|REPLACE|UPDATE|DELETE|TABLE|\()/i.test(rest)) {
        const inner: Statement[] = []
        analyzeOne(rest, ctx, inner, depth + 1, via, index)
        const tables = [...new Set(inner.flatMap((s) => s.tables))]
        return add('explain', 'EXPLAIN', {tables, functions: [...new Set(inner.flatMap((s) => s.functions))]})
      }
      if (/^FOR\s+CONNECTION\b/i.test(rest)) return add('explain', 'EXPLAIN')
      return add('show', 'DESCRIBE', {tables: tablesAfter(text, /^\w+\s+/i).slice(0, 1)})
    }
    case 'KILL':
      return add('other', 'KILL', {writes: true})
    case 'SHUTDOWN':
    case 'RESTART':
    case 'BINLOG':
      return add('other', w0, {writes: true})
    case 'INSTALL':
    case 'UNINSTALL':
      return add('ddl', `${w0} ${w1 ?? ''}`.trim(), {writes: true})
    case 'CHANGE':
    case 'START':
    case 'STOP':
      if (/^(?:START|STOP)\s+(?:SLAVE|REPLICA|ALL\s+SLAVES|GROUP_REPLICATION)\b/i.test(text) || w0 === 'CHANGE') return add('other', `${w0} ${w1 ?? ''}`.trim(), {writes: true})
      return false
    case 'HELP':
      return add('other', 'HELP')
    case 'GET':
    case 'SIGNAL':
    case 'RESIGNAL':
      return add('other', w0)
    case 'BACKUP':
      return add('lock', `BACKUP ${w1 ?? ''}`.trim(), {writes: true})
    case 'LOAD':
      if (w1 === 'XML' || w1 === 'INDEX') {
        const t = /\bINTO\s+TABLE\s+(\S+)/i.exec(text)
        return add(w1 === 'XML' ? 'copy' : 'maintenance', `LOAD ${w1}`, {writes: true, copyFile: w1 === 'XML' && !/^LOAD\s+XML\s+(?:LOW_PRIORITY\s+|CONCURRENT\s+)?LOCAL\b/i.test(text), tables: t ? [tableName(t[1])] : []})
      }
      return false
    case 'CREATE':
    case 'ALTER':
    case 'DROP':
    case 'RENAME': {
      const m = /^(?:CREATE|ALTER|DROP|RENAME)\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?(USER|ROLE|PROCEDURE|FUNCTION|EVENT|TRIGGER|SERVER|TABLESPACE|LOGFILE\s+GROUP|SEQUENCE|PACKAGE(?:\s+BODY)?|RESOURCE\s+GROUP|SPATIAL\s+REFERENCE\s+SYSTEM|PREPARE)\b/i.exec(text)
      if (!m) return false
      const obj = m[1].toUpperCase().replace(/\s+/g, ' ')
      if (w0 === 'DROP' && obj === 'PREPARE') {
        const p = new RegExp(String.raw`^DROP\s+PREPARE\s+(${IDENT})\s*$`, 'is').exec(text)
        if (p) forgetPrepared(ctx.prepared, tableName(p[1]).toLowerCase())
        return add('other', 'DEALLOCATE PREPARE')
      }
      const command = `${w0} ${obj}`
      if (obj === 'USER' || obj === 'ROLE') return add(w0 === 'DROP' ? 'drop' : 'grant', command, {writes: true})
      if (w0 === 'DROP') return add('drop', command, {writes: true})
      return add('ddl', command, {writes: true, opaque: obj === 'PROCEDURE' || obj === 'FUNCTION' || obj === 'EVENT'})
    }
    case 'SET': {
      if (/^SET\s+(?:DEFAULT\s+)?ROLE\b/i.test(text) || /^SET\s+PASSWORD\b/i.test(text)) return add('grant', /PASSWORD/i.test(w1 ?? '') ? 'SET PASSWORD' : 'SET ROLE', {writes: true})
      const names = /^SET\s+(?:NAMES|CHARACTER\s+SET|CHARSET)\s+(?:'([^']*)'|"([^"]*)"|`([^`]*)`|(\w+))/i.exec(text)
      if (names) {
        const cs = (names[1] ?? names[2] ?? names[3] ?? names[4] ?? '').toLowerCase()
        return add('set', 'SET NAMES', {settings: ['names'], ...(UNSAFE_CHARSETS.has(cs) ? {unseen: charsetUnseen(cs)} : {})})
      }
      if (/^SET\s+(?:NAMES|CHARACTER\s+SET|CHARSET)\b/i.test(text)) return add('set', 'SET NAMES', {settings: ['names'], unseen: charsetUnseen('(not understood)')})
      const dflt = /^SET\s+(?:SESSION\s+|LOCAL\s+|@@(?:SESSION\.|LOCAL\.)?)?sql_mode\s*:?=\s*DEFAULT\s*$/i.exec(text)
      if (dflt) {
        ctx.session.modes = new Set(ctx.session.globalModes)
        return add('set', 'SET', {settings: ['sql_mode']})
      }
      const t = /^SET\s+(GLOBAL\s+|SESSION\s+|LOCAL\s+)?TRANSACTION\b(.*)$/is.exec(text)
      if (t) return add('set', 'SET TRANSACTION', {writes: /\bGLOBAL\b/i.test(t[1] ?? '') || /READ\s+WRITE/i.test(t[2]), settings: ['transaction']})
      const st = /^SET\s+STATEMENT\s+(.*?)\s+FOR\s+(.*)$/is.exec(text)
      if (st) {
        analyzeOne(`SET ${st[1]}`, ctx, out, depth + 1, via, index)
        analyzeOne(st[2], ctx, out, depth + 1, via, index)
        return true
      }
      return false
    }
    default:
      return false
  }
}

/** ANALYZE <stmt> / EXPLAIN ANALYZE <stmt>: the statement runs, so it is judged as itself. */
function runs(inner: string, prefix: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number): boolean {
  const start = out.length
  analyzeOne(inner, ctx, out, depth + 1, via ?? 'explain', index)
  const s = out[start]
  if (s) s.command = `${prefix} ${s.command}`
  return true
}

function tablesAfter(text: string, prefix: RegExp): string[] {
  const rest = text.replace(prefix, '')
  return rest
    .split(',')
    .map((t) => t.trim().split(/\s+/)[0])
    .filter((t) => t && new RegExp(`^${QNAME}$`).test(t))
    .map(tableName)
}

function analyzeOne(text: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number): void {
  if (depth > MAX_DEPTH) throw new Unparsable('statements nested too deeply')
  if (!text.trim()) return
  // `@v := ...` outside SET (SELECT, DO, UPDATE ...): the variable may now hold anything.
  if (!/^SET\b/i.test(text.trim())) for (const m of text.matchAll(new RegExp(String.raw`@(${IDENT})\s*:=`, 'g'))) forgetVariable(ctx, tableName(m[1]))
  const start = out.length
  if (byKeyword(text.trim(), ctx, out, depth, via, index)) {
    markStatistics(out.slice(start))
    return
  }
  let asts: Node[]
  try {
    asts = parseMysql(text, ctx.session.parses)
  } catch (err) {
    // SHOW and SET forms the grammar lacks are still harmless enough to classify.
    if (/^SHOW\b/i.test(text.trim())) {
      out.push(make('show', 'SHOW', index, via))
      return
    }
    throw err
  }
  for (const ast of asts) {
    const st = classify(ast, ctx, index, via, text)
    out.push(st)
    const upsert = upsertPart(ast, st, index)
    if (upsert) out.push(upsert)
    noteAssignments(ast, ctx)
  }
  markStatistics(out.slice(start))
}

/** Relations whose rows sample column values (histograms, min/max, full-text words). */
const STATISTICS_RELATIONS = new Set(['column_stats', 'column_statistics', 'innodb_ft_index_table', 'innodb_ft_index_cache'])

function markStatistics(statements: Statement[]): void {
  for (const s of statements) if (s.tables.some((t) => STATISTICS_RELATIONS.has(t.slice(t.lastIndexOf('.') + 1).toLowerCase()))) s.readsStatistics = true
}

function forgetVariable(ctx: Ctx, name: string): void {
  assignVariable(ctx.session, name, undefined)
  ctx.variables.delete(name.toLowerCase())
}

/** Variables a statement assigns outside SET: SELECT ... INTO @v, `@v := ...`; a CALL may assign any. */
function noteAssignments(ast: Node, ctx: Ctx): void {
  const type = String(ast.type ?? '').toLowerCase()
  if (type === 'call') ctx.session.variablesUnsure = true
  if (type === 'set') return
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk)
    if (!isRecord(v)) return
    if (v.type === 'var' && v.prefix === '@' && typeof v.name === 'string' && isRecord(ast.into) && Array.isArray(ast.into.expr) && ast.into.expr.includes(v)) forgetVariable(ctx, v.name)
    if (v.type === 'assign' && isRecord(v.left) && v.left.prefix === '@' && typeof v.left.name === 'string') forgetVariable(ctx, v.left.name)
    for (const [k, x] of Object.entries(v)) if (k !== 'tableList' && k !== 'columnList' && typeof x === 'object' && x !== null) walk(x)
  }
  walk(ast)
}

/** The rows a statement writes are listed (VALUES, SET a = ...) rather than selected. */
function listsRows(ast: Node): boolean {
  return !(isRecord(ast.values) && String(ast.values.type ?? '') === 'select')
}

/** `db.table` or `table` as a ColumnRef's schema and table. */
function tableRef(name: string): {schema?: string; table: string} {
  const dot = name.lastIndexOf('.')
  return dot < 0 ? {table: name} : {schema: name.slice(0, dot), table: name.slice(dot + 1)}
}

/** What a statement stores and which columns flow into it (for policy's no-laundering rule). */
function withStores(s: Statement, ast: Node): Statement {
  const type = String(ast.type ?? '').toLowerCase()
  const flows = mysqlStatementFlows(ast)
  const stores: StoreFlow[] = []
  if (flows.values.length > 0) {
    const into = isRecord(ast.into) ? String(ast.into.keyword ?? '').toLowerCase() : ''
    const store =
      type === 'select' ? (into === 'var' ? 'variable' : into === 'outfile' || into === 'dumpfile' ? 'file' : undefined) :
      type === 'create' ? (String(ast.keyword ?? '').toLowerCase() === 'view' ? 'view' : 'table') : 'table'
    if (store) stores.push({stores: store, by: s.command, flows: flows.values})
  }
  for (const c of flows.calls) if (c.flows.length > 0) stores.push({stores: c.stores, by: c.fn, flows: c.flows.map((from) => ({from}))})
  if (stores.length > 0) s.stores = stores
  return s
}

// ---------------------------------------------------------------------------------------------
// WHERE clauses: does a condition bound the rows of the target, or could it hold for every row?

interface Target {
  /** Names that qualify the target's columns: aliases, table names, db.table. */
  names: Set<string>
  /** Unqualified column names belong to the target (no other table is in scope). */
  unqualified: boolean
}

function targetOf(tables: Node[], unqualified: boolean): Target {
  const names = new Set<string>()
  for (const t of tables) {
    if (typeof t.as === 'string' && t.as) names.add(t.as.toLowerCase())
    else if (typeof t.table === 'string') {
      names.add(t.table.toLowerCase())
      if (typeof t.db === 'string' && t.db) names.add(`${t.db}.${t.table}`.toLowerCase())
    }
  }
  return {names, unqualified}
}

/**
 * True when `cond` restricts the target's rows by their own values: a condition that references no
 * column of the target (`1 = 1`, `TRUE`, `'a' = 'a'`, `RAND() < 2`) is the same for every row, and
 * `a = a` holds for every row that has a value. AND bounds when any part does, OR only when all do.
 */
function restricts(cond: unknown, t: Target): boolean {
  if (!isRecord(cond)) return false
  if (cond.type === 'binary_expr') {
    const op = String(cond.operator ?? '').toUpperCase()
    if (op === 'AND' || op === '&&') return restricts(cond.left, t) || restricts(cond.right, t)
    if (op === 'OR' || op === '||' || op === 'XOR') return restricts(cond.left, t) && restricts(cond.right, t)
    if (['=', '>=', '<=', '<=>', 'LIKE'].includes(op) && sameExpression(cond.left, cond.right)) return false
  }
  return refersTo(cond, t, new Set(), false)
}

function sameExpression(a: unknown, b: unknown): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b)
}

function refersTo(v: unknown, t: Target, shadow: ReadonlySet<string>, inSubquery: boolean): boolean {
  if (Array.isArray(v)) return v.some((x) => refersTo(x, t, shadow, inSubquery))
  if (!isRecord(v)) return false
  if (v.type === 'column_ref') {
    const table = typeof v.table === 'string' && v.table ? v.table.toLowerCase() : undefined
    if (!table) return t.unqualified && !inSubquery
    const qualified = typeof v.db === 'string' && v.db ? `${v.db}.${table}`.toLowerCase() : table
    return (t.names.has(qualified) || t.names.has(table)) && !shadow.has(table)
  }
  if (isRecord(v.ast)) {
    const hidden = new Set(shadow)
    const from = Array.isArray(v.ast.from) ? v.ast.from.filter(isRecord) : []
    for (const f of from) {
      const n = typeof f.as === 'string' && f.as ? f.as : typeof f.table === 'string' ? f.table : undefined
      if (n && t.names.has(n.toLowerCase())) hidden.add(n.toLowerCase())
    }
    return refersTo(v.ast, t, hidden, true)
  }
  return Object.entries(v).some(([k, x]) => k !== 'tableList' && k !== 'columnList' && typeof x === 'object' && refersTo(x, t, shadow, inSubquery))
}

/** REPLACE and INSERT ... ON DUPLICATE KEY UPDATE rewrite existing rows: their update part. */
function upsertPart(ast: Node, st: Statement, index: number): Statement | undefined {
  const type = String(ast.type ?? '').toLowerCase()
  const odku = type === 'insert' && ast.on_duplicate_update != null
  if (type !== 'replace' && !odku) return undefined
  const s: Statement = {kind: 'update', command: odku ? 'INSERT ON DUPLICATE KEY UPDATE' : 'REPLACE', tables: st.tables, writes: true, functions: st.functions, index, via: 'upsert', hasWhere: listsRows(ast)}
  return s
}

function classify(ast: Node, ctx: Ctx, index: number, via: Statement['via'], text: string): Statement {
  const type = String(ast.type ?? '').toLowerCase()
  const f = findings(ast)
  const base = (kind: StatementKind, command: string, extra: Partial<Statement> = {}): Statement =>
    make(kind, command, index, via, {tables: f.tables, functions: f.functions, writes: f.writes, ...extra})
  const keyword = String(ast.keyword ?? '').toUpperCase()
  switch (type) {
    case 'select': {
      const into = isRecord(ast.into) ? String(ast.into.keyword ?? '').toLowerCase() : ''
      if (into === 'outfile' || into === 'dumpfile') return withStores(base('copy', `SELECT INTO ${into.toUpperCase()}`, {writes: true, copyFile: true}), ast)
      const locks = f.locksRows
      return withStores(base('select', 'SELECT', {writes: f.writes || locks, ...(locks ? {locksRows: true} : {})}), ast)
    }
    case 'insert':
    case 'replace':
      return withStores(base('insert', type.toUpperCase(), {writes: true}), ast)
    case 'update': {
      // The tables a multi-table UPDATE writes are those its SET names (all of them when a SET column is unqualified).
      const tables = Array.isArray(ast.table) ? ast.table.filter(isRecord) : []
      const named = (Array.isArray(ast.set) ? ast.set.filter(isRecord) : []).map((x) => (typeof x.table === 'string' ? x.table.toLowerCase() : undefined))
      const targets = named.includes(undefined) ? tables : tables.filter((t) => named.includes(String(t.as || t.table || '').toLowerCase()))
      return withStores(base('update', 'UPDATE', {writes: true, hasWhere: restricts(ast.where, targetOf(targets, tables.length === 1))}), ast)
    }
    case 'delete': {
      const targets = Array.isArray(ast.table) ? ast.table.filter(isRecord) : []
      const from = Array.isArray(ast.from) ? ast.from.filter(isRecord) : []
      return withStores(base('delete', 'DELETE', {writes: true, hasWhere: restricts(ast.where, targetOf(targets, from.length <= 1))}), ast)
    }
    case 'drop': {
      const name = ast.name
      const tables = typeof name === 'string' ? [name] : f.tables
      return base('drop', `DROP ${keyword || 'OBJECT'}`, {writes: true, tables})
    }
    case 'truncate':
      return base('truncate', 'TRUNCATE TABLE', {writes: true})
    case 'create': {
      if (keyword === 'USER' || keyword === 'ROLE') return base('grant', `CREATE ${keyword}`, {writes: true})
      const tables = keyword === 'DATABASE' || keyword === 'SCHEMA' ? [String(isRecord(ast.database) ? (ast.database.value ?? '') : (ast.database ?? ''))].filter(Boolean) : f.tables
      return withStores(base('ddl', `CREATE ${keyword || 'OBJECT'}`, {writes: true, tables: tables.length ? tables : f.tables}), ast)
    }
    case 'alter': {
      const alters = (Array.isArray(ast.table) ? ast.table : []).filter(isRecord).flatMap((t) => (typeof t.table === 'string' ? [{...tableRef(t.db ? `${String(t.db)}.${t.table}` : t.table), column: '*'}] : []))
      return base('ddl', `ALTER ${keyword || 'TABLE'}`, {writes: true, ...(alters.length ? {alters} : {})})
    }
    case 'rename': {
      // RENAME TABLE a TO b, c TO d: the tables renamed.
      const alters: ColumnRef[] = []
      for (const pair of Array.isArray(ast.table) ? ast.table : []) {
        const from = Array.isArray(pair) && isRecord(pair[0]) ? pair[0] : undefined
        if (from && typeof from.table === 'string') alters.push({...tableRef(from.db ? `${String(from.db)}.${from.table}` : from.table), column: '*'})
      }
      return base('ddl', 'RENAME TABLE', {writes: true, ...(alters.length ? {alters} : {})})
    }
    case 'grant':
    case 'revoke':
      return base('grant', type.toUpperCase(), {writes: true})
    case 'lock':
      return base('lock', 'LOCK TABLES', {writes: true})
    case 'unlock':
      return base('lock', 'UNLOCK TABLES', {writes: false})
    case 'set':
      return setStatement(ast, ctx, index, via, text)
    case 'show':
      return base('show', 'SHOW', {writes: false})
    case 'transaction': {
      const action = isRecord(ast.expr) && isRecord(ast.expr.action) ? String(ast.expr.action.value ?? '').toUpperCase() : 'TRANSACTION'
      return base('transaction', action === 'START' ? 'START TRANSACTION' : action, {writes: /READ\s+WRITE/i.test(text)})
    }
    case 'use':
      return make('other', 'USE', index, via, {settings: ['database']})
    case 'call': {
      const fn = isRecord(ast.expr) ? functionName(ast.expr) : undefined
      const functions = [...new Set([...(fn ? [fn] : []), ...f.functions])]
      return base('call', 'CALL', {writes: true, opaque: true, functions})
    }
    case 'explain':
    case 'desc':
      return base('explain', 'EXPLAIN', {writes: false})
    case 'load_data': {
      const local = ast.local != null && ast.local !== false
      return base('copy', local ? 'LOAD DATA LOCAL' : 'LOAD DATA', {writes: true, copyFile: !local})
    }
    default:
      return base('other', type.toUpperCase() || 'UNKNOWN', {writes: true})
  }
}

/** Settings whose change takes a session out of read-only or away from the audit trail. */
const ESCAPING_SETTINGS = new Set(['transaction_read_only', 'tx_read_only', 'read_only', 'super_read_only', 'sql_log_bin', 'sql_log_off', 'general_log', 'sql_safe_updates', 'foreign_key_checks', 'session_track_system_variables'])

function setStatement(ast: Node, ctx: Ctx, index: number, via: Statement['via'], text: string): Statement {
  const settings: string[] = []
  let writes = /^SET\s+(?:GLOBAL|PERSIST|PERSIST_ONLY)\b/i.test(text)
  const global = String(ast.keyword ?? '').toUpperCase() === 'GLOBAL'
  let unseen: string | undefined
  const f = findings(ast)
  for (const e of Array.isArray(ast.expr) ? ast.expr : []) {
    if (!isRecord(e) || !isRecord(e.left)) continue
    const left = e.left
    const prefix = String(left.prefix ?? '')
    const name = String(left.name ?? '').toLowerCase()
    const members = Array.isArray(left.members) ? left.members.map(String) : []
    const full = [name, ...members].join('.').toLowerCase()
    const right = e.right
    if (prefix === '@') {
      // A user variable: remember what it may hold (PREPARE ... FROM @var is then judged).
      if (isRecord(right) && /string/.test(String(right.type ?? ''))) {
        assignVariable(ctx.session, name, String(right.value ?? ''))
        ctx.variables.set(name, String(right.value ?? ''))
      } else {
        assignVariable(ctx.session, name, isSqlModeVariable(right) === 'session' ? MODE_VALUE_PREFIX + ctx.mode : undefined)
        ctx.variables.delete(name)
      }
      continue
    }
    const setting = full.replace(/^(global|session|local|persist|persist_only)\./, '')
    const isGlobal = global || full.startsWith('global.') || full.startsWith('persist')
    if (isGlobal) writes = true
    if (ESCAPING_SETTINGS.has(setting)) writes = true
    if (setting === 'sql_mode') {
      const modes = sqlModesOf(right, ctx)
      if (isGlobal) ctx.session.globalModes = new Set([...ctx.session.globalModes, ...modes])
      else ctx.session.modes = modes
    }
    if (setting === 'character_set_client' || setting === 'names' || setting === 'character_set_connection') {
      const value = isRecord(right) ? String(right.value ?? right.column ?? '') : ''
      if (!value || UNSAFE_CHARSETS.has(value.toLowerCase())) unseen = charsetUnseen(value || '(computed)')
    }
    settings.push(setting)
  }
  if (/@@global\./i.test(text)) writes = true
  const s = make('set', 'SET', index, via, {settings, writes: writes || f.writes, functions: f.functions, tables: f.tables, ...(unseen ? {unseen} : {})})
  const flows = mysqlStatementFlows(ast)
  const stores: StoreFlow[] = flows.calls.filter((c) => c.flows.length > 0).map((c) => ({stores: c.stores, by: c.fn, flows: c.flows.map((from) => ({from}))}))
  if (stores.length) s.stores = stores
  return s
}

/**
 * Character sets in which a multibyte character may end in the byte of `\` (or a quote), so the
 * server would read quotes where hoop, reading UTF-8, does not: text in them cannot be judged.
 */
const UNSAFE_CHARSETS = new Set(['big5', 'cp932', 'gbk', 'sjis', 'gb18030'])

function charsetUnseen(value: string): string {
  return `character set ${value} lets multibyte characters hide quotes and backslashes from hoop, so later statements could not be judged`
}

/** `@@sql_mode` / `@@session.sql_mode` / `@@local.sql_mode` ('session'), `@@global.sql_mode` ('global'). */
function isSqlModeVariable(v: unknown): 'session' | 'global' | undefined {
  if (!isRecord(v) || v.type !== 'var' || v.prefix !== '@@') return undefined
  const full = [String(v.name ?? ''), ...(Array.isArray(v.members) ? v.members.map(String) : [])].join('.').toLowerCase()
  if (full === 'sql_mode' || full === 'session.sql_mode' || full === 'local.sql_mode') return 'session'
  return full === 'global.sql_mode' ? 'global' : undefined
}

/**
 * The lexing modes `SET sql_mode = <expr>` may leave the session in (it is read in ctx.mode): a
 * literal, @@sql_mode itself, @@GLOBAL.sql_mode, a user variable holding one of those, CONCAT of
 * @@sql_mode and literals, REPLACE(@@sql_mode, literal, literal). Anything else may be any mode.
 */
function sqlModesOf(v: unknown, ctx: Ctx): Set<ModeKey> {
  const all = new Set(ALL_MODES)
  if (!isRecord(v)) return all
  if (/string/.test(String(v.type ?? ''))) return new Set([parseSqlMode(String(v.value ?? ''))])
  const sys = isSqlModeVariable(v)
  if (sys === 'session') return new Set([ctx.mode])
  if (sys === 'global') return new Set(ctx.session.globalModes)
  if (v.type === 'var' && v.prefix === '@') {
    const values = variableValues(ctx.session, String(v.name ?? ''))
    if (!values || values.length === 0) return all
    return new Set(values.map((x) => (x.startsWith(MODE_VALUE_PREFIX) ? (x.slice(MODE_VALUE_PREFIX.length) as ModeKey) : parseSqlMode(x))))
  }
  if (v.type === 'function') {
    const fn = (functionName(v) ?? '').toLowerCase()
    const args = isRecord(v.args) && Array.isArray(v.args.value) ? v.args.value : []
    const literal = (x: unknown) => (isRecord(x) && /string/.test(String(x.type ?? '')) ? String(x.value ?? '') : undefined)
    const current = ctx.mode
    if (fn === 'concat' && args.length > 0 && args.every((x) => isSqlModeVariable(x) === 'session' || literal(x) !== undefined)) {
      const added = parseSqlMode(args.map((x) => literal(x) ?? '').join(','))
      return new Set([`${current.includes('A') || added.includes('A') ? 'A' : ''}${current.includes('N') || added.includes('N') ? 'N' : ''}` as ModeKey])
    }
    if (fn === 'replace' && args.length === 3 && isSqlModeVariable(args[0]) === 'session' && literal(args[1]) !== undefined && literal(args[2]) !== undefined) {
      // Which flags survive the replacement depends on the whole text: the current mode, with or without what is named.
      const named = parseSqlMode(`${literal(args[1])},${literal(args[2])}`)
      const out = new Set<ModeKey>([current])
      for (const k of ALL_MODES) if ([...k].every((fl) => current.includes(fl) || named.includes(fl)) && [...current].every((fl) => k.includes(fl) || named.includes(fl))) out.add(k)
      return out
    }
  }
  return all
}

// ---------------------------------------------------------------------------------------------
// Tree walk: tables, functions, row locks

interface Findings {
  tables: string[]
  functions: string[]
  locksRows: boolean
  writes: boolean
}

/** Functions that change state or reach outside the database even when called from a SELECT. */
const WRITING_FUNCTIONS = new Set(['get_lock', 'release_lock', 'release_all_locks', 'sys_exec', 'sys_eval', 'setval', 'nextval', 'lastval'])

function functionName(n: Node): string | undefined {
  const name = n.name
  if (typeof name === 'string') return name.toLowerCase()
  if (isRecord(name) && Array.isArray(name.name)) {
    return name.name
      .map((p) => (isRecord(p) ? String(p.value ?? '') : String(p)))
      .filter(Boolean)
      .join('.')
      .toLowerCase()
  }
  return undefined
}

function findings(ast: Node): Findings {
  const tables = new Set<string>()
  const functions = new Set<string>()
  let locksRows = false
  const walk = (v: unknown, ctes: ReadonlySet<string>): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x, ctes)
      return
    }
    if (!isRecord(v)) return
    let scope = ctes
    if (Array.isArray(v.with)) {
      const names = new Set(ctes)
      for (const c of v.with) if (isRecord(c) && isRecord(c.name)) names.add(String(c.name.value).toLowerCase())
      scope = names
    }
    const type = v.type
    if (type === 'function' || type === 'aggr_func') {
      const name = functionName(v)
      if (name) functions.add(name)
    } else if (typeof v.table === 'string' && 'db' in v && type !== 'column_ref') {
      const db = typeof v.db === 'string' && v.db ? v.db : undefined
      if (db || !scope.has(v.table.toLowerCase())) tables.add(db ? `${db}.${v.table}` : v.table)
    }
    if (typeof v.locking_read === 'string' && v.locking_read) locksRows = true
    for (const [k, x] of Object.entries(v)) {
      if (k === 'tableList' || k === 'columnList') continue
      if (typeof x === 'object' && x !== null) walk(x, scope)
    }
  }
  walk(ast, new Set())
  const fns = [...functions]
  return {tables: [...tables], functions: fns, locksRows, writes: fns.some((f) => WRITING_FUNCTIONS.has(f))}
}

function selectFindings(text: string): Findings {
  const asts = parseMysql(text)
  const all: Findings = {tables: [], functions: [], locksRows: false, writes: false}
  for (const a of asts) {
    const f = findings(a)
    all.tables.push(...f.tables)
    all.functions.push(...f.functions)
    all.writes ||= f.writes
  }
  return all
}
