// What every protocol engine (PostgreSQL, MySQL, HTTP) asks of the gateway, and what it tells it.
// The engine judges nothing itself: the gateway's adapter turns policy, approvals and audit into
// these hooks, so the policy code stays protocol-neutral and the engines stay policy-free.
import type {MaskPlan} from '../masking/types.js'

export type {MaskPlan}

export type StatementVerdict =
  | {effect: 'allow'; ruleId: string; mask: MaskPlan}
  | {effect: 'block'; ruleId: string; message: string}
  | {effect: 'review'; ruleId: string; message: string; approvalId?: string}

export interface EngineHooks<Op = string> {
  /** Judge one operation (SQL text, or an HTTP request description). */
  judge(op: Op): Promise<StatementVerdict>
  /** Awaited before the operation is forwarded; a rejection refuses it (audit fails closed). */
  beforeForward(info: {sql: string; verdict: StatementVerdict}): Promise<void>
  /** After the operation completed: rows, bytes, error, masked cell counts. */
  afterStatement(info: {sql: string; verdict: StatementVerdict; rows: number; bytes: number; error?: string; masked: Record<string, number>}): void
  /** When an operation was refused (block/review), after the client got its error. */
  refused(info: {sql: string; verdict: StatementVerdict}): void
  /** For the session recording: what the client saw (already masked). */
  record?(direction: 'client' | 'server', summary: string): void
}
