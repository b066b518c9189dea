// Per-session state the MySQL analyzers need to read text as the server does: which lexing modes
// (sql_mode's ANSI_QUOTES and NO_BACKSLASH_ESCAPES) the session may be in, and what its user
// variables may hold (PREPARE ... FROM @var).
//
// The analyzers see a statement before the server runs it, and the server may never run it (it is
// refused, or an earlier statement of the same text fails). So the state is a set of what the
// session *may* be in: `SET sql_mode = 'ANSI_QUOTES'` adds a mode rather than replacing one, and
// text is read under every mode still possible (analysis/mysql-analyze.ts refuses text that splits
// differently under them). The engine narrows the set with what the server reports:
// `observeNoBackslashEscapes` (the status flag of every OK/EOF packet) and `observeSqlMode`.
import {newMysqlParses, type LexMode, type MysqlParses} from './mysql-parser.js'

/** A lexing mode as a key: `A` = ANSI_QUOTES, `N` = NO_BACKSLASH_ESCAPES. */
export type ModeKey = '' | 'A' | 'N' | 'AN'

export const ALL_MODES: readonly ModeKey[] = ['', 'A', 'N', 'AN']

export function lexMode(k: ModeKey): LexMode {
  return {ansiQuotes: k.includes('A'), noBackslashEscapes: k.includes('N')}
}

export function modeKey(ansiQuotes: boolean, noBackslashEscapes: boolean): ModeKey {
  return `${ansiQuotes ? 'A' : ''}${noBackslashEscapes ? 'N' : ''}` as ModeKey
}

/** sql_mode values that include ANSI_QUOTES (the combination modes of MySQL and MariaDB). */
const ANSI_QUOTES_MODES = new Set(['ANSI_QUOTES', 'ANSI', 'DB2', 'MAXDB', 'MSSQL', 'ORACLE', 'POSTGRESQL'])

/** The lexing mode a sql_mode value (`'STRICT_TRANS_TABLES,ANSI_QUOTES'`) puts a session in. */
export function parseSqlMode(value: string): ModeKey {
  const flags = value.split(',').map((f) => f.trim().toUpperCase())
  return modeKey(flags.some((f) => ANSI_QUOTES_MODES.has(f)), flags.includes('NO_BACKSLASH_ESCAPES'))
}

/** What a user variable may hold: string literals assigned to it, or anything (`unknown`). */
export interface UserVariable {
  values: Set<string>
  unknown: boolean
}

/** Values kept per user variable; past it, the variable counts as unknown. */
const MAX_VARIABLE_VALUES = 16

/** A value standing for "the session's sql_mode while it was in mode K" (`SET @saved = @@sql_mode`). */
export const MODE_VALUE_PREFIX = '\u0000sql_mode:'

export interface MysqlSession {
  /** The lexing modes the session may be in; usually one. */
  modes: Set<ModeKey>
  /** The modes `SET sql_mode = DEFAULT` (or `= @@GLOBAL.sql_mode`) may give: the server's global sql_mode. */
  globalModes: Set<ModeKey>
  /** User variables by lower-case name. */
  variables: Map<string, UserVariable>
  /** A stored procedure ran (CALL): it may have assigned any user variable, so none is known any more. */
  variablesUnsure?: boolean
  /** The modes possible when the last top-level text started, so the taint analysis of the same text reads it alike. */
  last?: {sql: string; modes: ModeKey[]}
  /** Parses by statement text, shared by both analysers (they walk them again under the state above). */
  parses: MysqlParses
}

/**
 * A new session's state. `sqlMode`: the server's sql_mode for the session, when the engine knows it
 * (`SELECT @@sql_mode`, or the session-state tracker); without it the server default of MariaDB and
 * MySQL (neither ANSI_QUOTES nor NO_BACKSLASH_ESCAPES) is assumed.
 */
export function newMysqlSession(sqlMode?: string): MysqlSession {
  const k = sqlMode === undefined ? '' : parseSqlMode(sqlMode)
  return {modes: new Set([k]), globalModes: new Set([k]), variables: new Map(), parses: newMysqlParses()}
}

const SESSIONS = new WeakMap<object, MysqlSession>()

/**
 * The session state for an analysis: the one given, else the one kept beside the session's
 * `variables` (or `prepared`) map that engines already pass once per session, else a new one.
 */
export function mysqlSessionOf(opts: {session?: MysqlSession; variables?: object; prepared?: object}): MysqlSession {
  if (opts.session) return opts.session
  const key = opts.variables ?? opts.prepared
  if (!key) return newMysqlSession()
  let s = SESSIONS.get(key)
  if (!s) {
    s = newMysqlSession()
    SESSIONS.set(key, s)
  }
  return s
}

/** The server said whether NO_BACKSLASH_ESCAPES is on (SERVER_STATUS_NO_BACKSLASH_ESCAPES, 0x0200, in OK and EOF packets). */
export function observeNoBackslashEscapes(session: MysqlSession, on: boolean): void {
  const keep = [...session.modes].filter((k) => k.includes('N') === on)
  session.modes = new Set(keep.length ? keep : [modeKey(false, on), modeKey(true, on)])
}

/** The server reported the session's sql_mode (a query of @@sql_mode, or session-state tracking). */
export function observeSqlMode(session: MysqlSession, value: string): void {
  session.modes = new Set([parseSqlMode(value)])
}

/** The modes to read `sql` in for masking: those its policy analysis started from, when it was the last text analyzed. */
export function lexModesFor(session: MysqlSession | undefined, sql: string): ModeKey[] {
  if (!session) return ['']
  if (session.last && session.last.sql === sql) return session.last.modes
  return [...session.modes]
}

/** What a user variable may hold: its values, or undefined when it may hold anything. */
export function variableValues(session: MysqlSession, name: string): string[] | undefined {
  const v = session.variables.get(name.toLowerCase())
  if (session.variablesUnsure || v?.unknown) return undefined
  return v ? [...v.values] : []
}

/** Records that `name` may now hold `value` (undefined: anything). */
export function assignVariable(session: MysqlSession, name: string, value: string | undefined): void {
  const n = name.toLowerCase()
  let v = session.variables.get(n)
  if (!v) {
    v = {values: new Set(), unknown: false}
    session.variables.set(n, v)
  }
  if (value === undefined || v.values.size >= MAX_VARIABLE_VALUES) {
    v.unknown = true
    v.values.clear()
  } else if (!v.unknown) v.values.add(value)
}
