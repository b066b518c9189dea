// The adapter between a protocol engine and the gateway's decision makers: policy judges each
// statement (parsed, never regex'd), approvals resolve reviews, and the audit log records every
// statement durably *before* it is forwarded (fail closed) and its outcome after.
import type {ApprovalResolver} from './approval-resolver.js'
import {events, type AuditLog, type SessionRecorder} from '../audit/index.js'
import type {Identity} from '../identity/types.js'
import type {MaskPlan as EngineMaskPlan} from '../masking/types.js'
import {judgeOperation, type ConnectionRef, type MaskPlan, type Operation, type Policy} from '../policy/index.js'
import {HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {EngineHooks, StatementVerdict} from './engine-types.js'

export interface StatementHookOptions<T> {
  session: string
  identity: Identity
  connection: ConnectionRef
  policy: () => Policy
  /** Turns what the engine hands over (SQL text, an HTTP request) into policy's neutral Operation. */
  analyze: (input: T) => Operation
  /**
   * The exact text an approval is bound to and the audit records: the SQL itself, or for HTTP the
   * method, target and request fingerprint.
   */
  describe: (input: T) => string
  /** Read-only grants block writes even without a guardrail rule. */
  audit?: AuditLog
  approvals?: ApprovalResolver
  recorder?: SessionRecorder
  /**
   * What of the engine's own exchange summaries goes into the session recording: `all` (HTTP heads
   * and masked bodies) or `results` (column names and the first masked rows of each SQL result).
   */
  recordExchange?: 'all' | 'results'
  logger: Logger
  protocol: string
}

export interface StatementStats {
  statements: number
  refused: number
}

/** Policy's mask plan in the engines' shape; `fields` (JSON paths) become the HTTP engine's `jsonPaths`. */
export function toEngineMaskPlan(plan: MaskPlan, engine: 'sql' | 'http' = 'sql'): EngineMaskPlan & {jsonPaths?: string[]} {
  // Database column patterns mean nothing to an HTTP body; JSON field paths mean nothing to SQL.
  if (engine === 'http') return {columns: [], entities: [...plan.entities], ruleIds: [...plan.ruleIds], jsonPaths: [...plan.fields]}
  return {columns: plan.columns.map((c) => c.text), entities: [...plan.entities], ruleIds: [...plan.ruleIds]}
}

export function statementHooks<T = string>(o: StatementHookOptions<T>): EngineHooks<T> & {stats: StatementStats} {
  const stats: StatementStats = {statements: 0, refused: 0}
  let counter = 0
  // The statement id ties the before/after/masking events of one statement together.
  const ids = new WeakMap<StatementVerdict, string>()
  const append = (e: Parameters<AuditLog['append']>[0]) => {
    // Nobody waits on these (results, masking counts, refusals): they ride with the next group commit.
    o.audit?.append(e, {defer: true}).catch((err) => o.logger.error('audit append failed', {error: String(err)}))
  }
  /** The statement's audit event: what the target saw (or would have), the decision and its rule. */
  const statementEvent = (sql: string, verdict: StatementVerdict) =>
    events.statement({
      session: o.session,
      identity: o.identity,
      connection: o.connection.name,
      statementId: ids.get(verdict) ?? `${o.session}.${++counter}`,
      text: sql,
      decision: verdict.effect,
      ruleId: verdict.ruleId,
      protocol: o.protocol,
      reason: verdict.effect === 'allow' ? undefined : verdict.message,
    })

  const recorder = o.recorder
  const record = !recorder
    ? undefined
    : o.recordExchange === 'all'
      ? (direction: 'client' | 'server', summary: string) => recorder.record(direction, direction === 'client' ? 'request' : 'response', summary)
      : o.recordExchange === 'results'
        ? (direction: 'client' | 'server', summary: string) => {
            if (direction === 'server' && (summary.startsWith('DataRow ') || summary.startsWith('RowDescription '))) recorder.record('server', 'result', summary)
          }
        : undefined
  return {
    stats,
    ...(record ? {record} : {}),
    async judge(input: T): Promise<StatementVerdict> {
      const op = o.analyze(input)
      const sql = o.describe(input)
      const d = judgeOperation(o.policy(), o.identity, o.connection, op)
      let verdict: StatementVerdict
      const kind = op.engine === 'http' ? 'http' : 'sql'
      if (d.effect === 'allow') verdict = {effect: 'allow', ruleId: d.ruleId, mask: toEngineMaskPlan(d.mask, kind)}
      else if (d.effect === 'block') verdict = {effect: 'block', ruleId: d.ruleId, message: d.message}
      else if (!o.approvals || !d.review) {
        verdict = {effect: 'block', ruleId: d.ruleId, message: `${d.message} (approvals are not available on this gateway)`}
      } else {
        const r = await o.approvals.resolve({identity: o.identity, connection: o.connection.name, sql, review: d.review, session: o.session})
        verdict =
          r.status === 'approved'
            ? {effect: 'allow', ruleId: d.ruleId, mask: toEngineMaskPlan(d.mask, kind)}
            : {effect: 'review', ruleId: d.ruleId, message: r.message, approvalId: r.approvalId}
      }
      ids.set(verdict, `${o.session}.${++counter}`)
      return verdict
    },
    async beforeForward({sql, verdict}): Promise<void> {
      stats.statements++
      o.recorder?.record('client', 'statement', sql)
      if (!o.audit) return
      try {
        await o.audit.append(statementEvent(sql, verdict))
      } catch (err) {
        o.logger.error('audit write failed; refusing statement', {error: String(err)})
        throw new HoopError('INTERNAL', 'hoop: the audit log cannot be written, so the statement was not run')
      }
    },
    afterStatement({verdict, rows, bytes, error, masked}): void {
      const statementId = ids.get(verdict) ?? `${o.session}.?`
      o.recorder?.record('server', error ? 'error' : 'result', error ? {error} : {rows, bytes, masked})
      if (!o.audit) return
      append(events.statementResult({session: o.session, identity: o.identity, connection: o.connection.name, statementId, rows, bytes, error}))
      const fields = Object.entries(masked).map(([key, count]) => {
        const [type, name] = splitKey(key)
        return type === 'entity' ? {entity: name, count} : {column: name, count}
      })
      if (fields.length > 0) {
        const ruleId = verdict.effect === 'allow' ? verdict.mask.ruleIds.join(',') : undefined
        append(events.masking({session: o.session, identity: o.identity, connection: o.connection.name, statementId, ruleId, fields}))
      }
    },
    refused({sql, verdict}): void {
      stats.refused++
      o.recorder?.record('client', 'statement', sql)
      o.recorder?.record('server', 'error', {refused: verdict.effect, rule: verdict.ruleId})
      append(statementEvent(sql, verdict))
    },
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf(':')
  return i < 0 ? ['column', key] : [key.slice(0, i), key.slice(i + 1)]
}

