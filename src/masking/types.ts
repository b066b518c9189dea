// What to mask in a response. Policy produces it (src/policy), the gateway adapts it to this shape,
// and the protocol engines apply it. Pure data.

/** Entities the value detectors know. */
export type MaskEntity = 'email' | 'phone' | 'card' | 'iban' | 'ssn' | 'jwt' | 'api_key'

export const ALL_ENTITIES: readonly MaskEntity[] = ['email', 'phone', 'card', 'iban', 'ssn', 'jwt', 'api_key']

export interface MaskPlan {
  /**
   * Column patterns, dot-separated, `*` matches one whole segment:
   * "public.customers.email" (schema.table.column), "customers.email" (any schema), "*.ssn" or
   * "ssn" (any table).
   */
  columns: string[]
  /** Value detectors to run on every text cell, whatever its origin. */
  entities: MaskEntity[]
  /** Rule ids that contributed to the plan (for the masking report and audit). */
  ruleIds: string[]
}

export const EMPTY_PLAN: MaskPlan = {columns: [], entities: [], ruleIds: []}

export function planIsEmpty(plan: MaskPlan | undefined): boolean {
  return !plan || (plan.columns.length === 0 && plan.entities.length === 0)
}

/** Counts of masked cells, keyed by `column:<schema.table.column>`, `derived:<source>` or `entity:<name>`. */
export type MaskCounts = Record<string, number>

export function addCount(counts: MaskCounts, key: string, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n
}
