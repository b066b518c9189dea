// The PostgreSQL parser (libpg-query, the real parser compiled to WebAssembly), loaded once for
// both statement analysis (policy) and taint analysis (masking).
import {loadModule} from 'libpg-query'

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
