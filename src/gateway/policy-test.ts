// "May this subject run this statement (or send this request) on this connection?": the decision
// `hoop policy test` prints offline and the console's policy page asks the gateway. Statements are
// analysed as the engines analyse them (libpg-query, the MySQL analyser, the HTTP engine's request
// view) and judged by the same policy functions.
import type {Identity} from '../identity/types.js'
import {checkAccess, judgeOperation} from '../policy/evaluate.js'
import type {AccessDecision, HttpRequestInfo, Operation, OperationDecision, Policy} from '../policy/types.js'
import {removeDotSegments} from '../protocol/http/target.js'
import {HoopError} from '../shared/errors.js'
import {analyzeMysql} from '../sql/mysql-analyze.js'
import {analyzePostgres} from '../sql/pg-analyze.js'
import {loadPgParser} from '../sql/pg-parser.js'

/** The HTTP engine parses JSON request bodies up to this size for policy (larger ones are `too-large`). */
const HTTP_JSON_INSPECT_BYTES = 1024 * 1024

export interface PolicyTestResult {
  identity: Identity
  connection: {name: string; type: string}
  access: AccessDecision
  operation?: Operation
  decision?: OperationDecision
}

/** What to judge besides access: statement(s) for databases, or an HTTP request. */
export interface PolicyQuestion {
  sql?: string
  method?: string
  path?: string
  body?: string
}

export async function judgePolicy(policy: Policy, connection: {name: string; type: string}, identity: Identity, input: PolicyQuestion): Promise<PolicyTestResult> {
  const access = checkAccess(policy, identity, connection)
  const result: PolicyTestResult = {identity, connection, access}
  const isHttp = input.method !== undefined || input.path !== undefined || input.body !== undefined
  if (input.sql !== undefined && isHttp) throw new HoopError('INVALID_INPUT', 'give either --sql (databases) or --method/--path/--body (HTTP), not both')
  if (input.sql !== undefined) {
    if (connection.type === 'postgres') {
      await loadPgParser()
      result.operation = analyzePostgres(input.sql)
    } else if (connection.type === 'mysql') result.operation = analyzeMysql(input.sql)
    else throw new HoopError('INVALID_INPUT', `--sql is analyzed as PostgreSQL or MySQL; connection ${connection.name} is of type ${connection.type}`)
    result.decision = judgeOperation(policy, identity, connection, result.operation)
  } else if (isHttp) {
    if (connection.type !== 'http') throw new HoopError('INVALID_INPUT', `--method, --path and --body describe an HTTP request; connection ${connection.name} is of type ${connection.type} (use --type http)`)
    result.operation = {engine: 'http', statements: [], http: httpRequest(input)}
    result.decision = judgeOperation(policy, identity, connection, result.operation)
  }
  return result
}

/** The request as the HTTP engine would describe it to policy (path normalised, body parsed). */
export function httpRequest(input: Pick<PolicyQuestion, 'method' | 'path' | 'body'>): HttpRequestInfo {
  const method = (input.method ?? 'GET').toUpperCase()
  if (!/^[A-Z][A-Z_-]{0,31}$/.test(method)) throw new HoopError('INVALID_INPUT', `--method must be an HTTP method such as GET or DELETE (got "${input.method}")`)
  const raw = input.path ?? '/'
  if (!raw.startsWith('/')) throw new HoopError('INVALID_INPUT', `--path must start with "/" (got "${raw}")`)
  const q = raw.indexOf('?')
  const rawQuery = q < 0 ? '' : raw.slice(q + 1)
  // As the engine does: decode escapes of unreserved characters, then remove dot segments.
  const decoded = (q < 0 ? raw : raw.slice(0, q)).replace(/%([0-9A-Fa-f]{2})/g, (m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16))
    return /[A-Za-z0-9\-._~]/.test(ch) ? ch : m.toUpperCase()
  })
  const path = removeDotSegments(decoded)
  const query: Record<string, string[]> = {}
  for (const [k, v] of new URLSearchParams(rawQuery)) (query[k] ??= []).push(v)
  const req: HttpRequestInfo = {method, path, query, target: rawQuery ? `${path}?${rawQuery}` : path, bodyStatus: 'none'}
  if (input.body !== undefined) {
    req.contentType = 'application/json'
    if (Buffer.byteLength(input.body) > HTTP_JSON_INSPECT_BYTES) req.bodyStatus = 'too-large'
    else {
      try {
        req.body = JSON.parse(input.body) as unknown
        req.bodyStatus = 'json'
      } catch {
        req.bodyStatus = 'invalid-json'
      }
    }
  }
  return req
}

