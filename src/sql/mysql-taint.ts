// MySQL / MariaDB taint analysis for masking: which output columns of each statement derive from a
// masked column. Column definitions carry the origin (org_table, org_name) of plain columns; for
// computed columns (UPPER(email), CONCAT(...), subqueries, derived tables, CTEs, UNION) we follow
// the expression that produced them. Unknown or ambiguous cases resolve to "tainted" (fail closed).
// The PostgreSQL counterpart is pg-taint.ts; both describe outputs as its OutputItem.
//
// Text is split in the session's sql_mode (ANSI_QUOTES, NO_BACKSLASH_ESCAPES: mysql-session.ts);
// when the session may be in several modes and they read the text differently, nothing is known.
// The same walk in "flow mode" (`mysqlStatementFlows`) tells policy which columns flow into what a
// statement stores (a table, a user variable, a file, a view), without knowing the mask plan.
import type {ColumnMatcher} from '../masking/columns.js'
import type {ColumnFlow, ColumnRef} from '../policy/types.js'
import {isRecord, MAX_SQL_LENGTH, parseMysql, ROUTINE_RE, splitStatements, type Node} from './mysql-parser.js'
import {lexMode, lexModesFor, type MysqlSession} from './mysql-session.js'
import {FlowMatcher, flowKey, flowRefs, joinFlows, UNKNOWN_FLOW, type OutputColumn, type OutputItem} from './taint.js'

export interface MysqlOutputAnalysis {
  /**
   * `rows`: a SELECT whose outputs are known; `opaque`: a statement whose result sets cannot be
   * seen from its text (CALL, EXECUTE, RETURNING...): computed columns are masked (fail closed);
   * `other`: no computed result columns (DML, SHOW, SET...).
   */
  kind: 'rows' | 'opaque' | 'other'
  outputs?: OutputItem[]
  /** Some masked column is read somewhere in the statement (fallback when a position is ambiguous). */
  readsMasked?: string
  /** The statement was parsed and walked, so `readsMasked` covers all it reads (not so for CALL, SET, SHOW...). */
  seen?: boolean
}

interface ScopeItem {
  alias: string
  rel?: {schema?: string; table: string}
  outputs?: OutputItem[]
  opaque?: boolean
}

interface Scope {
  items: ScopeItem[]
  ctes: Map<string, OutputItem[]>
  parent?: Scope
}

/**
 * Output analysis of each top-level statement of `sql`, in order; undefined when the text does not
 * parse or cannot be analysed (callers then mask every computed column). Never throws. `session`:
 * the session state policy analysis keeps (mysql-session.ts), so that text is read in the
 * session's sql_mode; without it, in the default mode.
 */
export function analyzeMysqlOutputs(sql: string, matcher: ColumnMatcher, session?: MysqlSession): MysqlOutputAnalysis[] | undefined {
  if (sql.length > MAX_SQL_LENGTH) return undefined
  try {
    let result: MysqlOutputAnalysis[] | undefined
    for (const mode of lexModesFor(session, sql)) {
      const r = outputsIn(matcher, splitStatements(sql, lexMode(mode)), session)
      if (!r) return undefined
      if (result && JSON.stringify(result) !== JSON.stringify(r)) return undefined // read differently in the modes the session may be in
      result = r
    }
    return result
  } catch {
    return undefined
  }
}

/**
 * Whether a stored procedure's body (information_schema.ROUTINES.ROUTINE_DEFINITION) may read a
 * masked column, for the result sets of a CALL. Only a body read in full is cleared: one plain
 * statement, or `BEGIN ... END` around plain statements that parse and are walked (SELECT, INSERT,
 * UPDATE, DELETE...), none reading a masked column. Anything procedural (DECLARE, IF, loops,
 * cursors, handlers, labels, nested blocks, SET, CALL, PREPARE/EXECUTE) or unparsable counts as
 * reading masked data (fail closed). Calls of stored functions are the caller's to check.
 */
