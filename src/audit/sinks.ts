// Streaming copies of the audit log for external retention (a JSONL file, a SIEM webhook). A v2
// event's line carries its payload as a last "~payload" member (payloads.ts), as packages do. The
// store stays the source of truth: each sink has a cursor (last delivered seq) in the database and
// a runner that reads committed events after it, delivers them in batches, and on failure retries
// with exponential back-off and jitter. Delivery is at-least-once, in seq order.
//
// Sinks are also outside anchors: once a sink has every event a signed tree head covers, the
// runner hands it the head (`publishHead`), so the receiver holds heads it can check the store
// against later (docs/audit.md, "Outside anchors"). A head has its own cursor.
import type Database from 'better-sqlite3'
import {appendFile} from 'node:fs/promises'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {anchorLine} from './anchors.js'
import type {SignedTreeHead} from './keys.js'
import {type CheckpointRow, payloadColumn} from './schema.js'
import {packageLine} from './payloads.js'

interface SinkBatch {
  first: number
  last: number
  /** Canonical JSON of each event (the hashed bytes), in seq order. */
  lines: string[]
}

export interface AuditSink {
  /** Stable name: the cursor is kept under it. */
  readonly name: string
  deliver(batch: SinkBatch): Promise<void>
  /** A signed tree head whose events this sink already has, as an anchor line ({"tree_head": ...}). */
  publishHead?(sth: SignedTreeHead): Promise<void>
}

export class JsonlFileSink implements AuditSink {
  readonly name: string
  constructor(readonly file: string, name?: string) {
    this.name = name ?? `file:${file}`
  }

  async deliver(batch: SinkBatch): Promise<void> {
    await appendFile(this.file, batch.lines.join('\n') + '\n', {mode: 0o600})
  }

  /** The head goes into the same file, after the events it covers: the file is a witness too. */
  async publishHead(sth: SignedTreeHead): Promise<void> {
    await appendFile(this.file, anchorLine({tree_head: sth}) + '\n', {mode: 0o600})
  }
}

interface WebhookOptions {
  url: string
  /** e.g. {Authorization: 'Splunk ...'}; read from config/env by the caller, never logged. */
  headers?: Record<string, string>
  timeoutMs?: number
  name?: string
}

/** POSTs each batch as NDJSON; any non-2xx answer or network error is a failed delivery. */
export class WebhookSink implements AuditSink {
  readonly name: string
  constructor(private readonly opts: WebhookOptions) {
    this.name = opts.name ?? `webhook:${new URL(opts.url).origin}${new URL(opts.url).pathname}`
  }

  async deliver(batch: SinkBatch): Promise<void> {
    await this.post(batch.lines.join('\n') + '\n', {'x-hoop-audit-first-seq': String(batch.first), 'x-hoop-audit-last-seq': String(batch.last)})
  }

  /** One NDJSON line {"tree_head": ...}, marked by the x-hoop-audit-tree-head header (its size). */
  async publishHead(sth: SignedTreeHead): Promise<void> {
    await this.post(anchorLine({tree_head: sth}) + '\n', {'x-hoop-audit-tree-head': String(sth.tree_size)})
  }

  private async post(body: string, extra: Record<string, string>): Promise<void> {
    const res = await fetch(this.opts.url, {
      method: 'POST',
      headers: {'content-type': 'application/x-ndjson', ...extra, ...this.opts.headers},
      body,
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
    })
    await res.arrayBuffer().catch(() => undefined)
    if (res.status < 200 || res.status >= 300) throw new Error(`webhook answered HTTP ${res.status}`)
  }
}

export interface BackoffOptions {
  baseMs: number
  maxMs: number
  batchSize: number
}

const DEFAULT_BACKOFF: BackoffOptions = {baseMs: 500, maxMs: 60_000, batchSize: 500}

