// The in-process masking case alone (bench/lib/inproc-cases.ts caseMasking), for profiling
// (`node --cpu-prof --import tsx bench/masking-cpu.ts`) and for comparing two builds side by side;
// `mysql` runs the same customers-shaped rows through the MySQL engine's row masker (text
// protocol) and `copy` through COPY TO's text-format masker (100 rows per CopyData), which the
// bench suite does not measure.
// Usage: node --import tsx bench/masking-cpu.ts [ROOT=.] [SECONDS=5] [pg|mysql|copy]
// ROOT may be another checkout (same bench case) to compare builds interleaved on a shared machine.
import {resolve} from 'node:path'
import {customerCells} from './lib/inproc-cases.js'

const root = resolve(process.argv[2] ?? '.')
const seconds = Number(process.argv[3] ?? 5)
const engine = process.argv[4] ?? 'pg'

if (engine === 'pg') {
  const {caseMasking} = await import(`${root}/bench/lib/inproc-cases.ts`)
  const r = await caseMasking({seconds, log: () => {}})
  console.log(`${root} pg: ${r.value.toFixed(1)} MB per CPU-second (${r.detail.wallMbps.toFixed(1)} MB/s wall, ${r.detail.passes} passes)`)
} else if (engine === 'copy') {
  const {CopyMasker} = await import(`${root}/src/masking/result.ts`)
  const {ALL_ENTITIES} = await import(`${root}/src/masking/types.ts`)
  const keys = [undefined, undefined, 'column:public.customers.email', 'column:public.customers.phone', 'column:public.customers.card_number', 'column:public.customers.ssn', undefined]
  const masker = new CopyMasker({format: 'text', delimiter: '\t', maskKeys: keys, entities: ALL_ENTITIES, counts: {}})
  const payloads = Array.from({length: 50}, (_, p) => Buffer.from(Array.from({length: 100}, (_, i) => customerCells(p * 100 + i).join('\t') + '\n').join('')))
  report('copy', payloads, (b) => masker.maskPayload(b))
} else {
  const {ResultMasking} = await import(`${root}/src/engines/mysql/masking.ts`)
  const {TYPE} = await import(`${root}/src/protocol/mysql/constants.ts`)
  const {encodeTextRow} = await import(`${root}/src/protocol/mysql/rows.ts`)
  const {ALL_ENTITIES} = await import(`${root}/src/masking/types.ts`)
  const col = (name: string, type: number) => ({catalog: 'def', schema: 'test', table: 'customers', orgTable: 'customers', name, orgName: name, charset: 45, length: 100, type, flags: 0, decimals: 0})
  const defs = [col('id', TYPE.LONG), col('name', TYPE.VAR_STRING), col('email', TYPE.VAR_STRING), col('phone', TYPE.VAR_STRING), col('card_number', TYPE.VAR_STRING), col('ssn', TYPE.VAR_STRING), col('note', TYPE.VAR_STRING)]
  const mask = {columns: ['customers.email', 'customers.phone', 'customers.card_number', '*.ssn'], entities: ALL_ENTITIES, ruleIds: ['bench']}
  const fn = new ResultMasking().rowMasker(defs, {text: 'SELECT * FROM customers', verdict: {effect: 'allow', ruleId: 'bench', mask}}, 0, false, {})
  // The same rows as the pg case (this checkout's, so both builds mask the same data).
  const rows: Buffer[] = Array.from({length: 5000}, (_, i) => encodeTextRow(customerCells(i)))
  report('mysql', rows, fn)
}

/** Median MB of `inputs` per CPU-second of this thread over `seconds` of passes. */
function report(name: string, inputs: Buffer[], mask: (b: Buffer) => Buffer): void {
  const bytes = inputs.reduce((s, r) => s + r.length, 0)
  const rates: number[] = []
  let sink = 0
  const until = performance.now() + seconds * 1000
  while (performance.now() < until) {
    const c0 = process.cpuUsage()
    for (const r of inputs) sink += mask(r).length
    const c = process.cpuUsage(c0)
    rates.push(bytes / 1e6 / ((c.user + c.system) / 1e6))
  }
  if (sink === 0) throw new Error('masking produced nothing')
  rates.sort((a, b) => a - b)
  console.log(`${root} ${name}: ${rates[Math.floor(rates.length / 2)].toFixed(1)} MB per CPU-second (${rates.length} passes)`)
}
