// PostgreSQL functions whose effect depends on a text argument, shared by statement analysis for
// policy (pg-analyze.ts) and taint analysis for masking (pg-taint.ts): functions that execute SQL
// given as text (query_to_xml, dblink, ...), functions that read a whole table, schema or database
// named by text (table_to_xml, ...), and functions that store a value somewhere the caller can read
// it back (set_config, lo_from_bytea, ...). Names are matched on their last part, lower-case, since
// `pg_catalog.query_to_xml` and `query_to_xml` are the same function.

type Node = Record<string, unknown>

function isRecord(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The last part of a function name, lower-case (`pg_catalog.Set_Config` -> `set_config`). */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1).toLowerCase()
}

/** The string value of a literal argument ('...', $$...$$, E'...', or one of those cast to a type), else undefined. */
export function stringLiteral(arg: unknown): string | undefined {
  if (!isRecord(arg)) return undefined
  if (isRecord(arg.TypeCast)) return stringLiteral(arg.TypeCast.arg)
  if (isRecord(arg.NamedArgExpr)) return stringLiteral(arg.NamedArgExpr.arg)
  if (isRecord(arg.A_Const)) {
    const sval = arg.A_Const.sval
    if (isRecord(sval)) return typeof sval.sval === 'string' ? sval.sval : '' // protobuf JSON omits ''
  }
  return undefined
}

/** A boolean literal argument (true/false, or a string/int PostgreSQL reads as one), else undefined. */
function isBooleanLiteral(arg: unknown): boolean {
  if (!isRecord(arg)) return false
  if (isRecord(arg.TypeCast)) return isBooleanLiteral(arg.TypeCast.arg)
  if (isRecord(arg.NamedArgExpr)) return isBooleanLiteral(arg.NamedArgExpr.arg)
  return isRecord(arg.A_Const) && isRecord(arg.A_Const.boolval)
}

/** Names (qualified) of functions of extensions that are only recognised with their schema. */
const QUALIFIED_SQL_TEXT: Record<string, (argc: number) => number | undefined> = {
  'cron.schedule': (n) => n - 1,
  'cron.schedule_in_database': () => 2,
  'cron.alter_job': () => 2,
}

/** Names PostgreSQL functions give their SQL-text parameter (for calls with named arguments). */
const SQL_TEXT_PARAMETERS = new Set(['query', 'sql', 'command', 'sqlquery', 'select'])

/**
 * Which argument of a call is SQL text the function executes, or undefined when it executes none;
 * -1 when it executes SQL text but which argument holds it cannot be told (named arguments that
 * name none of the usual parameters): callers treat that as SQL they cannot see. `args` are the
 * call's argument nodes. docs/policy.md lists the functions known here.
 */
export function sqlTextArgument(name: string, args: readonly unknown[]): number | undefined {
  const positional = sqlTextPosition(name, args)
  if (positional === undefined || !args.some((a) => isRecord(a) && isRecord(a.NamedArgExpr))) return positional
  const named = args.findIndex((a) => isRecord(a) && isRecord(a.NamedArgExpr) && SQL_TEXT_PARAMETERS.has(String(a.NamedArgExpr.name ?? '').toLowerCase()))
  return named >= 0 ? named : positional < args.length && !(isRecord(args[positional]) && isRecord((args[positional] as Node).NamedArgExpr)) ? positional : -1
}

function sqlTextPosition(name: string, args: readonly unknown[]): number | undefined {
  const lower = name.toLowerCase()
  const q = QUALIFIED_SQL_TEXT[lower]
  if (q) return q(args.length)
  const n = args.length
  switch (baseName(lower)) {
    case 'query_to_xml':
    case 'query_to_xmlschema':
    case 'query_to_xml_and_xmlschema':
    case 'ts_stat':
    case 'pg_background_launch':
      return n >= 1 ? 0 : undefined
    case 'ts_rewrite':
      return n === 2 ? 1 : undefined
    case 'dblink':
    case 'dblink_exec':
      // dblink(sql), dblink(sql, fail), dblink(conn, sql), dblink(conn, sql, fail)
      if (n === 1) return 0
      if (n === 2) return isBooleanLiteral(args[1]) ? 0 : 1
      return n >= 3 ? 1 : undefined
    case 'dblink_send_query':
      return n >= 2 ? 1 : undefined
    case 'dblink_open':
      // dblink_open(cursor, sql [, fail]), dblink_open(conn, cursor, sql [, fail])
      if (n === 2) return 1
      if (n === 3) return isBooleanLiteral(args[2]) ? 1 : 2
      return n >= 4 ? 2 : undefined
    default:
      return undefined
  }
}

/** What a function that reads whole relations named by text reads: a table, a schema, a database, or a cursor. */
export type RelationReader = 'table' | 'schema' | 'database' | 'cursor'

export function relationReader(name: string): RelationReader | undefined {
  const b = baseName(name)
  if (/^table_to_xml(schema|_and_xmlschema)?$/.test(b)) return 'table'
  if (/^schema_to_xml(schema|_and_xmlschema)?$/.test(b)) return 'schema'
  if (/^database_to_xml(schema|_and_xmlschema)?$/.test(b)) return 'database'
  if (/^cursor_to_xml(schema)?$/.test(b)) return 'cursor'
  return undefined
}

/**
 * A relation name as regclass input reads it: `public.t`, `"Odd"."T"`; unquoted parts fold to
 * lower case. Undefined when the text is not a (possibly qualified) name.
 */