export function procedureReadsMasked(body: string, matcher: ColumnMatcher, session?: MysqlSession): boolean {
  const block = /^\s*BEGIN\b([\s\S]*)\bEND\s*$/i.exec(body)
  const analysis = analyzeMysqlOutputs(block ? block[1] : body, matcher, session)
  return !analysis || analysis.some((a) => !a.seen || a.kind === 'opaque' || a.readsMasked !== undefined)
}

function outputsIn(matcher: ColumnMatcher, pieces: string[], session: MysqlSession | undefined): MysqlOutputAnalysis[] | undefined {
  const out: MysqlOutputAnalysis[] = []
  for (const piece of pieces) {
    const first = piece.split(/\s+/, 1)[0].toUpperCase()
    if (ROUTINE_RE.test(piece)) {
      out.push({kind: 'other'})
      break
    }
    if (['EXECUTE', 'CALL', 'HANDLER', 'ANALYZE'].includes(first)) {
      out.push({kind: first === 'HANDLER' ? 'other' : 'opaque'})
      continue
    }
    if (NO_ROWS_FIRST_WORDS.has(first)) {
      out.push({kind: 'other'})
      continue
    }
    let asts: Node[]
    try {
      asts = parseMysql(piece, session?.parses)
    } catch {
      return undefined
    }
    for (const ast of asts) out.push(new Taint(matcher).statement(ast))
  }
  return out
}

/** Statements whose results carry no table data (any other statement must parse, or masking fails closed). */
const NO_ROWS_FIRST_WORDS = new Set(
  'SET SHOW USE BEGIN START COMMIT ROLLBACK CREATE DROP ALTER GRANT REVOKE LOCK UNLOCK PREPARE DEALLOCATE FLUSH KILL DO LOAD TRUNCATE RENAME SAVEPOINT RELEASE XA OPTIMIZE REPAIR CHECK CHECKSUM DESCRIBE DESC EXPLAIN HELP RESET PURGE INSTALL UNINSTALL'.split(' '),
)

// ---------------------------------------------------------------------------------------------
// Flow mode: which columns flow into what a statement stores (for policy's no-laundering rule).

/** Something a statement stores into other than its own rows: a user variable, a server setting. */
export interface MysqlStoredCall {
  fn: string
  stores: 'variable' | 'setting'
  flows: ColumnRef[]
}

export interface MysqlStatementFlows {
  /** Columns flowing into the rows the statement writes or creates, or into SELECT ... INTO's targets. */
  values: ColumnFlow[]
  /** `@v := expr`, SET @v = expr, SET @@x = expr. */
  calls: MysqlStoredCall[]
}

/**
 * Flow analysis of one parsed statement (node-sql-parser tree): the columns whose values flow into
 * what it writes (INSERT / REPLACE / UPDATE values, CREATE TABLE ... SELECT, a view, SELECT ... INTO)
 * and into user variables and settings it assigns. Columns read only by predicates do not flow.
 */
export function mysqlStatementFlows(ast: Node): MysqlStatementFlows {
  const t = new Taint(new FlowMatcher(), true)
  return {values: t.flows(ast), calls: t.storedCalls}
}

class Taint {
  private masked: string | undefined
  readonly storedCalls: MysqlStoredCall[] = []

  constructor(
    private readonly m: ColumnMatcher,
    private readonly record = false,
  ) {}

  private join(older: string | undefined, newer: string | undefined): string | undefined {
    return this.record ? joinFlows(older, newer) : (newer ?? older)
  }

  private first(found: string | undefined, next: string | undefined): string | undefined {
    return this.record ? this.join(found, next) : (found ?? next)
  }

  private rowSource(rel: {schema?: string; table: string}): string {
    return this.record ? flowKey({schema: rel.schema, table: rel.table, column: '*'}) : `${rel.table}.*`
  }

