// The policy model: what a rule is, what an operation looks like to policy, and what a decision is.
// Protocol-neutral on purpose: engines (PostgreSQL, MySQL, HTTP) translate what they
// see on the wire into an Operation, and the same rules judge it. Nothing here knows about sockets.
import type {JsonPathSegment} from '../shared/json-path.js'

// ---------------------------------------------------------------------------------------------
// Operations: what a client asked for, as policy sees it.

export const STATEMENT_KINDS = [
  'select', // reads (SELECT, VALUES, TABLE, SHOW-like reads)
  'insert',
  'update',
  'delete',
  'merge',
  'ddl', // CREATE / ALTER / COMMENT / SELECT INTO / CREATE TABLE AS / CREATE FUNCTION ...
  'drop', // DROP anything (table, database, role, ...)
  'truncate',
  'copy', // COPY (see copyProgram / copyFile for server-side side effects)
  'call', // CALL procedure
  'do', // DO blocks: an opaque procedural body
  'set', // SET / RESET / SET ROLE / SET SESSION AUTHORIZATION
  'show',
  'transaction', // BEGIN / COMMIT / ROLLBACK / SAVEPOINT
  'grant', // GRANT / REVOKE / CREATE ROLE / ALTER ROLE / ALTER DEFAULT PRIVILEGES
  'explain', // EXPLAIN without ANALYZE (EXPLAIN ANALYZE is judged as the statement it runs)
  'prepare', // only when the inner statement cannot be seen; normally judged as the inner statement
  'execute', // EXECUTE of a prepared statement the analyzer has not seen
  'lock', // LOCK TABLE
  'maintenance', // VACUUM, ANALYZE, REINDEX, CLUSTER, CHECKPOINT, REFRESH MATERIALIZED VIEW
  'listen', // LISTEN / NOTIFY / UNLISTEN
  'other',
] as const
export type StatementKind = (typeof STATEMENT_KINDS)[number]

type Engine = 'postgres' | 'mysql' | 'http'

/**
 * A column as a statement names it; absent parts are unknown (an unqualified table may be in any
 * schema, a column of unknown origin in any table). `column: '*'` is every column of the table
 * (a whole row, `SELECT *`, a table renamed or altered), `table: '*'` every table of the schema.
 */
export interface ColumnRef {
  schema?: string
  table?: string
  column: string
}

/** A column whose values flow into what a statement stores, and the column they land in when known. */
export interface ColumnFlow {
  from: ColumnRef
  into?: ColumnRef
}

/** Where a statement stores values its subject (or someone else) can read back under another name. */
export const STORES = ['table', 'view', 'setting', 'large-object', 'file', 'program', 'variable', 'sequence', 'notification'] as const
export type Store = (typeof STORES)[number]

/** One storing part of a statement: where values go, and which columns flow into them. */
export interface StoreFlow {
  stores: Store
  /** What stores them: the command ("INSERT", "CREATE TABLE AS") or the function ("set_config"). */
  by: string
  flows: ColumnFlow[]
}

