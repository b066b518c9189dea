// The SQL analysers' state for one client session, shared by the gate's judge (policy's analysis)
// and the engine (masking's taint analysis): prepared statements, MySQL user variables and
// sql_mode, so that EXECUTE is judged as the statement it runs and masking reads text as policy
// did; and the session's parses, so that both analyses of a statement come from one parse.
import type {PgSessionOptions} from '../engines/postgres/session.js'
import type {Operation, Statement} from '../policy/index.js'
import {analyzeMysql} from '../sql/mysql-analyze.js'
import {mysqlSessionOf, type MysqlSession} from '../sql/mysql-session.js'
import {analyzePostgres} from '../sql/pg-analyze.js'
import {newPgParses, type PgParses} from '../sql/pg-parser.js'
import {forgetPrepared, rememberPrepared} from '../sql/prepared.js'

export interface PgAnalysis {
  /** The gate's analyser. */
  analyze(sql: string): Operation
  /** For the engine: named protocol Parse and Close (runPgSession's `prepared`). */
  prepared: NonNullable<PgSessionOptions['prepared']>
  /** For the engine's masking: the parses `analyze` made. */
  parses: PgParses
}

export function pgAnalysis(): PgAnalysis {
  const prepared = new Map<string, Statement[]>()
  const parses = newPgParses()
  // A named Parse is judged, then remembered as prepared: the judge's analysis serves both (used
  // once, since analysing again could differ: PREPARE and EXECUTE change the session's state).
  let last: {sql: string; op: Operation} | undefined
  const analyze = (sql: string): Operation => (last = {sql, op: analyzePostgres(sql, {prepared, parses})}).op
  const judged = (sql: string): Operation => {
    const op = last?.sql === sql ? last.op : analyze(sql)
    last = undefined
    return op
  }
  return {
    analyze,
    parses,
    // SQL EXECUTE may name a protocol-prepared statement: the analyser judges it as what it runs.
    prepared: {
      parsed: (name, sql) => rememberPrepared(prepared, name, judged(sql).statements),
      closed: (name) => forgetPrepared(prepared, name),
    },
  }
}

export interface MysqlAnalysis {
  analyze(sql: string): Operation
  /** For the engine's masking: the session view (sql_mode, variables, parses) `analyze` keeps. */
  sqlSession: MysqlSession
}

export function mysqlAnalysis(): MysqlAnalysis {
  const prepared = new Map<string, Statement[]>()
  const variables = new Map<string, string>()
  return {analyze: (sql) => analyzeMysql(sql, {prepared, variables}), sqlSession: mysqlSessionOf({variables})}
}
