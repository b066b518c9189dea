// The in-process masking case alone (bench/lib/inproc-cases.ts caseMasking), for profiling
// (`node --cpu-prof --import tsx bench/masking-cpu.ts`) and for comparing two builds side by side.
// Usage: node --import tsx bench/masking-cpu.ts [ROOT=.] [SECONDS=5]
// ROOT may be another checkout (same bench case) to compare builds interleaved on a shared machine.
import {resolve} from 'node:path'

const root = resolve(process.argv[2] ?? '.')
const seconds = Number(process.argv[3] ?? 5)
const {caseMasking} = await import(`${root}/bench/lib/inproc-cases.ts`)
const r = await caseMasking({seconds, log: () => {}})
console.log(`${root}: ${r.value.toFixed(1)} MB per CPU-second (${r.detail.wallMbps.toFixed(1)} MB/s wall, ${r.detail.passes} passes)`)
