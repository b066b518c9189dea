// Summarises V8 .cpuprofile files (from `npm run bench -- --cpu-prof DIR`): the functions with the
// most self time, and the same grouped by source file.
// Usage: node --import tsx bench/profile.ts DIR-or-FILE [top=30]
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'

interface Node {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  hitCount?: number
  children?: number[]
}
interface Profile {
  nodes: Node[]
  samples?: number[]
  timeDeltas?: number[]
  startTime: number
  endTime: number
}

function summarise(file: string, top: number): void {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  // Self time per node from samples and their time deltas (µs).
  const samples = p.samples ?? []
  const deltas = p.timeDeltas ?? []
  for (let i = 0; i < samples.length; i++) self.set(samples[i], (self.get(samples[i]) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const keyOf = (n: Node) =>
    `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist|src)\//, '$1/')}:${n.callFrame.lineNumber + 1}`
  // Inclusive time: each sample counts once for every distinct function on its stack.
  const incl = new Map<string, number>()
  for (const [id, us] of self) {
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = keyOf(byId.get(cur)!)
      if (!seen.has(k)) {
        seen.add(k)
        incl.set(k, (incl.get(k) ?? 0) + us)
      }
    }
  }
  const fn = new Map<string, number>()
  const files = new Map<string, number>()
  let total = 0
  for (const [id, us] of self) {
    const n = byId.get(id)!
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist|src)\//, '$1/')
    const name = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`
    fn.set(name, (fn.get(name) ?? 0) + us)
    files.set(url || n.callFrame.functionName, (files.get(url || n.callFrame.functionName) ?? 0) + us)
    total += us
  }
  const idle = fn.get('(idle) :0') ?? 0
  console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(((total - idle) / total) * 100).toFixed(0)}% busy`)
  const show = (m: Map<string, number>, title: string) => {
    console.log(`  ${title}`)
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      if (k.startsWith('(idle)')) continue
      process.stdout.write(`  ${((us / (total - idle)) * 100).toFixed(1).padStart(5)}%  ${k}\n`)
    }
  }
  show(fn, 'self time by function (% of busy time)')
  show(files, 'self time by file')
  const ours = new Map([...incl].filter(([k]) => / (src|dist)\//.test(k)))
  show(ours, 'inclusive time of hoop functions')
}

process.stdout.on('error', () => process.exit(0))
const target = process.argv[2]
if (!target) {
  console.error('usage: node --import tsx bench/profile.ts DIR-or-FILE [top]')
  process.exit(2)
}
const top = Number(process.argv[3] ?? 30)
const list = statSync(target).isDirectory() ? readdirSync(target).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(target, f)) : [target]
for (const f of list) summarise(f, top)
