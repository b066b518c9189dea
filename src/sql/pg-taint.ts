// Taint analysis on the PostgreSQL parse tree (libpg-query): which output columns of a statement
// are computed from a masked column. RowDescription tells us the origin of plain columns (table
// OID + attnum); for computed columns (OID 0: upper(email), email || '', substring(card, 1, 4),
// subqueries, row_to_json(t)) we look at the expression that produced them. Unknown or ambiguous
// cases resolve to "tainted" (fail closed).
import {parseSync} from 'libpg-query'
import type {ColumnMatcher} from '../masking/columns.js'
import type {OutputColumn, OutputItem} from './taint.js'

export type {OutputColumn, OutputItem}


export interface CopyShape {
  direction: 'to' | 'from'
  format: 'text' | 'csv' | 'binary'
  delimiter: string
  relation?: {schema?: string; table: string}
  columns?: string[]
  outputs?: OutputItem[]
}

export interface StatementAnalysis {
  kind: 'rows' | 'declare' | 'fetch' | 'copy' | 'other'
  /** The parse node's type (`SelectStmt`, `DoStmt`, `ExecuteStmt`...). */
  type: string
  outputs?: OutputItem[]
  /** Some masked column is read somewhere in the statement (fallback when positions are ambiguous). */
  readsMasked?: string
  cursor?: string
  copy?: CopyShape
}

type Node = Record<string, unknown>

interface ScopeItem {
  alias: string
  rel?: {schema?: string; table: string}
  outputs?: OutputItem[]
  /** An opaque source (function in FROM): tainted by its arguments. */
  opaque?: {source?: string}
}

interface Scope {
  items: ScopeItem[]
  ctes: Map<string, OutputItem[]>
  parent?: Scope
}

/**
 * Analyses each statement of `sql`. Returns undefined when the text does not parse (callers then
 * treat every computed column as tainted). `loadPgParser()` (./pg-parser.ts) must have resolved before.
 */
export function analyzeSql(sql: string, matcher: ColumnMatcher): StatementAnalysis[] | undefined {
  let tree: {stmts?: {stmt: Node}[]}
  try {
    tree = parseSync(sql) as unknown as {stmts?: {stmt: Node}[]}
  } catch {
    return undefined
  }
  const a = new Analyzer(matcher)
  return (tree.stmts ?? []).map((s) => a.statement(s.stmt))
}

class Analyzer {
  private masked: string | undefined
  constructor(private readonly m: ColumnMatcher) {}

