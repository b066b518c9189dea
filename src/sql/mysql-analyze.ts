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
import type {Operation, Statement, StatementKind} from '../policy/types.js'
import {isRecord, LexError, MAX_SQL_LENGTH, parseMysql, ROUTINE_RE, splitStatements, unquoteString, Unparsable, type Node} from './mysql-parser.js'

const MAX_DEPTH = 6

export interface MysqlAnalyzeOptions {
  /**
   * Prepared statements of the session (SQL-level PREPARE), by lower-case name. PREPARE adds to
   * it; EXECUTE of a known name is judged as the prepared statement. One map per client session.
   */
  prepared?: Map<string, Statement[]>
  /** User variables assigned a string literal in the session (`SET @sql = '...'`), by lower-case name. */
  variables?: Map<string, string>
}

// ---------------------------------------------------------------------------------------------
// The Operation

/** Analyzes SQL text sent in one COM_QUERY (or COM_STMT_PREPARE). */
export function analyzeMysql(sql: string, opts: MysqlAnalyzeOptions = {}): Operation {
  if (sql.length > MAX_SQL_LENGTH) {
    return {engine: 'mysql', statements: [], unparsable: {reason: `statement text of ${sql.length} characters exceeds the analysis limit of ${MAX_SQL_LENGTH}`}}
  }
  const ctx: Ctx = {prepared: opts.prepared ?? new Map(), variables: opts.variables ?? new Map()}
  try {
    const out: Statement[] = []
    analyzeText(sql, ctx, out, 0, undefined, undefined)
    return {engine: 'mysql', statements: out}
  } catch (err) {
    if (err instanceof Unparsable || err instanceof LexError) return {engine: 'mysql', statements: [], unparsable: {reason: err.message}}
    throw err
  }
}

interface Ctx {
  prepared: Map<string, Statement[]>
  variables: Map<string, string>
}

function analyzeText(sql: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number | undefined): void {
  if (depth > MAX_DEPTH) throw new Unparsable('statements nested too deeply')
  const pieces = splitStatements(sql)
  for (let k = 0; k < pieces.length; k++) {
    const idx = index ?? k
    // A stored program body contains `;`: the rest of the text is one statement.
    if (ROUTINE_RE.test(pieces[k])) {
      const rest = pieces.slice(k).join('; ')
      routine(rest, ctx, out, depth, via, idx)
      return
    }
    analyzeOne(pieces[k], ctx, out, depth, via, idx)
  }
}

