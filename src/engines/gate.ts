// The statement gate every engine passes each statement (SQL text, or an HTTP request) through:
//
//   judge  -> policy decides (allow with a mask plan / block / review); reviews go to approvals;
//             the engine then checks stored values through views (refuseStoredFromViews)
//   admit  -> an allowed statement's audit record takes its place in the log (fail closed)
//   finish -> the result event (rows, bytes, error, masked cells) rides with the next group commit
//   refuse -> a blocked or unapproved statement is counted, recorded and audited
//
// When the record must be durable is the audit mode (docs/audit.md, "Writing"):
//   hold (default) -> "no result without a record": the statement is forwarded as soon as its
//     record has its place in the chain, and the engine holds every byte of the response until
//     the record is durable (`untilDurable`, awaited by each engine's server -> client pump). If
//     the record then fails, the response never leaves: the session ends with AUDIT_UNAVAILABLE.
//   strict -> "no execution without a record": the record is durable before the statement is
//     forwarded, and a failed record refuses the statement (the session stays usable).
//
// Engines keep only what is protocol-specific (how to forward, how to answer a refusal on the
// wire). Whatever fails inside the gate fails closed: a judge error blocks, an audit error refuses.
// `policyHooks` is the gateway's decider; tests hand the gate a table of verdicts instead.
import {events, policyVersion, type AuditWriter, type SessionRecorder} from '../audit/index.js'
import type {ApprovalResolver} from '../approvals/resolver.js'
import type {Identity} from '../identity/types.js'
import {addCount, type MaskCounts, type MaskPlan} from '../masking/types.js'
import {judgeOperation, judgeStoredViewColumns, type ConnectionRef, type MaskPlan as PolicyMaskPlan, type Operation, type Policy, type StoredValue} from '../policy/index.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'

export type {MaskPlan}

/** The engine-side mask plan: column patterns for SQL, JSON field paths for HTTP bodies. */
export type EngineMaskPlan = MaskPlan & {jsonPaths?: string[]}

export type Verdict =
  | {effect: 'allow'; ruleId: string; mask: EngineMaskPlan; approvalId?: string; stored?: StoredValue[]}
  | {effect: 'block'; ruleId: string; message: string}
  | {effect: 'review'; ruleId: string; message: string; approvalId?: string}

export type Refusal = Exclude<Verdict, {effect: 'allow'}>

/** What came back for one statement, as the client saw it (after masking). */
export interface Outcome {
  rows: number
  bytes: number
  error?: string
  masked: MaskCounts
}

/** One judged statement: the text an approval binds to and the audit records, and its verdict. */
export interface Judged {
  readonly text: string
  readonly verdict: Verdict
}

/** What every engine reports when its session ends. */
export interface SessionResult {
  /** Statements (or HTTP requests) judged. */
  statements: number
  /** Statements refused: blocked, awaiting review, or not recordable. */
  blocked: number
  maskingReport: MaskCounts
  bytesUp: number
  bytesDown: number
  startupUser?: string
  database?: string
}

export function newSessionResult(): SessionResult {
  return {statements: 0, blocked: 0, maskingReport: {}, bytesUp: 0, bytesDown: 0}
}

/** The deciders behind the gate. Each is called by the gate only, which handles their failures. */
export interface GateHooks<Op = string> {
  /** Judge one operation. */
  judge(op: Op): Promise<Verdict>
  /** The text an approval binds to and the audit records (default: the operation itself). */
  describe?(op: Op): string
  /**
   * Places an allowed operation's audit record in the log before it is forwarded: synchronously,
   * so records placed later commit after it. Resolves once the record is durable; a rejection
   * means it never will be (strict mode then refuses the operation, hold mode withholds its
   * response); a throw, that it cannot be placed (the operation is refused). In hold mode the
   * record may commit while the operation is on its way.
   */
  beforeForward(s: Judged, mode: AuditMode): Promise<void>
  /** After the operation completed. */
  afterStatement(s: Judged & Outcome): void
  /** When an operation was refused, after the client got its error. */
  refused(s: Judged & {verdict: Refusal}): void
  /** For the session recording: what the client saw (already masked). */
  record?(direction: 'client' | 'server', summary: string): void
}

/** The client-visible refusal text, the same words for every engine. */
export function refusalMessage(r: Refusal): string {
  if (r.ruleId === AUDIT_UNAVAILABLE_RULE) return `hoop: AUDIT_UNAVAILABLE: ${r.message}`
  if (r.effect === 'block') return `hoop: blocked by policy rule ${r.ruleId}: ${r.message}`
  let m = `hoop: review required by policy rule ${r.ruleId}: ${r.message}`
  if (r.approvalId && !r.message.includes(`hoop approvals approve ${r.approvalId}`)) {
    m += ` (approval ${r.approvalId}; an approver runs: hoop approvals approve ${r.approvalId})`
  }
  return m
}

