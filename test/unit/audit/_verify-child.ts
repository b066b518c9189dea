// Runs verifyPackage in a process of its own, started with --expose-gc, and samples live memory
// (heap + buffers after a full collection) while it runs: what verify holds, not what it left
// for the collector. Prints {first, peak} as JSON. Used by strict.test.ts.
import {readFileSync} from 'node:fs'
import {verifyPackage} from '../../../src/audit/verify.js'

const gc = (globalThis as {gc?: () => void}).gc
if (!gc) throw new Error('run with --expose-gc')
const [file, keyFile] = process.argv.slice(2)
const live = () => {
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}
const base = live()
let peak = 0
const sampler = setInterval(() => (peak = Math.max(peak, live() - base)), 25)
const r = await verifyPackage(file, {publicKey: readFileSync(keyFile, 'utf8')})
clearInterval(sampler)
process.stdout.write(JSON.stringify({first: r.first, peak}))