export function regclassName(text: string): {schema?: string; table: string} | undefined {
  const parts: string[] = []
  let i = 0
  const s = text.trim()
  while (i <= s.length) {
    if (s[i] === '"') {
      let j = i + 1
      let part = ''
      for (;;) {
        if (j >= s.length) return undefined
        if (s[j] === '"') {
          if (s[j + 1] === '"') {
            part += '"'
            j += 2
            continue
          }
          break
        }
        part += s[j++]
      }
      parts.push(part)
      i = j + 1
    } else {
      const m = /^[^."\s]+/.exec(s.slice(i))
      if (!m) return undefined
      parts.push(m[0].toLowerCase())
      i += m[0].length
    }
    if (i >= s.length) break
    if (s[i] !== '.') return undefined
    i++
  }
  if (parts.length === 1) return {table: parts[0]}
  if (parts.length === 2) return {schema: parts[0], table: parts[1]}
  if (parts.length === 3) return {schema: parts[1], table: parts[2]}
  return undefined
}

/** Where a function stores a value the caller (or others) can read back; the argument positions that hold it. */
export interface StoringFunction {
  stores: 'setting' | 'large-object' | 'file' | 'sequence' | 'notification'
  /** Positions of the arguments whose value is stored. */
  values: number[]
}

const STORING: Record<string, StoringFunction> = {
  set_config: {stores: 'setting', values: [1]},
  lo_from_bytea: {stores: 'large-object', values: [1]},
  lo_put: {stores: 'large-object', values: [2]},
  lowrite: {stores: 'large-object', values: [1]},
  pg_file_write: {stores: 'file', values: [1]},
  setval: {stores: 'sequence', values: [1]},
  pg_notify: {stores: 'notification', values: [1]},
}

export function storingFunction(name: string): StoringFunction | undefined {
  return Object.hasOwn(STORING, baseName(name)) ? STORING[baseName(name)] : undefined
}

/** Statistics views and functions that expose sampled values of columns (most common values, histograms). */
const STATISTICS_RELATIONS = new Set(['pg_stats', 'pg_statistic', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic_ext_data'])
const STATISTICS_FUNCTIONS = new Set(['pg_mcv_list_items'])

export function isStatisticsRelation(table: string): boolean {
  return STATISTICS_RELATIONS.has(baseName(table))
}

export function isStatisticsFunction(name: string): boolean {
  return STATISTICS_FUNCTIONS.has(baseName(name))
}

/**
 * What an expression node runs that may be user code, as a catalog key: a function (aggregates
 * and procedures too) `function:<name>`, an operator `operator:<symbol>` (written, or implied by
 * `IN (SELECT ...)` and `CASE x WHEN`), or the type a cast makes `type:<name>` (a domain's CHECK or a user-defined cast function runs on the cast). Names
 * are kept as the parser gives them (unquoted ones already folded) and without their schema, so
 * the catalog answers for every schema. Undefined for any other node.
 */
export function routineKey(node: Node): string | undefined {
  if (isRecord(node.FuncCall)) return key('function', node.FuncCall.funcname)
  if (isRecord(node.A_Expr)) {
    const op = lastName(node.A_Expr.name)
    // BETWEEN, IN... are spelt as keywords; the operators they expand to are the named ones.
    return op !== undefined && /^[+\-*/<>=~!@#%^&|`?]+$/.test(op) ? `operator:${op}` : undefined
  }
  if (isRecord(node.TypeCast) && isRecord(node.TypeCast.typeName)) return key('type', node.TypeCast.typeName.names)
  // Operators looked up by name without being written as one: x IN (SELECT ...), CASE x WHEN y.
  if (isRecord(node.SubLink)) return node.SubLink.subLinkType === 'ANY_SUBLINK' && node.SubLink.operName === undefined ? 'operator:=' : key('operator', node.SubLink.operName)
  if (isRecord(node.CaseExpr) && node.CaseExpr.arg !== undefined) return 'operator:='
  return undefined
}

/**
 * The routine a statement creates, renames or moves (its key as `routineKey` gives it), so that
 * a later call in the session is not taken for a built-in of the same name while the catalog
 * connection cannot see the new one (created in the open transaction).
 */
export function definedRoutine(type: string, node: Node): string | undefined {
  const objname = (o: unknown) => (isRecord(o) && isRecord(o.ObjectWithArgs) ? o.ObjectWithArgs.objname : undefined)
  const routine = (kind: unknown) => ['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE', 'OBJECT_AGGREGATE'].includes(String(kind))
  switch (type) {
    case 'CreateFunctionStmt':
      return key('function', node.funcname)
    case 'DefineStmt':
      if (node.kind === 'OBJECT_OPERATOR') return key('operator', node.defnames)
      return key(node.kind === 'OBJECT_AGGREGATE' ? 'function' : 'type', node.defnames)
    case 'CreateDomainStmt':
      return key('type', node.domainname)
    case 'CreateCastStmt':
      return isRecord(node.targettype) ? key('type', node.targettype.names) : undefined
    case 'RenameStmt':
      return routine(node.renameType) && typeof node.newname === 'string' ? `function:${node.newname}` : undefined
    case 'AlterObjectSchemaStmt':
      return routine(node.objectType) ? key('function', objname(node.object)) : undefined
    default:
      return undefined
  }
}

function lastName(names: unknown): string | undefined {
  if (!Array.isArray(names) || names.length === 0) return undefined
  const last: unknown = names[names.length - 1]
  return isRecord(last) && isRecord(last.String) && typeof last.String.sval === 'string' ? last.String.sval : undefined
}

function key(kind: string, names: unknown): string | undefined {
  const name = lastName(names)
  return name === undefined ? undefined : `${kind}:${name}`
}
