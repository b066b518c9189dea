// `npm run bench [-- --quick] [-- --cpu-prof DIR] [-- --only id,id]`
//
// Starts PostgreSQL-side fixtures, a socat relay chain and the hoop processes (gateway, agent,
// `hoop connect`), runs every case side by side against direct PostgreSQL, the relay chain and
// hoop, prints a Markdown table of medians, and writes JSON + SVG under bench/results/.
// Quick mode (CI) uses small sizes and short runs; it reports missed targets but fails only when
// a case cannot run at all. See bench/README.md.
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {cpus, totalmem} from 'node:os'
import {errorMessage} from '../src/shared/errors.js'
import {caseAuditAppend, caseAuditVerify, caseMasking} from './lib/inproc-cases.js'
import {caseFsyncLatency} from './lib/disk-case.js'
import {caseAuditAppendPg, caseAuditSinkPg} from './lib/pg-audit-case.js'
import {caseCopy, caseManySessions, caseNewConnection, casePgbenchSelect, caseTpcb, selectRows} from './lib/net-cases.js'
import {ROOT, rssOf, sh, stopAll} from './lib/procs.js'
import {type CaseResult, markdownTable, svgChart} from './lib/report.js'
import {copyTableName, ensureBuilt, ensureDatabase, ensureTools, startStack, type Stack} from './lib/stack.js'

interface Settings {
  quick: boolean
  pgbenchSeconds: number
  rounds: number
  copyBytes: number
  copyRounds: number
  scale: number
  newConnections: number
  sessions: number
  auditEvents: number
  auditRounds: number
  /** Events per round of the PostgreSQL audit append case (one and three writers). */
  auditPgEvents: number
  verifyEvents: number
  maskSeconds: number
}

const FULL: Settings = {
  quick: false,
  pgbenchSeconds: 10,
  rounds: 3,
  copyBytes: 1e9,
  copyRounds: 3,
  scale: 1,
  newConnections: 300,
  sessions: 1000,
  auditEvents: 200_000,
  auditPgEvents: 100_000,
  auditRounds: 3,
  verifyEvents: 1_000_000,
  maskSeconds: 3,
}

const QUICK: Settings = {
  quick: true,
  pgbenchSeconds: 2,
  rounds: 1,
  copyBytes: 32e6,
  copyRounds: 1,
  scale: 1,
  newConnections: 25,
  sessions: 1000,
  auditEvents: 20_000,
  auditPgEvents: 5_000,
  auditRounds: 1,
  verifyEvents: 30_000,
  maskSeconds: 1,
}

function parseArgs(argv: string[]): {s: Settings; only?: Set<string>; cpuProf?: string; out?: string} {
  const quick = argv.includes('--quick')
  const s = {...(quick ? QUICK : FULL)}
  let only: Set<string> | undefined
  let cpuProf: string | undefined
  let out: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--quick') continue
    else if (a === '--only') only = new Set(val().split(','))
    else if (a === '--cpu-prof') cpuProf = val()
    else if (a === '--rounds') s.rounds = Number(val())
    else if (a === '--seconds') s.pgbenchSeconds = Number(val())
    else if (a === '--out') out = val()
    else if (a === '--copy-mb') s.copyBytes = Number(val()) * 1e6
    else if (a === '--copy-rounds') s.copyRounds = Number(val())
    else throw new Error(`unknown option ${a} (known: --quick, --only ids, --cpu-prof DIR, --rounds N, --seconds N, --copy-mb N, --copy-rounds N, --out NAME)`)
  }
  return {s, only, cpuProf, out}
}