/** One statement (or one nested data-modifying part of a statement) as policy judges it. */
export interface Statement {
  kind: StatementKind
  /** Upper-case command tag, e.g. "DROP TABLE", "SELECT", "COPY FROM", "CREATE FUNCTION". */
  command: string
  /** Relations named, schema-qualified where the statement qualifies them ("public.t" or "t"). */
  tables: string[]
  /** True when the statement changes data, schema, privileges, server files, or takes row locks. */
  writes: boolean
  /** UPDATE / DELETE / MERGE: whether a WHERE clause (or MERGE ON) bounds the rows touched. */
  hasWhere?: boolean
  /** Functions called anywhere in the statement, lower-case, schema-qualified where written. */
  functions: string[]
  /** COPY ... FROM PROGRAM / TO PROGRAM: runs a shell command on the database server. */
  copyProgram?: boolean
  /** COPY ... FROM 'file' / TO 'file': reads or writes a file on the database server. */
  copyFile?: boolean
  /** Body is procedural code the analyzer cannot see into (DO, CREATE FUNCTION/PROCEDURE). */
  opaque?: boolean
  /** SELECT ... FOR UPDATE / FOR SHARE. */
  locksRows?: boolean
  /** Run-time settings changed (SET / RESET / set_config / startup parameters), lower-case names. */
  settings?: string[]
  /**
   * Part of what this statement runs cannot be seen: SQL text built at run time and handed to a
   * function that executes it, EXECUTE of a name this session never prepared through hoop, a
   * setting chosen at run time. The reason; policy judges such a statement like text it could not
   * parse (`unparsable: true` rules match it, `defaults.unparsable` applies, read-only blocks it).
   */
  unseen?: string
  /** What the statement stores and which columns flow into it (policy's hoop.no-laundering rule). */
  stores?: StoreFlow[]
  /** Tables, columns and schemas that DDL renames or alters, or hangs triggers and rules on (hoop.masked-ddl). */
  alters?: ColumnRef[]
  /** Reads statistics that expose sampled column values (pg_stats, mysql.column_stats...): hoop.masked-stats. */
  readsStatistics?: boolean
  /**
   * How this statement was reached when it is not a top-level statement: a data-modifying CTE,
   * the statement inside PREPARE, the statement EXPLAIN ANALYZE runs, a prepared statement
   * named by EXECUTE, SQL seen inside a DO block or a function body (best effort: the body
   * stays `opaque`, since dynamic SQL built at run time cannot be seen), SQL text given to a
   * function that executes it (`sql-text`: query_to_xml, dblink...), the update part of an
   * upsert (`upsert`: ON CONFLICT DO UPDATE, ON DUPLICATE KEY UPDATE, REPLACE), a WHEN action of a
   * MERGE (`merge`), a run-time setting changed by a function (`function`: set_config), or a
   * startup parameter of the connection (`startup`).
   */
  via?: 'cte' | 'prepare' | 'explain' | 'execute' | 'do' | 'function' | 'sql-text' | 'upsert' | 'merge' | 'startup'
  /** Index of the top-level statement this belongs to (0-based). */
  index: number
}

/**
 * What the HTTP engine could see of a request body. `json`: parsed, in `body`; `invalid-json`:
 * declared JSON but unparsable; `too-large`: JSON over the inspection limit (streamed, not seen);
 * `not-inspected`: a body of another type (streamed); `none`: no body.
 */
type HttpBodyStatus = 'none' | 'json' | 'invalid-json' | 'too-large' | 'not-inspected'

/**
 * An HTTP request as policy judges it (the HTTP engine's HttpRequestView is this with every field
 * filled in). Absent optional fields read as "nothing there": no query, no body.
 */
export interface HttpRequestInfo {
  /** Upper-case method as sent. */
  method: string
  /** Normalised path (percent-escapes of unreserved characters decoded, dot segments removed). */
  path: string
  /** Decoded query parameters. */
  query?: Record<string, string[]>
  /** Path and raw query, as forwarded upstream. */
  target?: string
  contentType?: string
  bodyStatus?: HttpBodyStatus
  /** The parsed JSON body when `bodyStatus` is `json`. */
  body?: unknown
  /** sha256 hex of method, target and inspected body: binds a one-time approval to this request. */
  fingerprint?: string
}

/** Methods that only read; any other method counts as a write (read-only grants block it). */
export const HTTP_READ_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS']

export interface Operation {
  engine: Engine
  /** Top-level statements, then any nested parts (CTE writes, PREPARE bodies), flattened. Empty for HTTP. */
  statements: Statement[]
  /** Set when the text could not be parsed; `statements` is then empty. */
  unparsable?: {reason: string}
  /** The request, when `engine` is `http` (judged instead of `statements`). */
  http?: HttpRequestInfo
}

// ---------------------------------------------------------------------------------------------
// Rules.

export const EFFECTS = ['allow', 'deny', 'block', 'review', 'mask'] as const
export type Effect = (typeof EFFECTS)[number]

export const ENTITY_TYPES = ['email', 'phone', 'card', 'iban', 'ssn', 'jwt', 'api_key'] as const
export type EntityType = (typeof ENTITY_TYPES)[number]

