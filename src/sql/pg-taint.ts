// Taint analysis on the PostgreSQL parse tree (libpg-query): which output columns of a statement
// are computed from a masked column. RowDescription tells us the origin of plain columns (table
// OID + attnum); for computed columns (OID 0: upper(email), email || '', substring(card, 1, 4),
// subqueries, row_to_json(t)) we look at the expression that produced them. Unknown or ambiguous
// cases resolve to "tainted" (fail closed). SQL given as a literal to a function that executes it
// (query_to_xml, dblink, ...) is parsed and followed; SQL built at run time taints the result.
//
// The same walk, run with a matcher that matches every column ("flow mode", `statementFlows`),
// tells policy which columns flow into what a statement stores (a table, a setting, a large
// object, a file), without knowing the mask plan: policy's no-laundering rule matches them.
import {parseSync} from 'libpg-query'
import type {ColumnMatcher} from '../masking/columns.js'
import type {ColumnFlow, ColumnRef} from '../policy/types.js'
import {parsePg, type PgParses} from './pg-parser.js'
import {definedRoutine, regclassName, relationReader, routineKey, sqlTextArgument, storingFunction, stringLiteral, type StoringFunction} from './pg-functions.js'
import {FlowMatcher, flowKey, flowRefs, joinFlows, UNKNOWN_FLOW, type OutputColumn, type OutputItem, type WholeRow} from './taint.js'

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
  /**
   * What it runs that may be user code (functions, operators, cast types; keys of `routineKey`):
   * the engine asks the catalog which are built-ins and analyses again with the rest opaque.
   */
  routines?: string[]
  /** A routine it creates, renames or moves (`definedRoutine`), for the rest of the session. */
  defines?: string
  /** Relations it names (not CTEs): the engine asks the catalog which are views of masked columns. */
  relations?: {schema?: string; table: string}[]
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

const NO_ROUTINES: ReadonlySet<string> = new Set()

/** SQL text nested in SQL text (query_to_xml('select query_to_xml(...)')) is followed this deep. */
const MAX_TEXT_DEPTH = 4

/**
 * Analyses each statement of `sql`. Returns undefined when the text does not parse or cannot be
 * analysed (too deep, or any other failure): callers then treat every computed column as tainted.
 * `opaque` names routines (`routineKey` keys) that are user code: a value one of them computes
 * derives from anything (the routine may read a masked table), and the statement counts as
 * reading masked data. Never throws. `loadPgParser()` (./pg-parser.ts) must have resolved before.
 * `parses`: the session's, so that policy's analysis and this one parse the text once.
 */
