// `node --import tsx bench/audit-loop.ts [EVENTS] [SESSIONS]`
//
// What durable audit appends cost the gateway's event loop: the audit-append case (SESSIONS
// closed-loop writers, default 100,000 events and 1,000 sessions) with the event loop's busy time
// and delay measured around it. With few sessions the writers mostly wait for durability, so the
// busy time per event shows whether that wait blocks the loop (an fsync on it) or not. One line of
// figures; run it alternately on two builds to compare them (bench/README.md).
import {monitorEventLoopDelay} from 'node:perf_hooks'
import {caseAuditAppend} from './lib/inproc-cases.js'

const events = Number(process.argv[2] ?? 100_000)
const sessions = Number(process.argv[3] ?? 1000)
const delay = monitorEventLoopDelay({resolution: 1})
delay.enable()
const elu0 = performance.eventLoopUtilization()
const cpu0 = process.cpuUsage()
const r = await caseAuditAppend({events, sessions, rounds: 1, log: () => {}})
const cpu = process.cpuUsage(cpu0)
const elu = performance.eventLoopUtilization(elu0)
delay.disable()
const ms = (ns: number) => (ns / 1e6).toFixed(2)
console.log(
  `${events} events, ${sessions} sessions: ${Math.round(r.value)}/s; process CPU ${((cpu.user + cpu.system) / events).toFixed(1)} µs/event; ` +
    `event loop busy ${((elu.active * 1000) / events).toFixed(1)} µs/event (${(elu.utilization * 100).toFixed(0)}%), delay p50 ${ms(delay.percentile(50))} ms, p99 ${ms(delay.percentile(99))} ms`,
)