  private union(outs: OutputItem[]): string | undefined {
    let s: string | undefined
    for (const o of outs) s = this.join(s, 'star' in o ? (o.from ? this.rowSource(o.from) : UNKNOWN_FLOW) : o.source)
    return s
  }

  /** Flow mode entry point: see mysqlStatementFlows. */
  flows(ast: Node): ColumnFlow[] {
    const type = String(ast.type ?? '').toLowerCase()
    const root: Scope = {items: [], ctes: new Map()}
    const flat = (source: string | undefined, into?: ColumnRef): ColumnFlow[] => flowRefs(source).map((from) => (into ? {from, into} : {from}))
    const targetRef = (t: unknown) => (isRecord(t) && typeof t.table === 'string' ? {...(typeof t.db === 'string' && t.db ? {schema: t.db} : {}), table: t.table} : undefined)
    switch (type) {
      case 'select': {
        const outs = this.select(ast, root)
        const into = isRecord(ast.into) ? String(ast.into.keyword ?? '').toLowerCase() : ''
        return into ? flat(this.union(outs)) : []
      }
      case 'create': {
        const q = isRecord(ast.query_expr) ? ast.query_expr : isRecord(ast.select) ? ast.select : undefined
        return q ? flat(this.union(this.select(isRecord(q.ast) ? q.ast : q, root))) : []
      }
      case 'insert':
      case 'replace': {
        const target = targetRef(Array.isArray(ast.table) ? ast.table[0] : undefined)
        const cols = Array.isArray(ast.columns) ? ast.columns.map((c) => (isRecord(c) ? String(c.value ?? c.column ?? '') : String(c))) : []
        const dest = (i: number): ColumnRef | undefined => (target && cols[i] ? {...target, column: cols[i]} : undefined)
        const out: ColumnFlow[] = []
        const values = isRecord(ast.values) ? ast.values : undefined
        if (values && String(values.type ?? '') === 'select') {
          const outs = this.select(values, root)
          const star = outs.some((o) => 'star' in o)
          outs.forEach((o, i) => out.push(...flat('star' in o ? (o.from ? this.rowSource(o.from) : UNKNOWN_FLOW) : o.source, star ? undefined : dest(i))))
        } else if (values && Array.isArray(values.values)) {
          for (const row of values.values) {
            const list = isRecord(row) && Array.isArray(row.value) ? row.value : []
            list.forEach((e, i) => out.push(...flat(this.expr(e, root), dest(i))))
          }
        }
        const scope: Scope = {items: target ? [{alias: target.table, rel: target}] : [], ctes: root.ctes}
        for (const set of Array.isArray(ast.set) ? ast.set : []) if (isRecord(set)) out.push(...flat(this.expr(set.value, scope), target ? {...target, column: String(set.column ?? '')} : undefined))
        const odku = isRecord(ast.on_duplicate_update) && Array.isArray(ast.on_duplicate_update.set) ? ast.on_duplicate_update.set : []
        for (const set of odku) if (isRecord(set)) out.push(...flat(this.expr(set.value, scope), target ? {...target, column: String(set.column ?? '')} : undefined))
        return out
      }
      case 'update': {
        const scope: Scope = {items: [], ctes: root.ctes}
        for (const f of Array.isArray(ast.table) ? ast.table : []) if (isRecord(f)) this.fromItem(f, scope)
        const out: ColumnFlow[] = []
        for (const set of Array.isArray(ast.set) ? ast.set : []) {
          if (!isRecord(set)) continue
          const alias = typeof set.table === 'string' ? set.table : undefined
          const item = alias ? findItems(scope, alias)[0] : scope.items.length === 1 ? scope.items[0] : undefined
          const into = item?.rel ? {...(item.rel.schema ? {schema: item.rel.schema} : {}), table: item.rel.table, column: String(set.column ?? '')} : undefined
          out.push(...flat(this.expr(set.value, scope), into))
        }
        if (ast.where) this.expr(ast.where, scope)
        return out
      }
      case 'set': {
        for (const e of Array.isArray(ast.expr) ? ast.expr : []) {
          if (!isRecord(e) || !isRecord(e.left)) continue
          const user = e.left.prefix === '@'
          const name = [String(e.left.name ?? ''), ...(Array.isArray(e.left.members) ? e.left.members.map(String) : [])].join('.')
          const flows = flowRefs(this.expr(e.right, root))
          this.storedCalls.push({fn: `SET ${user ? '@' : ''}${name}`, stores: user ? 'variable' : 'setting', flows})
        }
        return []
      }
      default:
        this.expr(ast, root)
        return []
    }
  }