/** Moves events from the store to one sink. `kick()` after each commit; never throws. */
export class SinkRunner {
  attempts = 0
  delivered = 0
  private busy = false
  private timer?: NodeJS.Timeout
  private stopped = false
  private idleWaiters: (() => void)[] = []
  private readonly read: Database.Statement<[number, number], {seq: number; body: string; payload: string | null}>
  private readonly save: Database.Statement<[string, number]>
  private readonly readHead: Database.Statement<[number, number], CheckpointRow>
  private readonly noteAnchor: Database.Statement<[number, string, string, string]>
  private cursor: number
  /** Size of the last tree head this sink received. */
  private headCursor: number

  constructor(
    db: Database.Database,
    readonly sink: AuditSink,
    private readonly logger: Logger,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
  ) {
    this.read = db.prepare(`SELECT e.seq, e.body, ${payloadColumn(db)} FROM audit_events e WHERE e.seq > ? ORDER BY e.seq LIMIT ?`)
    this.save = db.prepare('INSERT INTO audit_sink_cursors (name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq')
    const row = db.prepare('SELECT seq FROM audit_sink_cursors WHERE name = ?').get(sink.name) as {seq: number} | undefined
    this.cursor = row?.seq ?? 0
    const head = db.prepare('SELECT seq FROM audit_sink_cursors WHERE name = ?').get(this.headName) as {seq: number} | undefined
    this.headCursor = head?.seq ?? 0
    this.readHead = db.prepare('SELECT * FROM audit_checkpoints WHERE tree_size <= ? AND tree_size > ? ORDER BY tree_size DESC LIMIT 1')
    this.noteAnchor = db.prepare("INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at) VALUES (?, ?, 'sink', ?, ?)")
  }

  private get headName(): string {
    return `${this.sink.name}#tree-head`
  }

  /** The newest signed head whose events the sink has and it has not received yet. */
  private pendingHead(): CheckpointRow | undefined {
    if (!this.sink.publishHead) return undefined
    return this.readHead.get(this.cursor, this.headCursor)
  }

  get position(): number {
    return this.cursor
  }

  kick(): void {
    if (this.busy || this.timer || this.stopped) return
    void this.run()
  }

  /** Resolves when the sink has caught up (or the timeout passes). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (!this.busy && !this.timer && this.read.all(this.cursor, 1).length === 0 && !this.pendingHead()) return true
      this.kick()
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve)
        setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))).unref()
      })
    }
    return false
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  private async run(): Promise<void> {
    this.busy = true
    try {
      for (;;) {
        if (this.stopped) return
        const rows = this.read.all(this.cursor, this.backoff.batchSize)
        if (rows.length === 0) {
          const head = this.pendingHead()
          if (!head) return
          if (!(await this.attempt(() => this.sink.publishHead!({v: 1, ...head})))) return
          this.headCursor = head.tree_size
          this.save.run(this.headName, head.tree_size)
          this.noteAnchor.run(head.tree_size, head.root_hash, this.sink.name, new Date().toISOString())
          continue
        }
        const batch: SinkBatch = {first: rows[0].seq, last: rows[rows.length - 1].seq, lines: rows.map((r) => packageLine(r.body, r.payload ?? undefined))}
        if (!(await this.attempt(() => this.sink.deliver(batch)))) return
        this.cursor = batch.last
        this.delivered += rows.length
        this.save.run(this.sink.name, this.cursor)
      }
    } finally {
      this.busy = false
      for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  /** One delivery; on failure schedules the retry with back-off and returns false. */
  private async attempt(deliver: () => Promise<void>): Promise<boolean> {
    try {
      await deliver()
    } catch (err) {
      this.attempts++
      const delay = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** (this.attempts - 1))
      const jittered = Math.round(delay / 2 + Math.random() * (delay / 2))
      this.logger.warn('audit sink delivery failed; will retry', {sink: this.sink.name, attempt: this.attempts, retryInMs: jittered, error: errorMessage(err)})
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.kick()
      }, jittered)
      this.timer.unref()
      return false
    }
    this.attempts = 0
    return true
  }
}
