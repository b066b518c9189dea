// Results of a benchmark run: medians, the Markdown table, the JSON file and the SVG chart of ratios.

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)))
  return s[rank - 1]
}

export interface CaseResult {
  id: string
  title: string
  /** What the target compares, e.g. "TPS, hoop / relay chain". */
  metric: string
  /** The figure compared with the target. */
  value: number
  unit: string
  /** The issue's target; none for a row that only decomposes another (e.g. allow-only). */
  target?: {op: '>=' | '<='; value: number}
  met?: boolean
  /** The raw side-by-side figures (medians) and per-run samples. */
  detail: Record<string, unknown>
  /** Human summary of the raw figures for the table. */
  summary: string
  /** Ratio figures are drawn on the chart as value / target. */
  ratio: boolean
}

export function judge(value: number, target: {op: '>=' | '<='; value: number}): boolean {
  return target.op === '>=' ? value >= target.value : value <= target.value
}

function fmt(n: number, unit: string): string {
  if (!Number.isFinite(n)) return 'n/a'
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2
  return `${n.toFixed(digits)}${unit ? ' ' + unit : ''}`
}

export function markdownTable(results: CaseResult[]): string {
  const lines = ['| case | metric | figure | target | met | side by side (medians) |', '|---|---|---|---|---|---|']
  for (const r of results) {
    const target = r.target ? `${r.target.op} ${r.target.value}${r.unit ? ' ' + r.unit : ''}` : '-'
    const met = r.met === undefined ? '-' : r.met ? 'yes' : '**no**'
    lines.push(`| ${r.title} | ${r.metric} | ${fmt(r.value, r.unit)} | ${target} | ${met} | ${r.summary} |`)
  }
  return lines.join('\n')
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/**
 * A horizontal bar per case that has a target: the figure as a fraction of its target, so every case reads the same
 * way (1.0 = exactly on target; for "<=" targets the bar is target / value, so longer is better).
 */
export function svgChart(all: CaseResult[], title: string): string {
  const results = all.filter((r): r is CaseResult & {target: {op: '>=' | '<='; value: number}} => r.target !== undefined)
  const rowH = 34
  const left = 330
  const width = 820
  const barMax = width - left - 110
  const top = 50
  const height = top + results.length * rowH + 40
  const maxScale = 2
  const x1 = left + barMax / maxScale
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="40" fill="#555">bar = figure relative to its target (right of the line = target met); scale 0..${maxScale}x</text>`,
  ]
  results.forEach((r, i) => {
    const y = top + i * rowH
    const score = r.target.op === '>=' ? r.value / r.target.value : r.value === 0 ? maxScale : r.target.value / r.value
    const w = Math.max(1, Math.min(maxScale, Number.isFinite(score) ? score : 0) * (barMax / maxScale))
    parts.push(`<text x="10" y="${y + 20}">${esc(r.title)}</text>`)
    parts.push(`<rect x="${left}" y="${y + 6}" width="${w.toFixed(1)}" height="20" fill="${r.met ? '#2e8b57' : '#c0392b'}"/>`)
    parts.push(`<text x="${left + w + 6}" y="${y + 20}">${esc(`${fmt(r.value, r.unit)} (${r.target.op} ${r.target.value})`)}</text>`)
  })
  parts.push(`<line x1="${x1}" y1="${top}" x2="${x1}" y2="${top + results.length * rowH}" stroke="#000" stroke-dasharray="4 3"/>`)
  parts.push(`<text x="${x1 - 20}" y="${top + results.length * rowH + 16}">target</text>`)
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
