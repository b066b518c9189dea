// One parse per statement text in a session, shared by policy's analysis and masking's taint
// analysis (both dialects). Only the parse is kept: a parse tree depends on the text alone, while
// what the analysers conclude from it also depends on session state (prepared names, sql_mode,
// user variables, the mask plan of the current policy), so they walk the tree again each time and
// a change of that state can never meet a stale verdict or mask decision.
//
// Kept per session and bounded: the last `entries` texts (least recently used out first), texts of
// at most `entryChars`, at most `totalChars` of text in all; a tree takes about 45 bytes of heap
// per character of its text (libpg-query's JSON), so the defaults hold at most ~3 MB per session.
// A text is kept from its second sighting on: traffic whose texts never repeat (literals inlined)
// would otherwise pay for keeping every tree alive past the young generation and gain nothing.
// The latest parse is kept too (up to `totalChars`), for the second analysis of the same statement.
//
// Both analysers only read the tree they are handed (test/unit/sql/parse-cache.test.ts checks a
// corpus): one cannot change what the other, or a later statement of the same text, will read.

export interface ParseCacheLimits {
  entries: number
  entryChars: number
  totalChars: number
}

/** ORMs and drivers repeat a few hundred statement texts, most of them short. */
export const DEFAULT_PARSE_CACHE_LIMITS: ParseCacheLimits = {entries: 256, entryChars: 8 * 1024, totalChars: 64 * 1024}

export class ParseCache<T extends object> {
  private readonly entries = new Map<string, T>()
  private chars = 0
  /** Texts parsed once and not kept (yet), under the same bounds (text only, no trees). */
  private readonly seen = new Map<string, true>()
  private seenChars = 0
  private latest: {sql: string; parsed: T} | undefined

  constructor(
    private readonly parse: (sql: string) => T,
    private readonly limits: ParseCacheLimits = DEFAULT_PARSE_CACHE_LIMITS,
  ) {}

  /** The parse of `sql`: the one kept, or a new one (kept when `sql` is small enough). */
  get(sql: string): T {
    const kept = this.entries.get(sql)
    if (kept !== undefined) {
      // Most recently used goes last: a Map iterates in insertion order.
      this.entries.delete(sql)
      this.entries.set(sql, kept)
      return kept
    }
    if (this.latest?.sql === sql) return this.latest.parsed
    const parsed = this.parse(sql)
    // A longer text is parsed again by the second analysis rather than held while the session idles.
    this.latest = sql.length <= this.limits.totalChars ? {sql, parsed} : undefined
    if (sql.length > this.limits.entryChars) return parsed
    if (this.seen.delete(sql)) {
      this.seenChars -= sql.length
      this.entries.set(sql, parsed)
      this.chars = this.bound(this.entries, this.chars + sql.length)
    } else {
      this.seen.set(sql, true)
      this.seenChars = this.bound(this.seen, this.seenChars + sql.length)
    }
    return parsed
  }

  /** Drops the oldest texts of `m` until it is within the limits; returns its text total. */
  private bound(m: Map<string, unknown>, chars: number): number {
    for (const oldest of m.keys()) {
      if (m.size <= this.limits.entries && chars <= this.limits.totalChars) break
      m.delete(oldest)
      chars -= oldest.length
    }
    return chars
  }
}