/** Who a rule applies to. A subject matches when any listed entry matches. Globs use * and ?. */
export interface SubjectMatcher {
  /** People: matched against the identity's email, then its subject. */
  users?: string[]
  /** Group names (any identity kind carries groups). */
  groups?: string[]
  /** Gateway-issued service accounts, by name. */
  serviceAccounts?: string[]
  /** OAuth client-credentials clients, by client id (subject) or name. */
  clients?: string[]
  /** CI workload identities: the issuer and every listed claim must match. */
  ci?: CiMatcher[]
}

export interface CiMatcher {
  issuer?: string
  /** claim name -> glob of the expected value. */
  claims: Record<string, string>
}

/**
 * What a block or review rule matches. Two families of keys: SQL keys judge statements, HTTP keys
 * judge requests; a matcher holds keys of one family only (validation rejects a mix), and a key of
 * one family never matches an operation of the other. `writes` belongs to both.
 */
export interface StatementMatcher {
  // --- SQL
  kinds?: StatementKind[]
  /** Command tags, globbed: "DROP *", "CREATE FUNCTION". */
  commands?: string[]
  /** SQL: the statement writes. HTTP: the method is not GET, HEAD or OPTIONS. */
  writes?: boolean
  where?: 'absent' | 'present'
  /** Table globs ("public.*", "*.secrets"); an unqualified name in a statement matches "name" and "*.name". */
  tables?: string[]
  /** Function globs ("pg_sleep", "pg_read_*", "dblink*"). */
  functions?: string[]
  copyProgram?: boolean
  copyFile?: boolean
  opaque?: boolean
  /** Run-time setting globs ("session_replication_role", "search_path"): SET, RESET, set_config, startup parameters. */
  settings?: string[]
  /** Matches an operation that could not be parsed, and a statement part of which cannot be seen (`unseen`). */
  unparsable?: boolean
  // --- HTTP
  /** Upper-case methods. */
  methods?: string[]
  /** Globs on the normalised path ("/v1/users/*"). */
  paths?: string[]
  /** Query parameter name -> glob of a value ("*": the parameter is present). */
  query?: Record<string, string>
  /** Conditions on fields of the parsed JSON body; all must hold. */
  body?: BodyCondition[]
  /** The body was declared JSON but could not be read (too large, or not valid JSON). */
  bodyUnreadable?: boolean
}

/** Match keys judged against SQL statements only. */
export const SQL_MATCH_KEYS = ['kinds', 'commands', 'where', 'tables', 'functions', 'copyProgram', 'copyFile', 'opaque', 'settings', 'unparsable'] as const
/** Match keys judged against HTTP requests only. */
export const HTTP_MATCH_KEYS = ['methods', 'paths', 'query', 'body', 'bodyUnreadable'] as const

/** One `body:` entry: a JSON path (compiled) and what a value it names must be. */
export interface BodyCondition {
  /** As written in the policy ("$.amount", "items[*].sku"). */
  path: string
  segments: JsonPathSegment[]
  test: BodyTest
}

/**
 * `equals`: the JSON scalar written (numbers also match numeric strings); `glob`: a string glob on
 * the value's text ("*": present, whatever the value); `range`: numeric bounds (numbers or
 * numeric strings).
 */
export type BodyTest =
  | {kind: 'equals'; value: string | number | boolean | null}
  | {kind: 'glob'; glob: string}
  | {kind: 'range'; gt?: number; gte?: number; lt?: number; lte?: number}

/** `*` stands for any part: "*.ssn" = column ssn of any table. */
export interface ColumnPattern {
  schema: string
  table: string
  column: string
  /** As written in the policy. */
  text: string
}

export interface ReviewSpec {
  approvers: SubjectMatcher
  /** How many distinct approvers must approve. */
  approvals: number
  /** How long an approval stays valid. */
  ttlSeconds: number
  /** What one approval covers: see ReviewScope. */
  scope: ReviewScope
}