async function main(): Promise<number> {
  const {s, only, cpuProf, out} = parseArgs(process.argv.slice(2))
  const started = Date.now()
  const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${m}\n`)
  const want = (id: string) => !only || only.has(id)
  const results: CaseResult[] = []
  const failures: string[] = []
  const measure = async (id: string, f: () => Promise<CaseResult | CaseResult[]>) => {
    log(`case ${id}`)
    try {
      results.push(...[await f()].flat())
    } catch (err) {
      failures.push(`${id}: ${errorMessage(err)}`)
      log(`case ${id} could not run: ${errorMessage(err)}`)
    }
  }
  const run = (id: string, f: () => Promise<CaseResult | CaseResult[]>) => (want(id) ? measure(id, f) : Promise.resolve())

  await ensureBuilt(log)
  const {pgbench} = await ensureTools(log)
  const pgbenchIds = [...selectRows(8), ...selectRows(1)].map((r) => r.id).concat('tpcb-4')
  const needsDb = [...pgbenchIds, 'copy-out', 'new-connection'].some(want)
  if (needsDb) await ensureDatabase({pgbench, scale: s.scale, copyBytes: s.copyBytes, log})
  const pgVersion = (await sh('psql "host=127.0.0.1 user=postgres dbname=postgres" -X -A -t -c "SHOW server_version"')).stdout.trim()

  let stack: Stack | undefined
  const onSignal = () => {
    void stopAll().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    if ([...pgbenchIds, 'copy-out', 'new-connection', 'sessions-1000'].some(want)) {
      stack = await startStack({cpuProfDir: cpuProf, log})
      log(`paths: direct :${stack.directPort}, socat x3 :${stack.relayPort}, hoop :${stack.hoopPort}, tcp :${stack.tcpPort}, allow-os :${stack.allowOsPort}, full-os :${stack.fullOsPort}`)
      const st = stack
      const pg = {bin: pgbench, stack: st, seconds: s.pgbenchSeconds, rounds: s.rounds, log, warmUp: !s.quick}
      // The decomposition: the wanted rows' paths run interleaved with direct and the socat chain, one case per client count.
      for (const clients of [8, 1] as const) {
        const rows = selectRows(clients).filter((r) => want(r.id))
        if (rows.length) await measure(`pgbench-select-${clients} (${rows.map((r) => r.path).join(', ')})`, () => casePgbenchSelect({...pg, clients, rows}))
      }
      await run('tpcb-4', () => caseTpcb(pg))
      await run('copy-out', () => caseCopy({stack: st, table: copyTableName(s.copyBytes), rounds: s.copyRounds, log, label: s.copyBytes >= 1e9 ? '1 GB' : `${Math.round(s.copyBytes / 1e6)} MB`}))
      await run('new-connection', () => caseNewConnection({stack: st, count: s.newConnections, log}))
      await run('sessions-1000', () => caseManySessions({stack: st, sessions: s.sessions, rssOf, log}))
    }
  } finally {
    await stack?.close().catch((e) => log(`stopping the stack: ${errorMessage(e)}`))
    await stopAll()
  }
  await run('fsync-latency', () => caseFsyncLatency({syncs: s.quick ? 100 : 500, log}))
  await run('audit-append', () => caseAuditAppend({events: s.auditEvents, sessions: 1000, rounds: s.auditRounds, log}))
  await run('audit-append-pg', () => caseAuditAppendPg({events: s.auditPgEvents, sessions: 1000, rounds: s.auditRounds, log}))
  await run('audit-sink-pg', () => caseAuditSinkPg({events: s.auditPgEvents, sessions: 1000, rounds: s.auditRounds, log}))
  await run('audit-verify', () => caseAuditVerify({events: s.verifyEvents, log}))
  await run('masking', () => caseMasking({seconds: s.maskSeconds, log}))

  const commit = (await sh('git rev-parse --short HEAD', {})).stdout.trim()
  const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`
  const report = {
    command,
    mode: s.quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    commit,
    machine: {cpus: cpus().length, cpuModel: cpus()[0]?.model, memGB: Math.round(totalmem() / 1e9), node: process.version, postgres: pgVersion},
    settings: s,
    seconds: Math.round((Date.now() - started) / 1000),
    results,
    failures,
  }
  const table = markdownTable(results)
  process.stdout.write(`\n${command} (${report.mode}, ${report.date}, commit ${commit}, ${report.machine.cpus} cores, node ${process.version}, PostgreSQL ${pgVersion})\n\n${table}\n\n`)
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, {recursive: true})
  const name = out ?? (s.quick ? 'quick' : 'latest')
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(report, null, 2) + '\n')
  writeFileSync(join(dir, `${name}.svg`), svgChart(results, `hoop benchmark (${report.mode}), ${report.date.slice(0, 10)}, commit ${commit}`))
  process.stdout.write(`wrote bench/results/${name}.json and bench/results/${name}.svg in ${report.seconds} s\n`)
  if (failures.length) {
    process.stderr.write(`\n${failures.length} case(s) could not run:\n${failures.map((f) => '  ' + f).join('\n')}\n`)
    return 1
  }
  return 0
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`)
    await stopAll()
    process.exit(1)
  },
)
