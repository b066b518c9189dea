// What taint analysis says about a statement's outputs, for both SQL dialects (pg-taint.ts and
// mysql-taint.ts): each output column and the masked column it derives from, if any. The engines
// map result positions to these items with `outputAt`.

export interface OutputColumn {
  name: string
  /** The mask pattern a value of this column derives from, if any. */
  source?: string
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
