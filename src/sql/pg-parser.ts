// The PostgreSQL parser (libpg-query, the real parser compiled to WebAssembly), loaded once for
// both statement analysis (policy) and taint analysis (masking), and the parse both share.
import {loadModule, parseSync} from 'libpg-query'
import {errorMessage} from '../shared/errors.js'
import {ParseCache} from './parse-cache.js'

let loaded: Promise<void> | undefined
let ready = false

/** Loads the parser once; every later call resolves at once. Await before any analysis. */
export function loadPgParser(): Promise<void> {
  loaded ??= loadModule().then(() => {
    ready = true
  })
  return loaded
}

/** True once `loadPgParser()` has resolved (synchronous callers check instead of awaiting). */
export function pgParserReady(): boolean {
  return ready
}

/** A node of the parse tree: `{TypeName: {...fields}}` (JSON, as libpg-query gives it). */
export type PgNode = Record<string, unknown>

/** The parse of one text: its raw statements as libpg-query gives them, or why it does not parse. */
export type PgParse = {stmts: ReadonlyArray<{stmt?: PgNode}>} | {error: string}

/** Parses `sql` once (the parser must be loaded). Never throws. */
export function parsePg(sql: string): PgParse {
  try {
    const tree = parseSync(sql) as unknown as {stmts?: Array<{stmt?: PgNode}>}
    return {stmts: tree.stmts ?? []}
  } catch (err) {
    return {error: errorMessage(err) || 'syntax error'}
  }
}

/** A session's parses by statement text (parse-cache.ts), for `analyzePostgres` and `analyzeSql`. */
export type PgParses = ParseCache<PgParse>

export function newPgParses(): PgParses {
  return new ParseCache(parsePg)
}