  statement(ast: Node): MysqlOutputAnalysis {
    const type = String(ast.type ?? '').toLowerCase()
    const root: Scope = {items: [], ctes: new Map()}
    let out: MysqlOutputAnalysis
    if (type === 'select') out = {kind: 'rows', outputs: this.select(ast, root)}
    else if (ast.returning != null) out = {kind: 'opaque'}
    else if (type === 'update' || type === 'delete') {
      // What DML reads: its SET values and its WHERE, with its tables in scope.
      const scope: Scope = {items: [], ctes: root.ctes}
      for (const f of [...(Array.isArray(ast.table) ? ast.table : []), ...(Array.isArray(ast.from) ? ast.from : [])]) if (isRecord(f)) this.fromItem(f, scope)
      for (const set of Array.isArray(ast.set) ? ast.set : []) if (isRecord(set)) this.expr(set.value, scope)
      if (ast.where) this.expr(ast.where, scope)
      out = {kind: 'other'}
    } else if (type === 'insert' || type === 'replace') {
      // What an INSERT reads: its SELECT, its VALUES, its SET and ON DUPLICATE KEY UPDATE values.
      const values = isRecord(ast.values) ? ast.values : undefined
      if (values && String(values.type ?? '') === 'select') this.select(values, root)
      else this.expr(ast.values, root)
      const target = Array.isArray(ast.table) && isRecord(ast.table[0]) ? ast.table[0] : undefined
      const scope: Scope = {items: [], ctes: root.ctes}
      if (target) this.fromItem(target, scope)
      for (const set of Array.isArray(ast.set) ? ast.set : []) if (isRecord(set)) this.expr(set.value, scope)
      const odku = isRecord(ast.on_duplicate_update) && Array.isArray(ast.on_duplicate_update.set) ? ast.on_duplicate_update.set : []
      for (const set of odku) if (isRecord(set)) this.expr(set.value, scope)
      out = {kind: 'other'}
    } else {
      this.expr(ast, root)
      out = {kind: 'other'}
    }
    if (this.masked) out.readsMasked = this.masked
    out.seen = true
    return out
  }

