// Prepared statements of a client session, for both SQL dialects (SQL PREPARE / EXECUTE /
// DEALLOCATE, and protocol-level prepares that share their namespace). The analyzers see a
// statement before the server runs it, and the server may never run it (it is refused, or an
// earlier statement of the same text fails), so what is kept is what the server *may* hold:
//   - PREPARE of a name already known keeps what it held as well (PostgreSQL rejects the duplicate;
//     MySQL replaces it only if the new PREPARE runs),
//   - DEALLOCATE retires an entry instead of dropping it (EXECUTE of a retired name either fails or
//     runs the old statement), and a name prepared again after DEALLOCATE is judged as either,
//   - EXECUTE of a name never seen is judged `unseen` by the analyzers.
// The retired entries live beside the engine's map (a WeakMap keyed by it), so engines keep passing
// one plain Map per session.
import type {Statement} from '../policy/types.js'

interface PreparedState {
  retired: Map<string, Statement[]>
}

const PREPARED_STATE = new WeakMap<Map<string, Statement[]>, PreparedState>()

/** Names tracked per session (prepared and retired); past it, new names are not remembered (EXECUTE of them is unseen). */
const MAX_PREPARED_NAMES = 10_000
/** Statements kept for one name (a name prepared, deallocated and prepared again accumulates). */
const MAX_STATEMENTS_PER_NAME = 64

function preparedState(prepared: Map<string, Statement[]>): PreparedState {
  let st = PREPARED_STATE.get(prepared)
  if (!st) {
    st = {retired: new Map()}
    PREPARED_STATE.set(prepared, st)
  }
  return st
}

function unionStatements(a: readonly Statement[], b: readonly Statement[]): Statement[] {
  const seen = new Set(a.map((s) => JSON.stringify(s)))
  const out = [...a]
  for (const s of b) if (!seen.has(JSON.stringify(s))) out.push(s)
  return out
}

/**
 * Records that `name` may now hold `statements` (SQL PREPARE, or a named protocol Parse: they share
 * one namespace, so SQL EXECUTE can run either). Keeps whatever the name may already hold.
 */
export function rememberPrepared(prepared: Map<string, Statement[]>, name: string, statements: readonly Statement[]): void {
  const st = preparedState(prepared)
  const before = [...(prepared.get(name) ?? []), ...(st.retired.get(name) ?? [])]
  if (before.length === 0 && prepared.size + st.retired.size >= MAX_PREPARED_NAMES) return
  let all = unionStatements(before, statements.map((s) => ({...s})))
  if (all.length > MAX_STATEMENTS_PER_NAME) {
    all = [{kind: 'execute', command: 'EXECUTE', tables: [], writes: true, functions: [], index: 0, unseen: `prepared statement "${name}" was prepared again too many times to track what it holds`}]
  }
  st.retired.delete(name)
  prepared.set(name, all)
}

/** DEALLOCATE name (or, without a name, DEALLOCATE ALL / DISCARD ALL; a protocol Close of a statement likewise). */
export function forgetPrepared(prepared: Map<string, Statement[]>, name?: string): void {
  const st = preparedState(prepared)
  const names = name === undefined ? [...prepared.keys()] : [name]
  for (const n of names) {
    const cur = prepared.get(n)
    if (!cur) continue
    st.retired.set(n, unionStatements(st.retired.get(n) ?? [], cur))
    prepared.delete(n)
  }
}

/** What EXECUTE name may run: the prepared statements, those of a retired name, or undefined when never seen. */
export function preparedStatements(prepared: Map<string, Statement[]>, name: string): Statement[] | undefined {
  return prepared.get(name) ?? PREPARED_STATE.get(prepared)?.retired.get(name)
}
