// What taint analysis says about a statement's outputs, for both SQL dialects (pg-taint.ts and
// mysql-taint.ts): each output column and the masked column it derives from, if any. The engines
// map result positions to these items with `outputAt`. Also the flow mode both walks share.
import {ColumnMatcher, type ColumnName} from '../masking/columns.js'
import type {ColumnRef} from '../policy/types.js'

export interface OutputColumn {
  name: string
  /** The mask pattern a value of this column derives from, if any. */
  source?: string
  /** The value is exactly a whole row of this relation (row_to_json(t), ROW(t.*)), derived from nothing else. */
  row?: WholeRow
}

/** A whole-row value: as JSON (row_to_json, to_json, to_jsonb) or as a composite (`t`, ROW(t.*)). */
export interface WholeRow {
  form: 'json' | 'composite'
  rel: {schema?: string; table: string}
}
/** Output columns in order; `star` stands for an expansion of unknown width (`t.*` of a table). */
export type OutputItem = OutputColumn | {star: true; from?: {schema?: string; table: string}}

/**
 * The output item for result position `index` of `total` columns. With one star of unknown width
 * the columns before it map from the front and those after it from the back; inside the star, or
 * with several stars, the answer is unknown (undefined).
 */
export function outputAt(outputs: OutputItem[], index: number, total: number): OutputColumn | 'unknown' {
  const stars = outputs.filter((o) => 'star' in o).length
  if (stars === 0) return (outputs[index] as OutputColumn | undefined) ?? 'unknown'
  if (stars > 1) return 'unknown'
  const k = outputs.findIndex((o) => 'star' in o)
  if (index < k) return outputs[index] as OutputColumn
  const after = outputs.length - k - 1
  if (index >= total - after) return outputs[outputs.length - (total - index)] as OutputColumn
  return 'unknown'
}

// ---------------------------------------------------------------------------------------------
// Flow mode, shared by both dialects: the taint walk run with a matcher that matches every column,
// so that a value's "source" names every column it derives from (keys joined by SEP). Policy then
// matches those columns against the subject's mask (hoop.no-laundering) without the walk knowing it.

/** Separates column keys inside one flow-mode source. */
export const FLOW_SEP = '\n'

export function flowKey(c: ColumnName): string {
  return JSON.stringify([c.schema ?? null, c.table ?? null, c.column])
}

/** A column of unknown origin (what the walk cannot see): matches every mask. */
export const UNKNOWN_FLOW = flowKey({column: '*'})

/** Joins two flow-mode sources (their union). */
export function joinFlows(older: string | undefined, newer: string | undefined): string | undefined {
  if (!older) return newer
  if (!newer || older === newer) return older
  return `${older}${FLOW_SEP}${newer}`
}

/** The columns a flow-mode source names. Anything that is not a key counts as a column of unknown origin. */
export function flowRefs(source: string | undefined): ColumnRef[] {
  if (!source) return []
  const out: ColumnRef[] = []
  for (const k of new Set(source.split(FLOW_SEP))) {
    if (!k.startsWith('[')) {
      out.push({column: '*'})
      continue
    }
    const [schema, table, column] = JSON.parse(k) as [string | null, string | null, string]
    out.push({...(schema === null ? {} : {schema}), ...(table === null ? {} : {table}), column})
  }
  return out
}

/** Matches every column, naming it: see flow mode above. */
export class FlowMatcher extends ColumnMatcher {
  constructor() {
    super([])
  }

  override get empty(): boolean {
    return false
  }

  override match(c: ColumnName): string {
    return flowKey(c)
  }

  override coversTable(): boolean {
    return true
  }
}
