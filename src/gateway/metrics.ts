// The gateway's Prometheus metrics: a small dependency-free registry (counters, gauges, one
// histogram kind) rendered in the text exposition format 0.0.4, and the gateway's own metric set.
// Label values come from closed sets (connection types, decisions, error codes), never from
// callers, so a client cannot grow the registry.
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
import type {GateHooks} from '../engines/gate.js'

type Labels = Record<string, string>

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

interface Family {
  render(): string[]
}

/** A counter or gauge: one value per label set; a gauge may also be read at scrape time. */
class Series implements Family {
  private readonly values = new Map<string, number>()

  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly type: 'counter' | 'gauge',
    private readonly collect?: () => Array<[Labels, number]>,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels)
    this.values.set(key, (this.values.get(key) ?? 0) + by)
  }

  dec(labels: Labels = {}): void {
    this.inc(labels, -1)
  }

  /** The current value, for tests and /readyz-like checks. */
  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0
  }

  render(): string[] {
    const entries = this.collect ? this.collect().map(([l, v]) => [labelText(l), v] as const) : [...this.values]
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...entries.map(([l, v]) => `${this.name}${l} ${v}`)]
  }
}

/** A histogram without labels: cumulative buckets, sum and count. */
class Histogram implements Family {
  private readonly counts: number[]
  private sum = 0
  private count = 0

  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0)
  }

  observe(value: number): void {
    this.sum += value
    this.count++
    const i = this.buckets.findIndex((b) => value <= b)
    if (i >= 0) this.counts[i]++
  }

  render(): string[] {
    let cumulative = 0
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    this.buckets.forEach((b, i) => {
      cumulative += this.counts[i]
      lines.push(`${this.name}_bucket{le="${b}"} ${cumulative}`)
    })
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`)
    return lines
  }
}

/** Seconds: a group commit is a write and an fsync, so most land between 0.5 ms and 50 ms. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export class GatewayMetrics {
  private readonly families: Family[] = []
  readonly sessionsActive = this.add(new Series('hoop_sessions_active', 'Client sessions open now, by connection type.', 'gauge'))
  readonly sessionsTotal = this.add(new Series('hoop_sessions_total', 'Client sessions started, by connection type.', 'counter'))
  readonly statements = this.add(new Series('hoop_statements_total', 'Statements (HTTP requests) judged, by decision: allow (run), block or review (refused).', 'counter'))
  readonly auditAppend = this.add(
    new Histogram('hoop_audit_append_seconds', 'Time until an audit record the data path waits on (a session start, a statement) is durable.', LATENCY_BUCKETS),
  )
  readonly relayBytes = this.add(new Series('hoop_relay_bytes_total', 'Bytes relayed for ended sessions: up (client to target) and down (target to client).', 'counter'))
  readonly errors = this.add(new Series('hoop_errors_total', 'Errors answered to clients and agents, by hoop error code.', 'counter'))
  /** Label `webhook` is a name from the gateway config, never a URL. */
  readonly notifications = this.add(
    new Series('hoop_notifications_total', 'Approval notifications by webhook and outcome: delivered, retried, failed (refused or out of retries), dropped (queue full or gateway stopped).', 'counter'),
  )

  /** `agentLinks` counts the live relay links from agents, read at scrape time. */
  constructor(agentLinks: () => number) {
    this.add(new Series('hoop_agent_links', 'Relay links from agents connected to this gateway.', 'gauge', () => [[{}, agentLinks()]]))
  }

  private add<F extends Family>(f: F): F {
    this.families.push(f)
    return f
  }

  render(): string {
    return this.families.flatMap((f) => f.render()).join('\n') + '\n'
  }

  /** The gate's hooks, counting each decision and timing each statement's durable audit record. */
  metered<Op>(hooks: GateHooks<Op>): GateHooks<Op> {
    return {
      ...hooks,
      // Not async: a record that cannot be placed throws synchronously, and the gate refuses the
      // statement before forwarding it (an async wrapper would turn that into a withheld response).
      beforeForward: (s, mode) => {
        const started = performance.now()
        return hooks.beforeForward(s, mode).then(() => this.auditAppend.observe((performance.now() - started) / 1000))
      },
      afterStatement: (s) => {
        this.statements.inc({decision: 'allow'})
        hooks.afterStatement(s)
      },
      refused: (s) => {
        this.statements.inc({decision: s.verdict.effect})
        hooks.refused(s)
      },
    }
  }
}