/** Rule id of a refusal the gate makes itself because the policy decision failed. */
export const JUDGE_ERROR_RULE = 'hoop.judge-error'
/** Rule id of a refusal an engine makes because a statement's plan is unknown to it (so it cannot be judged or masked). */
export const UNKNOWN_STATEMENT_RULE = 'hoop.unknown-statement'
/** Rule id of a refusal the gate makes itself because the statement's audit record failed. */
export const AUDIT_UNAVAILABLE_RULE = 'hoop.audit-unavailable'

/** When a statement's record must be durable: before its response leaves (hold) or before it is forwarded (strict). */
export type AuditMode = 'hold' | 'strict'

/** Why a session ends in hold mode when an admitted statement's record failed to commit. */
const WITHHELD: Refusal = {
  effect: 'block',
  ruleId: AUDIT_UNAVAILABLE_RULE,
  message: 'the audit record of a statement already sent to the target could not be written, so its response is withheld and the session ends (fail closed); the audit store must recover first',
}

/** Ends a session whose response is withheld: the engine answers it in its protocol, then closes. */
export class ResponseWithheld extends HoopError {
  constructor() {
    super('AUDIT_UNAVAILABLE', refusalMessage(WITHHELD))
  }
}

/**
 * The built-in rules' look through views, before an allowed statement is forwarded. Policy judged
 * what the statement stores by the names it reads (`stored`: the values it let pass); a view's
 * column may derive from a masked one under another name, which only the target's catalog tells.
 * `viewColumns` is the engine's catalog: the columns of the views among these relations that
 * derive from a masked column (every column of a view it cannot analyse, of every relation when
 * the look-up fails). The refusal, or undefined; a failure refuses (fail closed).
 */
export async function refuseStoredFromViews(v: Verdict, viewColumns: (rels: Array<{schema?: string; table: string}>, mask: EngineMaskPlan) => Promise<string[]>, log: Logger): Promise<Refusal | undefined> {
  if (v.effect !== 'allow' || !v.stored?.length) return undefined
  const rels = new Map<string, {schema?: string; table: string}>()
  // A source with no table (or every table of a schema) was judged as masked by policy already.
  for (const {from} of v.stored) if (from.table !== undefined && from.table !== '*') rels.set(JSON.stringify([from.schema, from.table]), {...(from.schema === undefined ? {} : {schema: from.schema}), table: from.table})
  if (rels.size === 0) return undefined
  try {
    const hit = judgeStoredViewColumns(v.stored, await viewColumns([...rels.values()], v.mask))
    return hit ? {effect: 'block', ...hit} : undefined
  } catch (err) {
    log.error('view look-up for a storing statement failed; refusing it', {error: errorMessage(err)})
    const {ruleId} = v.stored[0]
    return {effect: 'block', ruleId, message: `the statement stores values read from relations that could not be checked for views over masked columns (fail closed; rule ${ruleId})`}
  }
}

export class StatementGate<Op = string> {
  /** Counters the engine adds its byte totals to; returned as the session's result. */
  readonly result: SessionResult = newSessionResult()
  /** Hold mode: settles once every record admitted so far has (rejects when one failed); unset when all are durable. */
  private held: Promise<void> | undefined
  /** Hold mode: an admitted record failed, so no response may leave any more. */
  private failed = false

  constructor(
    private readonly hooks: GateHooks<Op>,
    private readonly log: Logger,
    readonly mode: AuditMode = 'hold',
  ) {}

  /**
   * Judges one operation. Never throws: a failing decision is a block (fail closed). `recorded`
   * is the text the audit and recording keep when it differs from the operation's description
   * (HTTP records the target with secrets in its query redacted).
   */
  async judge(op: Op, recorded?: string): Promise<Judged> {
    this.result.statements++
    let text: string
    let verdict: Verdict
    try {
      text = recorded ?? (this.hooks.describe ? this.hooks.describe(op) : String(op))
    } catch (err) {
      this.log.error('statement description failed; refusing it', {error: errorMessage(err)})
      return {text: '<undescribable>', verdict: {effect: 'block', ruleId: JUDGE_ERROR_RULE, message: 'the request could not be judged (fail closed)'}}
    }
    try {
      verdict = await this.hooks.judge(op)
    } catch (err) {
      this.log.error('policy decision failed; refusing the statement', {error: errorMessage(err)})
      verdict = {effect: 'block', ruleId: JUDGE_ERROR_RULE, message: 'the policy decision failed (fail closed)'}
    }
    return {text, verdict}
  }

