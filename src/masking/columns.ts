// Column patterns from a MaskPlan, matched against resolved column origins (schema.table.column)
// and against partially known references from the parse tree (a table name without a schema,
// a column without a known table). Unknown parts match conservatively (fail closed).

export interface ColumnName {
  schema?: string
  table?: string
  column: string
}

interface Pattern {
  schema: string
  table: string
  column: string
  text: string
}

export class ColumnMatcher {
  private readonly patterns: Pattern[]
  /** The pattern texts, sorted: equal for two matchers that match exactly the same columns. */
  readonly key: string

  constructor(private readonly texts: readonly string[]) {
    this.patterns = texts.map(parsePattern).filter((p): p is Pattern => p !== undefined)
    this.key = JSON.stringify([...texts].sort())
  }

  /** A matcher that also matches these patterns (a view's columns derived from masked ones). */
  extend(patterns: readonly string[]): ColumnMatcher {
    return new ColumnMatcher([...this.texts, ...patterns])
  }

  get empty(): boolean {
    return this.patterns.length === 0
  }

  /** The first pattern text matching the column, or undefined. Missing schema/table parts match any. */
  match(c: ColumnName): string | undefined {
    const col = c.column.toLowerCase()
    const table = c.table?.toLowerCase()
    const schema = c.schema?.toLowerCase()
    for (const p of this.patterns) {
      if (p.column !== '*' && p.column !== col) continue
      if (table !== undefined && p.table !== '*' && p.table !== table) continue
      if (schema !== undefined && p.schema !== '*' && p.schema !== schema) continue
      return p.text
    }
    return undefined
  }

  /** Does any pattern cover some column of this table? (whole-row references like row_to_json(t)) */
  coversTable(schema: string | undefined, table: string): boolean {
    const t = table.toLowerCase()
    const s = schema?.toLowerCase()
    return this.patterns.some((p) => (p.table === '*' || p.table === t) && (s === undefined || p.schema === '*' || p.schema === s))
  }
}

/** Distinct pattern lists a session keeps matchers for (a policy reload brings one more, mostly). */
const MAX_MATCHERS = 16

/**
 * The matchers of one session, by pattern list. Every verdict carries a mask plan of its own, but
 * a session sees few distinct lists: building a matcher per statement (and per server message that
 * asks) is avoidable work. Keyed by the exact list, so a policy reload that changes it gets a new one.
 */
export class ColumnMatchers {
  private readonly byKey = new Map<string, ColumnMatcher>()
  private last: {patterns: readonly string[]; matcher: ColumnMatcher} | undefined

  get(patterns: readonly string[]): ColumnMatcher {
    // The same plan asks again and again while its statement runs: answer without a key.
    if (this.last?.patterns === patterns) return this.last.matcher
    const key = JSON.stringify(patterns)
    let m = this.byKey.get(key)
    if (!m) {
      if (this.byKey.size >= MAX_MATCHERS) this.byKey.clear()
      this.byKey.set(key, (m = new ColumnMatcher(patterns)))
    }
    this.last = {patterns, matcher: m}
    return m
  }
}

function parsePattern(text: string): Pattern | undefined {
  const parts = text
    .trim()
    .split('.')
    .map((s) => s.trim().replace(/^"(.*)"$/, '$1').toLowerCase())
  if (parts.some((p) => p === '')) return undefined
  if (parts.length === 1) return {schema: '*', table: '*', column: parts[0], text}
  if (parts.length === 2) return {schema: '*', table: parts[0], column: parts[1], text}
  if (parts.length === 3) return {schema: parts[0], table: parts[1], column: parts[2], text}
  return undefined
}