/**
 * What one approval covers, for the requester on the connection:
 * `statement` — the exact statement text, once (consumed by its first run);
 * `repeat`    — the exact statement text, as many times as it runs, in any session, until `ttl`
 *               after approval (a tool that sends the same statement on every run or twice per run);
 * `session`   — every statement the rule matches, until the grant ends (time-boxed access).
 */
export type ReviewScope = 'statement' | 'repeat' | 'session'
export const REVIEW_SCOPES: readonly ReviewScope[] = ['statement', 'repeat', 'session']

export interface Limits {
  readOnly: boolean
  maxSessionSeconds?: number
}

export interface Rule {
  id: string
  effect: Effect
  /** Absent = every subject. */
  subjects?: SubjectMatcher
  /** Connection-name globs; absent = every connection. */
  connections?: string[]
  /** Connection types ("postgres", "mysql", "http", "tcp"); absent = every type. */
  types?: string[]
  /** block and review only; absent = every statement. */
  match?: StatementMatcher
  message?: string
  /** allow only. */
  limits?: Limits
  /** allow only: built-in rules (BUILTIN_RULES) that do not apply to the subjects this rule grants. */
  waive?: BuiltinRuleId[]
  review?: ReviewSpec
  mask?: {columns: ColumnPattern[]; entities: EntityType[]; fields: string[]}
  /** Where the rule is written, for messages and `hoop policy test`. */
  at: {file: string; line: number}
}

export interface Policy {
  version: 1
  /** Where the policy came from ("<empty>" when there is none). */
  file: string
  defaults: {unparsable: 'block' | 'allow'}
  rules: Rule[]
}

// ---------------------------------------------------------------------------------------------
// Decisions. Every decision carries the id of the rule that made it.

/** Rule ids used when no rule of the policy decided. */
export const DEFAULT_DENY = 'default-deny'
export const DEFAULT_UNPARSABLE = 'default-unparsable'

/**
 * Built-in rules: blocks hoop applies for subjects with a column mask, whatever the policy says,
 * unless an `allow` rule that grants the subject the connection waives them (`waive: [id]`).
 * docs/policy.md says what each blocks and why.
 */
export const NO_LAUNDERING = 'hoop.no-laundering'
export const MASKED_DDL = 'hoop.masked-ddl'
export const MASKED_STATS = 'hoop.masked-stats'
export const BUILTIN_RULES = [NO_LAUNDERING, MASKED_DDL, MASKED_STATS] as const
export type BuiltinRuleId = (typeof BUILTIN_RULES)[number]

export interface ConnectionRef {
  name: string
  type: string
}

export interface AccessDecision {
  allowed: boolean
  ruleId: string
  reason: string
  limits: Limits
}

export interface MaskPlan {
  columns: ColumnPattern[]
  entities: EntityType[]
  /** JSON paths masked in HTTP bodies ("$.customer.email", "$.items[*].card", "email" = any depth). */
  fields: string[]
  /** Ids of every mask rule that contributed. */
  ruleIds: string[]
}

export interface ReviewDecision {
  ruleId: string
  approvers: SubjectMatcher
  approvals: number
  ttlSeconds: number
  scope: ReviewScope
}

/**
 * A value an allowed statement stores whose source column the built-in rule judged by its name
 * only. The name may be a view's column that derives from a masked one, which only the target's
 * catalog can tell: the engine looks before forwarding (`judgeStoredViewColumns`).
 */
export interface StoredValue {
  from: ColumnRef
  /** The rule that blocks it if `from` derives from a masked column: no-laundering, or masked-ddl for a view. */
  ruleId: BuiltinRuleId
  /** The refusal's words: the command, and where the value goes. */
  command: string
  into: string
}

export interface OperationDecision {
  effect: 'allow' | 'block' | 'review'
  ruleId: string
  message: string
  /** Index into operation.statements of the statement that caused a block or review (absent for HTTP). */
  statement?: number
  review?: ReviewDecision
  mask: MaskPlan
  /** Allow or review: stored values a built-in rule that applies still has to check through views. */
  stored?: StoredValue[]
}