  statement(wrapped: Node): StatementAnalysis {
    this.masked = undefined
    const [type, node] = unwrap(wrapped)
    const root: Scope = {items: [], ctes: new Map()}
    let out: Omit<StatementAnalysis, 'type'>
    switch (type) {
      case 'SelectStmt':
        out = {kind: 'rows', outputs: this.select(node, root)}
        break
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt': {
        const rel = node.relation as Node | undefined
        const scope: Scope = {items: rel ? [this.rangeVar(rel, root)] : [], ctes: root.ctes}
        this.withClause(node.withClause as Node | undefined, scope)
        for (const f of (node.fromClause as Node[] | undefined) ?? []) this.fromItem(f, scope, scope.items)
        for (const f of (node.usingClause as Node[] | undefined) ?? []) this.fromItem(f, scope, scope.items)
        if (node.selectStmt) this.select(unwrap(node.selectStmt as Node)[1], root)
        const returning = ((node.returningClause as Node | undefined)?.exprs ?? node.returningList) as Node[] | undefined
        out = {kind: 'rows', outputs: returning ? this.targets(returning, scope) : []}
        break
      }
      case 'DeclareCursorStmt':
        out = {kind: 'declare', cursor: String(node.portalname ?? ''), outputs: this.select(unwrap(node.query as Node)[1], root)}
        break
      case 'FetchStmt':
        out = {kind: 'fetch', cursor: String(node.portalname ?? '')}
        break
      case 'CopyStmt':
        out = {kind: 'copy', copy: this.copy(node, root)}
        break
      case 'ExplainStmt':
        this.statement(node.query as Node)
        out = {kind: 'other'}
        break
      default:
        out = {kind: 'other'}
    }
    if (this.masked) out.readsMasked = this.masked
    return {...out, type}
  }

  private copy(node: Node, root: Scope): CopyShape {
    let format: CopyShape['format'] = 'text'
    let delimiter: string | undefined
    for (const o of (node.options as Node[] | undefined) ?? []) {
      const d = (o.DefElem ?? {}) as Node
      const val = String(((d.arg as Node | undefined)?.String as Node | undefined)?.sval ?? '')
      if (d.defname === 'format' && (val === 'csv' || val === 'binary' || val === 'text')) format = val
      if (d.defname === 'delimiter' && val.length === 1) delimiter = val
    }
    const shape: CopyShape = {direction: node.is_from ? 'from' : 'to', format, delimiter: delimiter ?? (format === 'csv' ? ',' : '\t')}
    if (node.query) shape.outputs = this.select(unwrap(node.query as Node)[1], root)
    else if (node.relation) {
      const rv = node.relation as Node
      shape.relation = {schema: rv.schemaname as string | undefined, table: String(rv.relname)}
      const cols = ((node.attlist as Node[] | undefined) ?? []).map((c) => String((c.String as Node).sval))
      if (cols.length) shape.columns = cols
    }
    return shape
  }

  private withClause(w: Node | undefined, scope: Scope): void {
    for (const c of ((w?.ctes as Node[] | undefined) ?? [])) {
      const cte = c.CommonTableExpr as Node
      const [, q] = unwrap(cte.ctequery as Node)
      // Register the name first so a recursive CTE referring to itself resolves (conservatively).
      scope.ctes.set(String(cte.ctename), [{star: true}])
      let outs = this.select(q, scope)
      const names = (cte.aliascolnames as Node[] | undefined)?.map((n) => String((n.String as Node).sval))
      if (names) outs = outs.map((o, i) => ('star' in o ? o : {...o, name: names[i] ?? o.name}))
      scope.ctes.set(String(cte.ctename), outs)
    }
  }

  /** Output columns of a SELECT (also UNION/VALUES). */
  select(node: Node, outer: Scope): OutputItem[] {
    const scope: Scope = {items: [], ctes: new Map(outer.ctes), parent: outer}
    this.withClause(node.withClause as Node | undefined, scope)
    if (node.op && node.op !== 'SETOP_NONE') {
      const l = this.select(node.larg as Node, scope)
      const r = this.select(node.rarg as Node, scope)
      if (l.some((o) => 'star' in o) || r.some((o) => 'star' in o)) {
        const any = [...l, ...r].find((o) => !('star' in o) && o.source) as OutputColumn | undefined
        return any ? [{star: true}] : l
      }
      return l.map((o, i) => {
        const other = r[i] as OutputColumn | undefined
        const oc = o as OutputColumn
        return {name: oc.name, source: oc.source ?? other?.source}
      })
    }
    if (node.valuesLists) {
      const rows = node.valuesLists as Node[]
      const first = ((rows[0]?.List as Node | undefined)?.items as Node[] | undefined) ?? []
      return first.map((_, i) => {
        let source: string | undefined
        for (const row of rows) source ??= this.expr(((row.List as Node).items as Node[])[i], scope)
        return {name: `column${i + 1}`, source}
      })
    }
    for (const f of (node.fromClause as Node[] | undefined) ?? []) this.fromItem(f, scope, scope.items)
    // Columns read in WHERE/GROUP BY/HAVING do not flow to the output, but note them for fallback.
    for (const k of ['whereClause', 'havingClause']) if (node[k]) this.expr(node[k] as Node, scope)
    return this.targets((node.targetList as Node[] | undefined) ?? [], scope)
  }

  private targets(list: Node[], scope: Scope): OutputItem[] {
    const out: OutputItem[] = []
    for (const t of list) {
      const rt = (t.ResTarget ?? {}) as Node
      const val = rt.val as Node | undefined
      const cref = val?.ColumnRef as Node | undefined
      const fields = (cref?.fields as Node[] | undefined) ?? []
      if (cref && fields.length > 0 && 'A_Star' in fields[fields.length - 1]) {
        out.push(...this.expandStar(fields.slice(0, -1).map(fieldName), scope))
        continue
      }
      const source = val ? this.expr(val, scope) : undefined
      out.push({name: String(rt.name ?? defaultName(val)), source})
    }
    return out
  }

  private expandStar(qual: string[], scope: Scope): OutputItem[] {
    const items = qual.length ? this.findItems(qual[qual.length - 1], scope, qual.length > 1 ? qual[qual.length - 2] : undefined).slice(0, 1) : scope.items
    if (items.length === 0) return [{star: true}]
    const out: OutputItem[] = []
    for (const it of items) {
      if (it.outputs) out.push(...it.outputs)
      else {
        if (it.rel && this.m.coversTable(it.rel.schema, it.rel.table)) this.masked ??= `${it.rel.table}.*`
        out.push(it.rel ? {star: true, from: it.rel} : {star: true})
      }
    }
    return out
  }

  private fromItem(wrapped: Node, scope: Scope, into: ScopeItem[]): void {
    const [type, node] = unwrap(wrapped)
    switch (type) {
      case 'RangeVar':
        into.push(this.rangeVar(node, scope))
        break
      case 'RangeSubselect': {
        // LATERAL subqueries see the items to their left: give them the current scope.
        const outs = this.select(unwrap(node.subquery as Node)[1], scope)
        into.push({alias: aliasName(node) ?? '', outputs: renameOutputs(outs, node)})
        break
      }
      case 'JoinExpr': {
        const before = into.length
        this.fromItem(node.larg as Node, scope, into)
        this.fromItem(node.rarg as Node, scope, into)
        if (node.quals) this.expr(node.quals as Node, scope)
        const alias = aliasName(node)
        if (alias) {
          const joined = into.splice(before)
          const outs: OutputItem[] = []
          for (const it of joined) outs.push(...this.itemOutputs(it))
          into.push({alias, outputs: renameOutputs(outs, node)})
        }
        break
      }
      case 'RangeFunction': {
        let source: string | undefined
        for (const f of (node.functions as Node[] | undefined) ?? []) source ??= this.expr(f, scope)
        into.push({alias: aliasName(node) ?? '', opaque: {source}})
        break
      }
      default: {
        // RangeTableSample, JSON_TABLE, XMLTABLE...: opaque, tainted by whatever they read.
        into.push({alias: aliasName(node) ?? '', opaque: {source: this.expr(node, scope)}})
      }
    }
  }

  private rangeVar(node: Node, scope: Scope): ScopeItem {
    const table = String(node.relname)
    const schema = node.schemaname as string | undefined
    const alias = aliasName(node) ?? table
    if (!schema) {
      for (let s: Scope | undefined = scope; s; s = s.parent) {
        const cte = s.ctes.get(table)
        if (cte) return {alias, outputs: renameOutputs(cte, node)}
      }
    }
    return {alias, rel: {schema, table}}
  }

  private itemOutputs(it: ScopeItem): OutputItem[] {
    if (it.outputs) return it.outputs
    if (it.rel) return [{star: true, from: it.rel}]
    return [{star: true}]
  }

  private findItems(name: string, scope: Scope, schema?: string): ScopeItem[] {
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const hits = s.items.filter((i) => i.alias === name && (!schema || i.rel?.schema === schema || !i.rel?.schema))
      if (hits.length) return hits
    }
    return []
  }

  /** Returns the mask pattern the expression's value derives from, if any. Walks the whole node. */
  expr(node: unknown, scope: Scope): string | undefined {
    if (node === null || typeof node !== 'object') return undefined
    if (Array.isArray(node)) {
      let s: string | undefined
      for (const n of node) s = this.expr(n, scope) ?? s
      return s
    }
    const obj = node as Node
    if (obj.ColumnRef) return this.columnRef(((obj.ColumnRef as Node).fields as Node[]) ?? [], scope)
    if (obj.SubLink) {
      const sl = obj.SubLink as Node
      const outs = this.select(unwrap(sl.subselect as Node)[1], scope)
      let s: string | undefined = sl.testexpr ? this.expr(sl.testexpr, scope) : undefined
      for (const o of outs) if (!('star' in o) && o.source) s ??= o.source
      if (outs.some((o) => 'star' in o) && this.masked) s ??= this.masked
      return s
    }
    if (obj.SelectStmt) {
      for (const o of this.select(obj.SelectStmt as Node, scope)) if (!('star' in o) && o.source) return o.source
      return undefined
    }
    let s: string | undefined
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'location' || typeof v !== 'object') continue
      s = this.expr(v, scope) ?? s
    }
    return s
  }

  private columnRef(fields: Node[], scope: Scope): string | undefined {
    const names = fields.map(fieldName)
    const hit = this.resolve(names, scope)
    if (hit) this.masked ??= hit
    return hit
  }

  private resolve(names: string[], scope: Scope): string | undefined {
    const star = names[names.length - 1] === '*'
    const parts = star ? names.slice(0, -1) : names
    if (parts.length === 0) {
      // count(*) or a bare * inside an expression: every item in scope.
      let s: string | undefined
      for (const it of scope.items) s ??= this.wholeRow(it)
      return s
    }
    if (parts.length === 1 && !star) {
      const col = parts[0]
      for (let sc: Scope | undefined = scope; sc; sc = sc.parent) {
        let found = false
        let source: string | undefined
        for (const it of sc.items) {
          const r = this.columnOf(it, col)
          if (r.found) {
            found = true
            source ??= r.source
          }
        }
        if (found) return source
        // Not a column: a whole-row reference to a table alias (row_to_json(c)).
        const rows = sc.items.filter((i) => i.alias === col)
        if (rows.length) return this.wholeRow(rows[0])
      }
      // Not found in any FROM item: it belongs to an unmasked table of the scope (or is an error).
      return undefined
    }
    const schema = parts.length >= 3 ? parts[parts.length - 3] : undefined
    const rel = star ? parts[parts.length - 1] : parts[parts.length - 2]
    const items = this.findItems(rel, scope, schema)
    if (star) return items.length ? this.wholeRow(items[0]) : this.m.coversTable(schema, rel) ? `${rel}.*` : undefined
    const col = parts[parts.length - 1]
    if (items.length) return this.columnOf(items[0], col).source
    return this.m.match({schema, table: rel, column: col})
  }

  private columnOf(it: ScopeItem, col: string): {found: boolean; source?: string} {
    if (it.rel) {
      const source = this.m.match({schema: it.rel.schema, table: it.rel.table, column: col})
      // A table's column list is unknown here: it may hold `col`; a match means it is masked.
      return {found: source !== undefined, source}
    }
    if (it.outputs) {
      const o = it.outputs.find((x) => !('star' in x) && x.name === col) as OutputColumn | undefined
      if (o) return {found: true, source: o.source}
      for (const x of it.outputs) {
        if (!('star' in x) || !x.from) continue
        const source = this.m.match({...x.from, column: col})
        if (source) return {found: true, source}
      }
      return {found: false}
    }
    return {found: false, source: it.opaque?.source}
  }

  private wholeRow(it: ScopeItem): string | undefined {
    if (it.rel) return this.m.coversTable(it.rel.schema, it.rel.table) ? `${it.rel.schema ? it.rel.schema + '.' : ''}${it.rel.table}.*` : undefined
    if (it.outputs) {
      for (const o of it.outputs) {
        if (!('star' in o)) {
          if (o.source) return o.source
        } else if (o.from && this.m.coversTable(o.from.schema, o.from.table)) return `${o.from.table}.*`
      }
      return undefined
    }
    return it.opaque?.source
  }
}