  /**
   * For an allowed statement, places its audit record before it is forwarded (strict mode: waits
   * until it is durable). Returns the refusal when it must not run: its own block/review verdict,
   * or a block when the record cannot be written.
   */
  async admit(s: Judged): Promise<Refusal | undefined> {
    const v = s.verdict
    if (v.effect !== 'allow') return v
    try {
      if (this.failed) throw new ResponseWithheld()
      const durable = this.hooks.beforeForward(s, this.mode)
      if (this.mode === 'strict') await durable
      else this.hold(durable)
      return undefined
    } catch (err) {
      this.log.error('audit record failed; refusing the statement', {error: errorMessage(err)})
      // Not the allow rule's fault: name the cause, as docs/errors.md does (exit 24 in the CLI).
      return {effect: 'block', ruleId: AUDIT_UNAVAILABLE_RULE, message: 'the audit record could not be written, so the statement was not run (fail closed); the audit store must recover first'}
    }
  }

  /**
   * Hold mode: what the engine awaits before it writes output to the client. Undefined (nothing to
   * wait for, nothing allocated) when every admitted statement's record is durable; otherwise a
   * promise that resolves once they are, or rejects with ResponseWithheld when one failed.
   * Output that arrived before this call belongs to statements admitted before it, so it is covered.
   */
  untilDurable(): Promise<void> | undefined {
    // A failed chain stays in place (only success clears it), so a failure is never forgotten.
    return this.held?.catch(() => {
      throw new ResponseWithheld()
    })
  }

  /**
   * Chains a record's durability behind the ones admitted before it, so the chain resolves only
   * when all of them are durable, whatever order their commits settle in; any failure rejects it.
   */
  private hold(durable: Promise<void>): void {
    const prev = this.held
    const all = prev === undefined ? durable : Promise.all([prev, durable]).then(noop)
    this.held = all
    all.then(
      () => {
        if (this.held === all) this.held = undefined
      },
      (err: unknown) => {
        if (!this.failed) this.log.error('audit record of a forwarded statement failed; withholding its response and ending the session', {error: errorMessage(err)})
        this.failed = true
      },
    )
  }

  /**
   * The statement completed (or failed at the target): its result event and masking counts. Hold
   * mode: the result is reported once the records admitted so far are durable, the moment its
   * response may leave; a withheld response gets no result event (the client saw no result).
   */
  finish(s: Judged, outcome: Outcome): void {
    for (const [k, n] of Object.entries(outcome.masked)) addCount(this.result.maskingReport, k, n)
    const held = this.held
    if (held) held.then(() => this.reportResult(s, outcome), noop)
    else this.reportResult(s, outcome)
  }

  private reportResult(s: Judged, outcome: Outcome): void {
    try {
      this.hooks.afterStatement({...s, ...outcome})
    } catch (err) {
      this.log.error('statement result hook failed', {error: errorMessage(err)})
    }
  }

  /** The statement was refused and the client has its error. */
  refuse(s: Judged, refusal: Refusal): void {
    this.result.blocked++
    try {
      this.hooks.refused({text: s.text, verdict: refusal})
    } catch (err) {
      this.log.error('refusal hook failed', {error: errorMessage(err)})
    }
  }

  get recording(): boolean {
    return this.hooks.record !== undefined
  }