  private select(node: Node, outer: Scope): OutputItem[] {
    const scope: Scope = {items: [], ctes: new Map(outer.ctes), parent: outer}
    for (const c of Array.isArray(node.with) ? node.with : []) {
      if (!isRecord(c) || !isRecord(c.name)) continue
      const name = String(c.name.value).toLowerCase()
      scope.ctes.set(name, [{star: true}])
      const q = isRecord(c.stmt) && isRecord(c.stmt.ast) ? c.stmt.ast : isRecord(c.stmt) ? c.stmt : undefined
      let outs = q ? this.select(q, scope) : [{star: true} as OutputItem]
      const cols = Array.isArray(c.columns) ? c.columns.map((x) => (isRecord(x) ? String(x.value ?? x.column ?? '') : String(x))) : undefined
      if (cols) outs = outs.map((o, i) => ('star' in o ? o : {...o, name: cols[i] ?? o.name}))
      scope.ctes.set(name, outs)
    }
    for (const f of Array.isArray(node.from) ? node.from : []) if (isRecord(f)) this.fromItem(f, scope)
    for (const k of ['where', 'having', 'groupby', 'orderby']) if (node[k]) this.expr(node[k], scope)
    let outs: OutputItem[] = []
    for (const col of Array.isArray(node.columns) ? node.columns : []) {
      if (!isRecord(col)) continue
      const e = col.expr
      if (isRecord(e) && e.type === 'column_ref' && columnOf(e) === '*') {
        outs.push(...this.expandStar(typeof e.table === 'string' ? e.table : undefined, scope))
        continue
      }
      const source = this.expr(e, scope)
      const name = typeof col.as === 'string' ? col.as : isRecord(e) && e.type === 'column_ref' ? (columnOf(e) ?? '?') : '?'
      outs.push({name, source})
    }
    if (node.columns === '*') outs = this.expandStar(undefined, scope)
    if (isRecord(node._next)) {
      const r = this.select(node._next, outer)
      if (outs.some((o) => 'star' in o) || r.some((o) => 'star' in o)) {
        if (this.record) return [{name: '?', source: this.join(this.union(outs), this.union(r))}]
        const any = [...outs, ...r].some((o) => !('star' in o) && o.source)
        return any ? [{star: true}] : outs
      }
      return outs.map((o, i) => {
        const oc = o as OutputColumn
        const other = r[i] as OutputColumn | undefined
        return {name: oc.name, source: this.first(oc.source, other?.source)}
      })
    }
    return outs
  }

  private fromItem(f: Node, scope: Scope): void {
    const alias = typeof f.as === 'string' ? f.as : undefined
    if (isRecord(f.expr) && isRecord(f.expr.ast)) {
      scope.items.push({alias: alias ?? '', outputs: this.select(f.expr.ast, scope)})
    } else if (typeof f.table === 'string') {
      const db = typeof f.db === 'string' && f.db ? f.db : undefined
      const cte = db ? undefined : lookupCte(scope, f.table.toLowerCase())
      if (cte) scope.items.push({alias: alias ?? f.table, outputs: cte})
      else scope.items.push({alias: alias ?? f.table, rel: {schema: db, table: f.table}})
    } else if (f.type !== 'dual') {
      // Table functions and anything the walk does not model: tainted by what they read.
      const src = this.expr(f, scope)
      if (this.record) scope.items.push({alias: alias ?? '', opaque: true, outputs: [{name: '?', source: src}]})
      else scope.items.push({alias: alias ?? '', opaque: true, outputs: src ? [{star: true}] : []})
      if (src) this.masked ??= src
    }
    if (f.on) this.expr(f.on, scope)
  }

  private expandStar(qual: string | undefined, scope: Scope): OutputItem[] {
    const items = qual ? findItems(scope, qual).slice(0, 1) : scope.items
    if (items.length === 0) return [{star: true}]
    const out: OutputItem[] = []
    for (const it of items) {
      if (it.outputs) out.push(...it.outputs)
      else if (it.rel) {
        if (this.m.coversTable(it.rel.schema, it.rel.table)) this.masked ??= this.rowSource(it.rel)
        out.push({star: true, from: it.rel})
      } else out.push({star: true})
    }
    return out
  }