export function analyzeSql(sql: string, matcher: ColumnMatcher, opaque: ReadonlySet<string> = NO_ROUTINES, parses?: PgParses): StatementAnalysis[] | undefined {
  try {
    const tree = parses ? parses.get(sql) : parsePg(sql)
    if ('error' in tree) return undefined
    const a = new Analyzer(matcher, 0, false, opaque)
    return tree.stmts.map((s) => a.statement(s.stmt as Node))
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Flow mode: which columns flow into what a statement stores (for policy's no-laundering rule).

/** A storing function called somewhere in a statement, and what flows into it. */
export interface StoredCall {
  fn: string
  stores: StoringFunction['stores']
  flows: ColumnRef[]
}

export interface StatementFlows {
  /** Columns flowing into the rows the statement itself writes or creates, each with its destination when known. */
  values: ColumnFlow[]
  /** Calls to functions that store a value (set_config, lo_from_bytea, ...). */
  calls: StoredCall[]
}

/**
 * Flow analysis of one parsed statement (a libpg-query node, `{UpdateStmt: {...}}`): the columns
 * whose values flow into what it writes (INSERT / UPDATE / MERGE values, the rows of CREATE TABLE
 * AS, SELECT INTO and COPY TO a file or program, a view's columns) and into storing function calls
 * anywhere in it. Columns read only by predicates (WHERE, JOIN ON, HAVING) do not flow. Throws on
 * a tree too deep to walk (the caller catches).
 */
export function statementFlows(wrapped: Node): StatementFlows {
  const a = new Analyzer(new FlowMatcher(), 0, true)
  const values = a.flows(wrapped)
  return {values, calls: a.storedCalls}
}

class Analyzer {
  private masked: string | undefined
  /** Routines the current statement runs (normal mode). */
  private calls = new Set<string>()
  /** Relations the current statement names (normal mode). */
  private rels = new Map<string, {schema?: string; table: string}>()
  /** Flow mode: storing calls seen. */
  readonly storedCalls: StoredCall[] = []

  constructor(
    private readonly m: ColumnMatcher,
    private readonly textDepth: number,
    private readonly record = false,
    private readonly opaque: ReadonlySet<string> = NO_ROUTINES,
  ) {}

  /** Combines two sources: the newer wins (normal mode) or the union (flow mode). */
  private join(older: string | undefined, newer: string | undefined): string | undefined {
    return this.record ? joinFlows(older, newer) : (newer ?? older)
  }

  /** Combines two sources: the first found wins (normal mode) or the union (flow mode). */
  private first(found: string | undefined, next: string | undefined): string | undefined {
    if (!this.record) return found ?? next
    return this.join(found, next)
  }

  /** The source naming a whole row of a table (flow mode: that table's key). */
  private rowSource(rel: {schema?: string; table: string}, short = false): string {
    if (this.record) return flowKey({schema: rel.schema, table: rel.table, column: '*'})
    return short || !rel.schema ? `${rel.table}.*` : `${rel.schema}.${rel.table}.*`
  }

  /** Flow mode: the union of every output's source, stars included. */
  private union(outs: OutputItem[]): string | undefined {
    let s: string | undefined
    for (const o of outs) {
      if ('star' in o) s = this.join(s, o.from ? this.rowSource(o.from) : UNKNOWN_FLOW)
      else s = this.join(s, o.source)
    }
    return s
  }

  /** Flow mode entry point: see statementFlows. */
  flows(wrapped: Node): ColumnFlow[] {
    const [type, node] = unwrap(wrapped)
    const root: Scope = {items: [], ctes: new Map()}
    const flat = (source: string | undefined, into?: ColumnRef): ColumnFlow[] => flowRefs(source).map((from) => (into ? {from, into} : {from}))
    switch (type) {
      case 'SelectStmt': {
        const outs = this.select(node, root)
        this.walkRest(node, root)
        return node.intoClause ? flat(this.union(outs)) : []
      }
      case 'CreateTableAsStmt':
      case 'ViewStmt': {
        const q = node.query as Node | undefined
        if (!q) return []
        const [qt, qn] = unwrap(q)
        if (qt !== 'SelectStmt') return flat(UNKNOWN_FLOW) // CREATE TABLE AS EXECUTE: not seen here
        const outs = this.select(qn, root)
        this.walkRest(qn, root)
        return flat(this.union(outs))
      }
      case 'CopyStmt': {
        if (node.is_from || (!node.is_program && typeof node.filename !== 'string')) {
          if (node.query) this.select(unwrap(node.query as Node)[1], root)
          return []
        }
        if (node.query) return flat(this.union(this.select(unwrap(node.query as Node)[1], root)))
        const rv = node.relation as Node | undefined
        if (!rv) return flat(UNKNOWN_FLOW)
        const rel = {schema: rv.schemaname as string | undefined, table: String(rv.relname)}
        const cols = ((node.attlist as Node[] | undefined) ?? []).map((c) => String((c.String as Node).sval))
        return cols.length ? cols.map((column) => ({from: {...rel, column}})) : [{from: {...(rel.schema ? {schema: rel.schema} : {}), table: rel.table, column: '*'}}]
      }
      case 'InsertStmt': {
        const rv = node.relation as Node
        const target = this.rangeVar(rv, root)
        const dest = (name: string | undefined): ColumnRef | undefined => (name && target.rel ? {...(target.rel.schema ? {schema: target.rel.schema} : {}), table: target.rel.table, column: name} : undefined)
        const scope: Scope = {items: [], ctes: root.ctes}
        this.withClause(node.withClause as Node | undefined, scope)
        const cols = ((node.cols as Node[] | undefined) ?? []).map((c) => String(((c.ResTarget ?? {}) as Node).name ?? ''))
        const out: ColumnFlow[] = []
        if (node.selectStmt) {
          const [, sel] = unwrap(node.selectStmt as Node)
          const outs = this.select(sel, scope)
          this.walkRest(sel, scope)
          const star = outs.some((o) => 'star' in o)
          outs.forEach((o, i) => {
            const into = star ? undefined : dest(cols[i])
            out.push(...flat('star' in o ? (o.from ? this.rowSource(o.from) : UNKNOWN_FLOW) : o.source, into))
          })
        }
        const oc = node.onConflictClause as Node | undefined
        if (oc) {
          // DO UPDATE: the target row and the proposed row (`excluded`) are in scope.
          const upd: Scope = {items: [target, {alias: 'excluded', rel: target.rel}], ctes: scope.ctes}
          out.push(...this.setTargets((oc.targetList as Node[] | undefined) ?? [], upd, dest))
          if (oc.whereClause) this.expr(oc.whereClause, upd)
        }
        this.walkReturning(node, {items: [target], ctes: scope.ctes})
        return out
      }
      case 'UpdateStmt': {
        const target = this.rangeVar(node.relation as Node, root)
        const scope: Scope = {items: [target], ctes: root.ctes}
        this.withClause(node.withClause as Node | undefined, scope)
        for (const f of (node.fromClause as Node[] | undefined) ?? []) this.fromItem(f, scope, scope.items)
        const dest = (name: string | undefined): ColumnRef | undefined => (name && target.rel ? {...(target.rel.schema ? {schema: target.rel.schema} : {}), table: target.rel.table, column: name} : undefined)
        const out = this.setTargets((node.targetList as Node[] | undefined) ?? [], scope, dest)
        if (node.whereClause) this.expr(node.whereClause, scope)
        this.walkReturning(node, scope)
        return out
      }
      case 'MergeStmt': {
        const target = this.rangeVar(node.relation as Node, root)
        const scope: Scope = {items: [target], ctes: root.ctes}
        this.withClause(node.withClause as Node | undefined, scope)
        if (node.sourceRelation) this.fromItem(node.sourceRelation as Node, scope, scope.items)
        if (node.joinCondition) this.expr(node.joinCondition, scope)
        const dest = (name: string | undefined): ColumnRef | undefined => (name && target.rel ? {...(target.rel.schema ? {schema: target.rel.schema} : {}), table: target.rel.table, column: name} : undefined)
        const out: ColumnFlow[] = []
        for (const w of (node.mergeWhenClauses as Node[] | undefined) ?? []) {
          const c = (w.MergeWhenClause ?? {}) as Node
          if (c.condition) this.expr(c.condition, scope)
          const tl = (c.targetList as Node[] | undefined) ?? []
          if (c.commandType === 'CMD_UPDATE') out.push(...this.setTargets(tl, scope, dest))
          else if (c.commandType === 'CMD_INSERT') {
            const values = (c.values as Node[] | undefined) ?? []
            values.forEach((v, i) => out.push(...flat(this.expr(v, scope), dest(tl.length ? String(((tl[i]?.ResTarget ?? {}) as Node).name ?? '') : undefined))))
          }
        }
        this.walkReturning(node, scope)
        return out
      }
      default:
        // Anything else: only storing calls inside it matter (CALL p(set_config(...)), DELETE ... WHERE).
        this.expr(node, root)
        return []
    }
  }

  /** SET col = expr (UPDATE, ON CONFLICT DO UPDATE, MERGE UPDATE): each value flows into its column. */
  private setTargets(list: Node[], scope: Scope, dest: (name: string | undefined) => ColumnRef | undefined): ColumnFlow[] {
    const out: ColumnFlow[] = []
    for (const t of list) {
      const rt = (t.ResTarget ?? {}) as Node
      // SET (a, b) = (SELECT ...): a MultiAssignRef per column, each carrying the whole source.
      const val = rt.val as Node | undefined
      const into = dest(typeof rt.name === 'string' ? rt.name : undefined)
      for (const from of flowRefs(val ? this.expr(val, scope) : undefined)) out.push(into ? {from, into} : {from})
    }
    return out
  }

  /** Clauses of a SELECT that do not flow to its outputs but may call storing functions. */
  private walkRest(node: Node, scope: Scope): void {
    const inner: Scope = {items: [], ctes: scope.ctes, parent: scope}
    for (const k of ['sortClause', 'groupClause', 'limitCount', 'limitOffset', 'distinctClause', 'windowClause']) if (node[k]) this.expr(node[k], inner)
  }

  private walkReturning(node: Node, scope: Scope): void {
    const returning = ((node.returningClause as Node | undefined)?.exprs ?? node.returningList) as Node[] | undefined
    if (returning) this.expr(returning, scope)
  }

  statement(wrapped: Node): StatementAnalysis {
    this.masked = undefined
    this.calls = new Set()
    this.rels = new Map()
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
        if (node.sourceRelation) this.fromItem(node.sourceRelation as Node, scope, scope.items)
        if (node.selectStmt) this.select(unwrap(node.selectStmt as Node)[1], root)
        // Values and conditions: what they read and run can show in an error (a failed cast echoes the value).
        for (const k of ['targetList', 'whereClause', 'joinCondition', 'mergeWhenClauses']) if (node[k]) this.expr(node[k], scope)
        // ON CONFLICT DO UPDATE also sees the proposed row as `excluded`.
        if (node.onConflictClause) this.expr(node.onConflictClause, {...scope, items: [...scope.items, {alias: 'excluded', rel: scope.items[0]?.rel}]})
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
    if (this.calls.size) out.routines = [...this.calls]
    if (this.rels.size) out.relations = [...this.rels.values()]
    const defines = definedRoutine(type, node)
    if (defines) out.defines = defines
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
      this.clauses(node, scope)
      const l = this.select(node.larg as Node, scope)
      const r = this.select(node.rarg as Node, scope)
      if (l.some((o) => 'star' in o) || r.some((o) => 'star' in o)) {
        if (this.record) return [{name: '?column?', source: this.join(this.union(l), this.union(r))}]
        const any = [...l, ...r].find((o) => !('star' in o) && o.source) as OutputColumn | undefined
        return any ? [{star: true}] : l
      }
      return l.map((o, i) => {
        const other = r[i] as OutputColumn | undefined
        const oc = o as OutputColumn
        return {name: oc.name, source: this.first(oc.source, other?.source)}
      })
    }
    if (node.valuesLists) {
      const rows = node.valuesLists as Node[]
      const first = ((rows[0]?.List as Node | undefined)?.items as Node[] | undefined) ?? []
      return first.map((_, i) => {
        let source: string | undefined
        for (const row of rows) source = this.first(source, this.expr(((row.List as Node).items as Node[])[i], scope))
        return {name: `column${i + 1}`, source}
      })
    }
    for (const f of (node.fromClause as Node[] | undefined) ?? []) this.fromItem(f, scope, scope.items)
    this.clauses(node, scope)
    return this.targets((node.targetList as Node[] | undefined) ?? [], scope)
  }

  /**
   * Clauses whose values do not flow to the output: what they read and run is noted (normal mode),
   * since it shows in errors (`order by email::int` echoes the value) and user code runs there.
   * Flow mode walks its own (walkRest).
   */
  private clauses(node: Node, scope: Scope): void {
    if (this.record) {
      for (const k of ['whereClause', 'havingClause']) if (node[k]) this.expr(node[k] as Node, scope)
      return
    }
    for (const k of ['whereClause', 'havingClause', 'groupClause', 'sortClause', 'limitCount', 'limitOffset', 'distinctClause', 'windowClause']) if (node[k]) this.expr(node[k] as Node, scope)
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
      const row = this.record ? undefined : this.wholeRowOf(val, scope)
      const only = row && (source === undefined || source === this.rowSource(row.rel))
      out.push({name: String(rt.name ?? defaultName(val)), source, ...(only ? {row} : {})})
    }
    return out
  }

  /**
   * The relation whose whole row an output expression is, exactly: `t` or ROW(t.*) (a composite),
   * row_to_json(t), to_json(t), to_jsonb(t) (JSON); t a table or view in FROM. Else undefined.
   */
  private wholeRowOf(val: Node | undefined, scope: Scope): WholeRow | undefined {
    if (!val) return undefined
    const [type, node] = unwrap(val)
    let form: WholeRow['form'] = 'composite'
    let ref: Node | undefined = val
    if (type === 'FuncCall') {
      const name = ((node.funcname as Node[] | undefined) ?? []).map(fieldName)
      const args = (node.args as Node[] | undefined) ?? []
      const plain = !node.agg_star && !node.agg_distinct && !node.agg_order && !node.agg_filter && !node.over && !node.func_variadic
      if (!plain || args.length !== 1 || name.length > 2 || (name.length === 2 && name[0] !== 'pg_catalog')) return undefined
      if (!['row_to_json', 'to_json', 'to_jsonb'].includes(name[name.length - 1])) return undefined
      form = 'json'
      ref = args[0]
    } else if (type === 'RowExpr') {
      const args = (node.args as Node[] | undefined) ?? []
      const f = ((args[0]?.ColumnRef as Node | undefined)?.fields as Node[] | undefined)?.map(fieldName)
      if (args.length !== 1 || f?.[f.length - 1] !== '*') return undefined
      ref = args[0]
    }
    const names = ((ref?.ColumnRef as Node | undefined)?.fields as Node[] | undefined)?.map(fieldName)
    if (!names) return undefined
    const parts = names[names.length - 1] === '*' ? names.slice(0, -1) : names
    if (parts.length === 0 || parts.length > 2) return undefined
    const items = this.findItems(parts[parts.length - 1], scope, parts.length === 2 ? parts[0] : undefined)
    return items.length === 1 && items[0].rel ? {form, rel: items[0].rel} : undefined
  }

  private expandStar(qual: string[], scope: Scope): OutputItem[] {
    const items = qual.length ? this.findItems(qual[qual.length - 1], scope, qual.length > 1 ? qual[qual.length - 2] : undefined).slice(0, 1) : scope.items
    if (items.length === 0) return [{star: true}]
    const out: OutputItem[] = []
    for (const it of items) {
      if (it.outputs) out.push(...it.outputs)
      else {
        if (it.rel && this.m.coversTable(it.rel.schema, it.rel.table)) this.masked ??= this.rowSource(it.rel, true)
        // Flow mode: a function in FROM yields what its arguments (or the SQL text it runs) hold.
        if (this.record && it.opaque) out.push({name: '?column?', source: it.opaque.source})
        else out.push(it.rel ? {star: true, from: it.rel} : {star: true})
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
        // USING and NATURAL compare with the `=` the search_path finds.
        if (!this.record && (node.usingClause || node.isNatural)) this.routine('operator:=')
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
        for (const f of (node.functions as Node[] | undefined) ?? []) source = this.first(source, this.expr(f, scope))
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
    if (!this.record) this.rels.set(`${schema ?? ''}.${table}`, {schema, table})
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
      if (this.record) return this.join(s, this.union(outs))
      for (const o of outs) if (!('star' in o) && o.source) s ??= o.source
      if (outs.some((o) => 'star' in o) && this.masked) s ??= this.masked
      const op = routineKey(obj)
      return op ? this.join(s, this.routine(op)) : s
    }
    if (obj.SelectStmt) {
      const outs = this.select(obj.SelectStmt as Node, scope)
      if (this.record) return this.union(outs)
      for (const o of outs) if (!('star' in o) && o.source) return o.source
      return undefined
    }
    let s: string | undefined
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'location' || typeof v !== 'object') continue
      s = this.join(s, this.expr(v, scope))
    }
    if (obj.FuncCall) s = this.join(s, this.call(obj.FuncCall as Node, scope))
    const routine = this.record ? undefined : routineKey(obj)
    if (routine) s = this.join(s, this.routine(routine))
    return s
  }

  /** A routine the statement runs: noted; when it is user code, its value derives from anything. */
  private routine(key: string): string | undefined {
    this.calls.add(key)
    if (!this.opaque.has(key)) return undefined
    this.masked ??= key
    return key
  }

  /**
   * What a function call's value derives from beyond its arguments: the rows of SQL text it runs
   * (query_to_xml, dblink...), the relations it reads whole (table_to_xml...), and, in flow mode,
   * what flows into a storing function (set_config, lo_from_bytea...).
   */
  private call(fc: Node, scope: Scope): string | undefined {
    const name = ((fc.funcname as Node[] | undefined) ?? []).map(fieldName).join('.')
    const args = (fc.args as Node[] | undefined) ?? []
    if (this.record) {
      const st = storingFunction(name)
      if (st) {
        let flows: string | undefined
        for (const i of st.values) if (args[i]) flows = this.join(flows, this.expr(args[i], scope))
        this.storedCalls.push({fn: name.toLowerCase(), stores: st.stores, flows: flowRefs(flows)})
      }
    }
    // Whatever cannot be seen is tainted by every mask (flow mode: a column of unknown origin).
    const unknown = this.record ? UNKNOWN_FLOW : this.m.empty ? undefined : `${name.toLowerCase()}()`
    const sqlArg = sqlTextArgument(name, args)
    if (sqlArg !== undefined) {
      const text = sqlArg < 0 ? undefined : stringLiteral(args[sqlArg])
      if (text === undefined || this.textDepth >= MAX_TEXT_DEPTH) return unknown
      let tree: {stmts?: {stmt: Node}[]}
      try {
        tree = parseSync(text) as unknown as {stmts?: {stmt: Node}[]}
      } catch {
        return unknown
      }
      const inner = new Analyzer(this.m, this.textDepth + 1, this.record, this.opaque)
      let s: string | undefined
      for (const st of tree.stmts ?? []) {
        if (this.record) {
          // The text's own writes are judged as statements of their own (pg-analyze); its rows flow here.
          const [t, n] = unwrap(st.stmt)
          if (t === 'SelectStmt') s = this.join(s, inner.union(inner.select(n, {items: [], ctes: new Map()})))
          inner.flows(st.stmt)
          this.storedCalls.push(...inner.storedCalls.splice(0))
        } else {
          const a = inner.statement(st.stmt)
          for (const k of a.routines ?? []) this.calls.add(k)
          for (const r of a.relations ?? []) this.rels.set(`${r.schema ?? ''}.${r.table}`, r)
          if (a.readsMasked) this.masked ??= a.readsMasked
          for (const o of a.outputs ?? []) s = this.first(s, 'star' in o ? (o.from && this.m.coversTable(o.from.schema, o.from.table) ? this.rowSource(o.from, true) : undefined) : o.source)
          if (a.readsMasked) s ??= a.readsMasked
        }
      }
      return s
    }
    const reader = relationReader(name)
    if (reader === 'table') {
      const text = args[0] === undefined ? undefined : stringLiteral(args[0])
      const rel = text === undefined ? undefined : regclassName(text)
      if (!rel) return unknown
      return this.m.coversTable(rel.schema, rel.table) ? this.rowSource(rel) : undefined
    }
    if (reader) return unknown // a schema, a database, or a cursor whose query this walk does not know
    return undefined
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
            source = this.first(source, r.source)
          }
        }
        const rows = sc.items.filter((i) => i.alias === col)
        // Flow mode: every table "has" every column, so a bare alias is also its whole row.
        if (found) return this.record && rows.length ? this.join(source, this.wholeRow(rows[0])) : source
        // Not a column: a whole-row reference to a table alias (row_to_json(c)).
        if (rows.length) return this.wholeRow(rows[0])
      }
      // Not found in any FROM item: it belongs to an unmasked table of the scope (or is an error).
      return undefined
    }
    const schema = parts.length >= 3 ? parts[parts.length - 3] : undefined
    const rel = star ? parts[parts.length - 1] : parts[parts.length - 2]
    const items = this.findItems(rel, scope, schema)
    if (star) return items.length ? this.wholeRow(items[0]) : this.m.coversTable(schema, rel) ? this.rowSource({schema, table: rel}, true) : undefined
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
    if (it.rel) return this.m.coversTable(it.rel.schema, it.rel.table) ? this.rowSource(it.rel) : undefined
    if (it.outputs) {
      if (this.record) return this.union(it.outputs)
      for (const o of it.outputs) {
        if (!('star' in o)) {
          if (o.source) return o.source
        } else if (o.from && this.m.coversTable(o.from.schema, o.from.table)) return this.rowSource(o.from, true)
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