function unwrap(wrapped: Node): [string, Node] {
  const k = Object.keys(wrapped)[0]
  return [k, (wrapped[k] ?? {}) as Node]
}

function fieldName(f: Node): string {
  if ('A_Star' in f) return '*'
  return String((f.String as Node | undefined)?.sval ?? '')
}

function aliasName(node: Node): string | undefined {
  return ((node.alias as Node | undefined)?.aliasname as string | undefined) ?? undefined
}

function renameOutputs(outs: OutputItem[], node: Node): OutputItem[] {
  const cols = ((node.alias as Node | undefined)?.colnames as Node[] | undefined)?.map((n) => String((n.String as Node).sval))
  if (!cols) return outs
  return outs.map((o, i) => ('star' in o || cols[i] === undefined ? o : {...o, name: cols[i]}))
}

function defaultName(val: Node | undefined): string {
  if (!val) return '?column?'
  const [type, node] = unwrap(val)
  if (type === 'ColumnRef') {
    const f = (node.fields as Node[]) ?? []
    return f.length ? fieldName(f[f.length - 1]) : '?column?'
  }
  if (type === 'FuncCall') {
    const n = (node.funcname as Node[]) ?? []
    return n.length ? fieldName(n[n.length - 1]) : '?column?'
  }
  if (type === 'TypeCast') return defaultName(node.arg as Node)
  return '?column?'
}
