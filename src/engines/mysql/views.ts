// Taint analysis that sees through views. MariaDB reports a view's column with the view as its
// origin (org_table, org_name), so a mask rule on `customers.email` does not match `v.contact` of
// `CREATE VIEW v AS SELECT email AS contact FROM customers`. Before a statement runs, the views it
// names are read from the catalog and their definitions analysed (views over views too, up to
// MAX_VIEW_DEPTH): a view column that derives from a masked column becomes a masked column
// (`schema.view.column`), for origin matching and for the statement's own taint (upper(contact)).
// A view that cannot be analysed, or a failed look-up, masks every column of the names concerned.
import type {ColumnMatcher} from '../../masking/columns.js'
import type {ColumnDefinition} from '../../protocol/mysql/messages.js'
import type {MysqlSession} from '../../sql/mysql-session.js'
import {analyzeMysqlOutputs, type MysqlOutputAnalysis} from '../../sql/mysql-taint.js'
import {outputAt, type OutputItem} from '../../sql/taint.js'
import type {MysqlCatalog} from './catalog.js'

/** Views over views are followed this deep; a deeper one counts as masked whole. */
const MAX_VIEW_DEPTH = 8

type Relation = {schema?: string; table: string}

export interface ViewTaint {
  /** Output taint per statement; 'unparsed' when the text did not parse. */
  outputs: MysqlOutputAnalysis[] | 'unparsed'
  /** The plan's column patterns plus the view columns that derive from masked ones. */
  matcher: ColumnMatcher
}

/** `analyzeMysqlOutputs` with the views the text names resolved through the catalog. */
export async function taintThroughViews(sql: string, matcher: ColumnMatcher, catalog: MysqlCatalog, session?: MysqlSession, depth = 0): Promise<ViewTaint> {
  const first = analyzeMysqlOutputs(sql, matcher, session)
  if (!first) return {outputs: 'unparsed', matcher}
  const patterns: string[] = []
  const named: Relation[] = []
  let changed = false
  for (const a of first) {
    // After a statement that may create or replace a view, a name read later may be that view:
    // the catalog read now cannot say what it holds, so all of it is masked.
    if (changed) patterns.push(...(a.relations ?? []).map((r) => columnPattern(r.schema, r.table, '*')))
    else named.push(...(a.relations ?? []))
    if (a.changesCatalog) changed = true
  }
  patterns.push(...(await viewPatterns(named, matcher, catalog, depth)))
  if (patterns.length === 0) return {outputs: first, matcher}
  const extended = matcher.extend(patterns)
  return {outputs: analyzeMysqlOutputs(sql, extended, session) ?? 'unparsed', matcher: extended}
}

/**
 * For a result whose columns the statement's text does not show (CALL, EXECUTE, an unparsed
 * text): the matcher extended with the derived columns of the views among the columns' origins.
 */
export async function originViews(defs: readonly ColumnDefinition[], matcher: ColumnMatcher, catalog: MysqlCatalog): Promise<ColumnMatcher> {
  const rels = new Map<string, Relation>()
  for (const d of defs) {
    if (d.orgTable === '' || d.orgName === '' || matcher.match({schema: d.schema || undefined, table: d.orgTable, column: d.orgName})) continue
    rels.set(`${d.schema}.${d.orgTable}`, {schema: d.schema || undefined, table: d.orgTable})
  }
  const patterns = await viewPatterns([...rels.values()], matcher, catalog, 0)
  return patterns.length ? matcher.extend(patterns) : matcher
}

/**
 * What the built-in rules check a storing statement's sources against (the gate's
 * refuseStoredFromViews): the view columns among `rels` that derive from a masked one (below).
 */
export function maskedViewColumns(rels: readonly Relation[], matcher: ColumnMatcher, catalog: MysqlCatalog): Promise<string[]> {
  return viewPatterns(rels, matcher, catalog, 0)
}

/**
 * Column patterns for the columns of the views among `rels` that derive from a masked column (or
 * cannot be told apart: every column of a view that cannot be analysed). Every view a name could
 * mean counts. When the look-up fails, every relation named is masked whole.
 */
async function viewPatterns(rels: readonly Relation[], matcher: ColumnMatcher, catalog: MysqlCatalog, depth: number): Promise<string[]> {
  if (rels.length === 0) return []
  const views = await catalog.views(rels)
  if (!views) return rels.map((r) => columnPattern(r.schema, r.table, '*'))
  const out: string[] = []
  for (const v of views) {
    const outputs = depth < MAX_VIEW_DEPTH && v.definition ? await viewOutputs(v.definition, matcher, catalog, depth + 1) : undefined
    if (!outputs || v.columns.length === 0) {
      out.push(columnPattern(v.schema, v.table, '*'))
      continue
    }
    v.columns.forEach((name, i) => {
      const o = outputAt(outputs, i, v.columns.length)
      if (o === 'unknown' || o.source) out.push(columnPattern(v.schema, v.table, name))
    })
  }
  return out
}

/** What each column of a view definition (one SELECT) derives from; undefined when it cannot be told. */
async function viewOutputs(definition: string, matcher: ColumnMatcher, catalog: MysqlCatalog, depth: number): Promise<OutputItem[] | undefined> {
  const t = await taintThroughViews(definition, matcher, catalog, undefined, depth)
  if (t.outputs === 'unparsed' || t.outputs.length !== 1 || t.outputs[0].kind !== 'rows') return undefined
  return t.outputs[0].outputs
}

/**
 * A mask pattern for one column. Patterns are dot-separated, unquoted and trimmed, so a part
 * holding a dot, a double quote or edge spaces (a quoted name) is widened to `*`: masking more, never less.
 */
function columnPattern(schema: string | undefined, table: string, column: string): string {
  const part = (s: string | undefined) => (s === undefined || s === '' || /[."]|^\s|\s$/.test(s) ? '*' : s)
  return `${part(schema)}.${part(table)}.${part(column)}`
}
