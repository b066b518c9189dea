// A statement judge for the engine harnesses built from a real policy: the gateway's own decider
// (policyHooks in src/engines/gate.ts) over the real analyzers, with the per-session analyzer state
// the gateway keeps (prepared statements, MySQL user variables and sql_mode). `reset()` starts a
// new session's state; the suites run one client session per test. Also the suites' way to the
// target's state, around hoop (`pgAdminQuery`, `mysqlAdminQuery`): the oracle.
import mysql2 from 'mysql2/promise'
import pg from 'pg'
import {policyHooks, type Verdict} from '../../../src/engines/gate.js'
import type {Identity} from '../../../src/identity/types.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Statement} from '../../../src/policy/types.js'
import {analyzeMysql} from '../../../src/sql/mysql-analyze.js'
import {mysqlSessionOf, type MysqlSession} from '../../../src/sql/mysql-session.js'
import {analyzePostgres} from '../../../src/sql/pg-analyze.js'
import {silentLogger} from '../../../src/shared/log.js'

export interface PolicyJudge {
  judge(sql: string): Promise<Verdict>
  /** Verdicts given, in order, with the SQL they judged. */
  verdicts: Array<{sql: string; verdict: Verdict}>
  reset(): void
  /** The MySQL analyser's view of the current session (sql_mode, variables), for the engine's masking. */
  mysqlSession(): MysqlSession
}

export function policyJudge(engine: 'postgres' | 'mysql', policyYaml: string, identity: Identity): PolicyJudge {
  const policy = parsePolicy(policyYaml, 'guardrails.yaml')
  let prepared = new Map<string, Statement[]>()
  let variables = new Map<string, string>()
  const hooks = policyHooks<string>({
    session: 'guardrails',
    identity,
    connection: {name: 'db', type: engine},
    policy: () => policy,
    analyze: (sql) => (engine === 'postgres' ? analyzePostgres(sql, {prepared}) : analyzeMysql(sql, {prepared, variables})),
    describe: (sql) => sql,
    logger: silentLogger,
    protocol: engine,
  })
  const verdicts: PolicyJudge['verdicts'] = []
  return {
    verdicts,
    async judge(sql) {
      const verdict = await hooks.judge(sql)
      verdicts.push({sql, verdict})
      return verdict
    },
    reset() {
      prepared = new Map()
      variables = new Map()
      verdicts.length = 0
    },
    mysqlSession: () => mysqlSessionOf({variables}),
  }
}

export const analyst: Identity = {kind: 'user', subject: 'u-analyst', name: 'Ana', email: 'ana@example.com', groups: ['analysts']}

/** A service account whose allow rule waives hoop.no-laundering in the suites' policies. */
export const etl: Identity = {kind: 'service-account', subject: 'sa_etl', name: 'etl', groups: []}

/** Runs SQL on the PostgreSQL target directly (not through hoop), as its superuser. */
export async function pgAdminQuery<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const c = new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})
  await c.connect()
  try {
    return (await c.query(sql)).rows as T[]
  } finally {
    await c.end()
  }
}

/** Runs SQL (several statements allowed) on the MariaDB target directly (not through hoop), as root. */
export async function mysqlAdminQuery<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const c = await mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})
  try {
    const [rows] = await c.query(sql)
    return rows as T[]
  } finally {
    await c.end()
  }
}