  /** The mask pattern an expression's value derives from, if any. */
  expr(node: unknown, scope: Scope): string | undefined {
    if (Array.isArray(node)) {
      let s: string | undefined
      for (const n of node) s = this.join(s, this.expr(n, scope))
      return s
    }
    if (!isRecord(node)) return undefined
    if (this.record && node.type === 'assign' && isRecord(node.left) && node.left.prefix === '@') {
      // `@v := expr`: the value is stored in a user variable.
      const s = this.expr(node.right, scope)
      this.storedCalls.push({fn: `@${String(node.left.name ?? '')} :=`, stores: 'variable', flows: flowRefs(s)})
      return s
    }
    if (node.type === 'column_ref') {
      const hit = this.resolve(typeof node.table === 'string' ? node.table : undefined, columnOf(node) ?? '', scope, typeof node.db === 'string' ? node.db : undefined)
      if (hit) this.masked ??= hit
      return hit
    }
    if (isRecord(node.ast)) {
      let s: string | undefined
      const outs = this.select(node.ast, scope)
      if (this.record) return this.union(outs)
      for (const o of outs) if (!('star' in o) && o.source) s ??= o.source
      if (outs.some((o) => 'star' in o) && this.masked) s ??= this.masked
      return s
    }
    // COUNT reveals how many rows, never what is in them.
    if (node.type === 'aggr_func' && typeof node.name === 'string' && node.name.toUpperCase() === 'COUNT') return undefined
    if (node.type === 'star') {
      let s: string | undefined
      for (const it of scope.items) s = this.first(s, this.wholeRow(it))
      return s
    }
    let s: string | undefined
    for (const [k, v] of Object.entries(node)) {
      if (k === 'tableList' || k === 'columnList' || typeof v !== 'object' || v === null) continue
      s = this.join(s, this.expr(v, scope))
    }
    return s
  }

  private resolve(table: string | undefined, col: string, scope: Scope, schema?: string): string | undefined {
    if (col === '*') {
      if (!table) {
        let s: string | undefined
        for (const it of scope.items) s = this.first(s, this.wholeRow(it))
        return s
      }
      const items = findItems(scope, table)
      return items.length ? this.wholeRow(items[0]) : undefined
    }
    if (table) {
      const items = findItems(scope, table)
      if (items.length) return this.columnIn(items[0], col).source
      return this.m.match({schema, table, column: col})
    }
    for (let sc: Scope | undefined = scope; sc; sc = sc.parent) {
      let found = false
      let source: string | undefined
      for (const it of sc.items) {
        const r = this.columnIn(it, col)
        if (r.found) {
          found = true
          source = this.first(source, r.source)
        }
      }
      if (found) return source
    }
    return undefined
  }

  private columnIn(it: ScopeItem, col: string): {found: boolean; source?: string} {
    const c = col.toLowerCase()
    if (it.rel) {
      const source = this.m.match({schema: it.rel.schema, table: it.rel.table, column: c})
      return {found: source !== undefined, source}
    }
    if (it.outputs) {
      const o = it.outputs.find((x) => !('star' in x) && x.name.toLowerCase() === c) as OutputColumn | undefined
      if (o) return {found: true, source: o.source}
      for (const x of it.outputs) {
        if (!('star' in x)) continue
        if (x.from) {
          const source = this.m.match({...x.from, column: c})
          if (source) return {found: true, source}
        } else if (it.opaque) return {found: true, source: this.record ? UNKNOWN_FLOW : (this.masked ?? 'opaque-source')}
      }
    }
    return {found: false}
  }

  private wholeRow(it: ScopeItem): string | undefined {
    if (it.rel) return this.m.coversTable(it.rel.schema, it.rel.table) ? this.rowSource(it.rel) : undefined
    if (this.record) return this.union(it.outputs ?? [])
    for (const o of it.outputs ?? []) {
      if (!('star' in o)) {
        if (o.source) return o.source
      } else if (o.from && this.m.coversTable(o.from.schema, o.from.table)) return this.rowSource(o.from)
    }
    return undefined
  }
}

function columnOf(n: Node): string | undefined {
  const c = n.column
  if (typeof c === 'string') return c
  if (isRecord(c) && isRecord(c.expr)) return String(c.expr.value ?? '')
  return undefined
}

function lookupCte(scope: Scope, name: string): OutputItem[] | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const c = s.ctes.get(name)
    if (c) return c
  }
  return undefined
}

function findItems(scope: Scope, name: string): ScopeItem[] {
  const n = name.toLowerCase()
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const hits = s.items.filter((i) => i.alias.toLowerCase() === n)
    if (hits.length) return hits
  }
  return []
}