function routine(text: string, ctx: Ctx, out: Statement[], depth: number, via: Statement['via'], index: number): void {
  const m = ROUTINE_RE.exec(text) as RegExpExecArray
  const s = make('ddl', `CREATE ${m[1].toUpperCase().replace(/\s+/g, ' ')}`, index, via, {writes: true, opaque: true})
  const on = /\bON\s+([`\w.$]+)/i.exec(text)
  if (m[1].toUpperCase() === 'TRIGGER' && on) s.tables.push(tableName(on[1]))
  out.push(s)
  // Best effort: the SQL statements inside the body, judged as reached through a function.
  const body = text.replace(/^[\s\S]*?\bBEGIN\b/i, '')
  for (const piece of safeSplit(body)) {
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

function safeSplit(text: string): string[] {
  try {
    return splitStatements(text)
  } catch {
    return []
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
        // The text is whatever the variable holds at run time: opaque, and counted as a write.
        add('other', 'PREPARE FROM VARIABLE', {writes: true, opaque: true})
        const known = ctx.variables.get(tableName(src.slice(1)).toLowerCase())
        if (known !== undefined && depth < MAX_DEPTH) {
          try {
            analyzeText(known, ctx, out, depth + 1, via ?? 'prepare', index)
          } catch {
            /* the opaque statement above already covers it */
          }
        }
        ctx.prepared.set(name, out.slice(start).map((s) => ({...s})))
        return true
      }
      analyzeText(unquoteString(src), ctx, out, depth + 1, via ?? 'prepare', index)
      if (out.length === start) add('other', 'PREPARE', {writes: false})
      ctx.prepared.set(name, out.slice(start).map((s) => ({...s})))
      return true
    }
    case 'EXECUTE': {
      const m = new RegExp(String.raw`^EXECUTE\s+(${IDENT})(?:\s+USING\s+.*)?$`, 'is').exec(text)
      if (!m) {
        if (/^EXECUTE\s+IMMEDIATE\b/i.test(text)) return add('other', 'EXECUTE IMMEDIATE', {writes: true, opaque: true})
        throw new Unparsable('EXECUTE statement not understood')
      }
      const known = ctx.prepared.get(tableName(m[1]).toLowerCase())
      if (known && known.length) for (const s of known) out.push({...s, index, via: via ?? 'execute'})
      else add('execute', 'EXECUTE', {writes: true, opaque: true})
      return true
    }
    case 'DEALLOCATE':
      return add('other', 'DEALLOCATE PREPARE')
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
      if (w0 === 'DROP' && obj === 'PREPARE') return add('other', 'DEALLOCATE PREPARE')
      const command = `${w0} ${obj}`
      if (obj === 'USER' || obj === 'ROLE') return add(w0 === 'DROP' ? 'drop' : 'grant', command, {writes: true})
      if (w0 === 'DROP') return add('drop', command, {writes: true})
      return add('ddl', command, {writes: true, opaque: obj === 'PROCEDURE' || obj === 'FUNCTION' || obj === 'EVENT'})
    }
    case 'SET': {
      if (/^SET\s+(?:DEFAULT\s+)?ROLE\b/i.test(text) || /^SET\s+PASSWORD\b/i.test(text)) return add('grant', /PASSWORD/i.test(w1 ?? '') ? 'SET PASSWORD' : 'SET ROLE', {writes: true})
      if (/^SET\s+(?:NAMES|CHARACTER\s+SET|CHARSET)\b/i.test(text)) return add('set', 'SET NAMES', {settings: ['names']})
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
  if (byKeyword(text.trim(), ctx, out, depth, via, index)) return
  let asts: Node[]
  try {
    asts = parseMysql(text)
  } catch (err) {
    // SHOW and SET forms the grammar lacks are still harmless enough to classify.
    if (/^SHOW\b/i.test(text.trim())) {
      out.push(make('show', 'SHOW', index, via))
      return
    }
    throw err
  }
  for (const ast of asts) out.push(classify(ast, ctx, index, via, text))
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
      if (into === 'outfile' || into === 'dumpfile') return base('copy', `SELECT INTO ${into.toUpperCase()}`, {writes: true, copyFile: true})
      const locks = f.locksRows
      return base('select', 'SELECT', {writes: f.writes || locks, ...(locks ? {locksRows: true} : {})})
    }
    case 'insert':
    case 'replace':
      return base('insert', type.toUpperCase(), {writes: true})
    case 'update':
      return base('update', 'UPDATE', {writes: true, hasWhere: ast.where != null})
    case 'delete':
      return base('delete', 'DELETE', {writes: true, hasWhere: ast.where != null})
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
      return base('ddl', `CREATE ${keyword || 'OBJECT'}`, {writes: true, tables: tables.length ? tables : f.tables})
    }
    case 'alter':
      return base('ddl', `ALTER ${keyword || 'TABLE'}`, {writes: true})
    case 'rename':
      return base('ddl', 'RENAME TABLE', {writes: true})
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
  const f = findings(ast)
  for (const e of Array.isArray(ast.expr) ? ast.expr : []) {
    if (!isRecord(e) || !isRecord(e.left)) continue
    const left = e.left
    const prefix = String(left.prefix ?? '')
    const name = String(left.name ?? '').toLowerCase()
    const members = Array.isArray(left.members) ? left.members.map(String) : []
    const full = [name, ...members].join('.').toLowerCase()
    if (prefix === '@') {
      // A user variable: remember a string literal (PREPARE ... FROM @var can then be judged).
      const right = e.right
      if (isRecord(right) && /string/.test(String(right.type ?? ''))) ctx.variables.set(name, String(right.value ?? ''))
      else ctx.variables.delete(name)
      continue
    }
    const setting = full.replace(/^(global|session|local|persist|persist_only)\./, '')
    if (full.startsWith('global.') || full.startsWith('persist')) writes = true
    if (ESCAPING_SETTINGS.has(setting)) writes = true
    settings.push(setting)
  }
  if (/@@global\./i.test(text)) writes = true
  return make('set', 'SET', index, via, {settings, writes: writes || f.writes, functions: f.functions, tables: f.tables})
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
