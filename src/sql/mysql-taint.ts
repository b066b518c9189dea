// MySQL / MariaDB taint analysis for masking: which output columns of each statement derive from a
// masked column. Column definitions carry the origin (org_table, org_name) of plain columns; for
// computed columns (UPPER(email), CONCAT(...), subqueries, derived tables, CTEs, UNION) we follow
// the expression that produced them. Unknown or ambiguous cases resolve to "tainted" (fail closed).
// The PostgreSQL counterpart is pg-taint.ts; both describe outputs as its OutputItem.
import type {ColumnMatcher} from '../masking/columns.js'
import {isRecord, MAX_SQL_LENGTH, parseMysql, ROUTINE_RE, splitStatements, type Node} from './mysql-parser.js'
import type {OutputColumn, OutputItem} from './taint.js'

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
 * parse (callers then mask every computed column).
 */
export function analyzeMysqlOutputs(sql: string, matcher: ColumnMatcher): MysqlOutputAnalysis[] | undefined {
  if (sql.length > MAX_SQL_LENGTH) return undefined
  let pieces: string[]
  try {
    pieces = splitStatements(sql)
  } catch {
    return undefined
  }
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
      asts = parseMysql(piece)
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

class Taint {
  private masked: string | undefined
  constructor(private readonly m: ColumnMatcher) {}

  statement(ast: Node): MysqlOutputAnalysis {
    const type = String(ast.type ?? '').toLowerCase()
    const root: Scope = {items: [], ctes: new Map()}
    let out: MysqlOutputAnalysis
    if (type === 'select') out = {kind: 'rows', outputs: this.select(ast, root)}
    else if (ast.returning != null) out = {kind: 'opaque'}
    else {
      this.expr(ast, root)
      out = {kind: 'other'}
    }
    if (this.masked) out.readsMasked = this.masked
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
        const any = [...outs, ...r].some((o) => !('star' in o) && o.source)
        return any ? [{star: true}] : outs
      }
      return outs.map((o, i) => {
        const oc = o as OutputColumn
        const other = r[i] as OutputColumn | undefined
        return {name: oc.name, source: oc.source ?? other?.source}
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
      scope.items.push({alias: alias ?? '', opaque: true, outputs: src ? [{star: true}] : []})
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
        if (this.m.coversTable(it.rel.schema, it.rel.table)) this.masked ??= `${it.rel.table}.*`
        out.push({star: true, from: it.rel})
      } else out.push({star: true})
    }
    return out
  }

  /** The mask pattern an expression's value derives from, if any. */
  expr(node: unknown, scope: Scope): string | undefined {
    if (Array.isArray(node)) {
      let s: string | undefined
      for (const n of node) s = this.expr(n, scope) ?? s
      return s
    }
    if (!isRecord(node)) return undefined
    if (node.type === 'column_ref') {
      const hit = this.resolve(typeof node.table === 'string' ? node.table : undefined, columnOf(node) ?? '', scope, typeof node.db === 'string' ? node.db : undefined)
      if (hit) this.masked ??= hit
      return hit
    }
    if (isRecord(node.ast)) {
      let s: string | undefined
      const outs = this.select(node.ast, scope)
      for (const o of outs) if (!('star' in o) && o.source) s ??= o.source
      if (outs.some((o) => 'star' in o) && this.masked) s ??= this.masked
      return s
    }
    // COUNT reveals how many rows, never what is in them.
    if (node.type === 'aggr_func' && typeof node.name === 'string' && node.name.toUpperCase() === 'COUNT') return undefined
    if (node.type === 'star') {
      let s: string | undefined
      for (const it of scope.items) s ??= this.wholeRow(it)
      return s
    }
    let s: string | undefined
    for (const [k, v] of Object.entries(node)) {
      if (k === 'tableList' || k === 'columnList' || typeof v !== 'object' || v === null) continue
      s = this.expr(v, scope) ?? s
    }
    return s
  }

  private resolve(table: string | undefined, col: string, scope: Scope, schema?: string): string | undefined {
    if (col === '*') {
      if (!table) {
        let s: string | undefined
        for (const it of scope.items) s ??= this.wholeRow(it)
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
          source ??= r.source
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
        } else if (it.opaque) return {found: true, source: this.masked ?? 'opaque-source'}
      }
    }
    return {found: false}
  }

  private wholeRow(it: ScopeItem): string | undefined {
    if (it.rel) return this.m.coversTable(it.rel.schema, it.rel.table) ? `${it.rel.table}.*` : undefined
    for (const o of it.outputs ?? []) {
      if (!('star' in o)) {
        if (o.source) return o.source
      } else if (o.from && this.m.coversTable(o.from.schema, o.from.table)) return `${o.from.table}.*`
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