  /** Adds a line to the session recording; a recorder failure never ends the session. */
  record(direction: 'client' | 'server', summary: string): void {
    if (!this.hooks.record) return
    try {
      this.hooks.record(direction, summary)
    } catch (err) {
      this.log.warn('session recording failed', {error: errorMessage(err)})
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The gateway's deciders: policy, approvals and the audit log.

export interface PolicyHookOptions<Op> {
  session: string
  identity: Identity
  connection: ConnectionRef
  policy: () => Policy
  /** Turns what the engine hands over (SQL text, an HTTP request) into policy's neutral Operation. */
  analyze: (op: Op) => Operation
  /**
   * The exact text an approval is bound to and the audit records: the SQL itself, or for HTTP the
   * method, target and request fingerprint.
   */
  describe: (op: Op) => string
  audit?: AuditWriter
  approvals?: ApprovalResolver
  recorder?: SessionRecorder
  /**
   * What of the engine's own exchange summaries goes into the session recording: `all` (HTTP heads
   * and masked bodies) or `results` (column names and the first masked rows of each SQL result).
   */
  recordExchange?: 'all' | 'results'
  logger: Logger
  protocol: string
  /** The client's id for its run (OPEN meta `request`), passed to approvals so it can ask which it used. */
  clientRequest?: string
}

/** Policy's mask plan in the engines' shape; `fields` (JSON paths) become the HTTP engine's `jsonPaths`. */
export function toEngineMaskPlan(plan: PolicyMaskPlan, engine: 'sql' | 'http' = 'sql'): EngineMaskPlan {
  // Database column patterns mean nothing to an HTTP body; JSON field paths mean nothing to SQL.
  if (engine === 'http') return {columns: [], entities: [...plan.entities], ruleIds: [...plan.ruleIds], jsonPaths: [...plan.fields]}
  return {columns: plan.columns.map((c) => c.text), entities: [...plan.entities], ruleIds: [...plan.ruleIds]}
}

export function policyHooks<Op = string>(o: PolicyHookOptions<Op>): GateHooks<Op> {
  let counter = 0
  // The statement id ties the before/after/masking events of one statement together.
  const ids = new WeakMap<Verdict, string>()
  // The version of the policy that made each decision.
  const versions = new WeakMap<Verdict, string>()
  const append = (e: Parameters<AuditWriter['append']>[0]) => {
    // Nobody waits on these (results, masking counts, refusals): they ride with the next group commit.
    o.audit?.append(e, {defer: true}).catch((err) => o.logger.error('audit append failed', {error: errorMessage(err)}))
  }
  /** The statement's audit event: what the target saw (or would have), the decision and its rule. */
  const statementEvent = (text: string, verdict: Verdict) =>
    events.statement({
      session: o.session,
      identity: o.identity,
      connection: o.connection.name,
      statementId: ids.get(verdict) ?? `${o.session}.${++counter}`,
      text,
      decision: verdict.effect,
      ruleId: verdict.ruleId,
      protocol: o.protocol,
      reason: verdict.effect === 'allow' ? undefined : verdict.message,
      approvalId: verdict.effect === 'allow' ? verdict.approvalId : undefined,
      // A refusal the engine made itself (an unknown prepared statement, a value laundered through
      // a view) was not judged here: it names the policy in force, which it was refused under.
      policyVersion: versions.get(verdict) ?? versionInForce(),
    })
  /** The version of the policy in force; never lets a record fail (undefined if it cannot be told). */
  const versionInForce = (): string | undefined => {
    try {
      return policyVersion(o.policy())
    } catch {
      return undefined
    }
  }

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
    ...(record ? {record} : {}),
    describe: o.describe,
    async judge(op: Op): Promise<Verdict> {
      const operation = o.analyze(op)
      const policy = o.policy()
      const d = judgeOperation(policy, o.identity, o.connection, operation)
      let verdict: Verdict
      const kind = operation.engine === 'http' ? 'http' : 'sql'
      const stored = d.stored ? {stored: d.stored} : {}
      if (d.effect === 'allow') verdict = {effect: 'allow', ruleId: d.ruleId, mask: toEngineMaskPlan(d.mask, kind), ...stored}
      else if (d.effect === 'block') verdict = {effect: 'block', ruleId: d.ruleId, message: d.message}
      else if (!o.approvals || !d.review) {
        verdict = {effect: 'block', ruleId: d.ruleId, message: `${d.message} (approvals are not available on this gateway)`}
      } else {
        const r = await o.approvals.resolve({identity: o.identity, connection: o.connection.name, statement: o.describe(op), review: d.review, session: o.session, clientRequest: o.clientRequest})
        verdict =
          r.status === 'approved'
            ? {effect: 'allow', ruleId: d.ruleId, mask: toEngineMaskPlan(d.mask, kind), approvalId: r.approvalId, ...stored}
            : {effect: 'review', ruleId: d.ruleId, message: r.message, approvalId: r.approvalId}
      }
      ids.set(verdict, `${o.session}.${++counter}`)
      versions.set(verdict, policyVersion(policy))
      return verdict
    },
    beforeForward({text, verdict}, mode): Promise<void> {
      o.recorder?.record('client', 'statement', text)
      const audit = o.audit
      if (!audit) return Promise.resolve()
      const unavailable = (err: unknown) => {
        o.logger.error('audit write failed', {error: errorMessage(err)})
        return new HoopError('AUDIT_UNAVAILABLE', 'hoop: the audit log cannot be written')
      }
      // Hold forwards before the commit: a log known to be closed or broken refuses it here, first.
      if (mode === 'hold' && !audit.accepts()) throw unavailable('the audit log is closed or its store changed')
      return audit.append(statementEvent(text, verdict), {overlap: mode === 'hold'}).then(noop, (err: unknown) => {
        throw unavailable(err)
      })
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
    refused({text, verdict}): void {
      o.recorder?.record('client', 'statement', text)
      o.recorder?.record('server', 'error', {refused: verdict.effect, rule: verdict.ruleId})
      append(statementEvent(text, verdict))
    },
  }
}

function noop(): void {}

function splitKey(key: string): [string, string] {
  const i = key.indexOf(':')
  return i < 0 ? ['column', key] : [key.slice(0, i), key.slice(i + 1)]
}
