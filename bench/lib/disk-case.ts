// The disk's fdatasync latency where the gateways keep their data (the bench's temp dirs): what
// the default audit durability waits for before a statement's response may reach its client. With
// `c` clients each waiting for its own statement's record, no gateway can answer more than about
// c / (mean latency) statements per second on this disk, however fast everything else is; the case
// reports that ceiling for 8 clients, and the 1-client latency floor, beside the figures they bound.
import {closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {type CaseResult, median} from './report.js'

export async function caseFsyncLatency(o: {syncs: number; log: (s: string) => void}): Promise<CaseResult> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-bench-fsync-'))
  const fd = openSync(join(dir, 'wal'), 'w')
  const page = Buffer.alloc(4096, 7)
  const samples: number[] = []
  try {
    for (let i = 0; i < o.syncs; i++) {
      writeSync(fd, page)
      const t = process.hrtime.bigint()
      fdatasyncSync(fd)
      samples.push(Number(process.hrtime.bigint() - t) / 1000)
      // Let other processes run between syncs, as a gateway's group commits do.
      if (i % 10 === 9) await new Promise((r) => setImmediate(r))
    }
  } finally {
    closeSync(fd)
    rmSync(dir, {recursive: true, force: true})
  }
  const sorted = [...samples].sort((a, b) => a - b)
  const p50 = median(samples)
  const p90 = sorted[Math.floor(sorted.length * 0.9)]
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length
  o.log(`  fdatasync of a 4 KiB append: p50 ${p50.toFixed(0)} µs, p90 ${p90.toFixed(0)} µs, mean ${mean.toFixed(0)} µs (${o.syncs} syncs)`)
  return {
    id: 'fsync-latency',
    title: 'fdatasync of a 4 KiB append where the gateways keep their data',
    metric: 'µs, median',
    value: Math.round(p50),
    unit: 'µs',
    detail: {p50, p90, mean, syncs: o.syncs},
    // Throughput follows the mean wait, a single client's added latency the typical one.
    summary: `p90 ${p90.toFixed(0)} µs, mean ${mean.toFixed(0)} µs: the default durability answers at most ~${Math.round(8e6 / mean).toLocaleString('en-US')} statements/s to 8 clients and adds ~${p50.toFixed(0)} µs per statement for 1`,
    ratio: false,
  }
}
