// Streaming copies of the audit log for external retention (a JSONL file, a SIEM webhook). A v2
// event's line carries its payload as a last "~payload" member (payloads.ts), as packages do. The
// store stays the source of truth: each sink has a cursor (last delivered seq) in the database and
// a runner that reads committed events after it, delivers them in batches, and on failure retries
// with exponential back-off and jitter. Delivery is at-least-once, in seq order.
//
// Sinks are also outside anchors: once a sink has every event a signed tree head covers, the
// runner hands it the head (`publishHead`), so the receiver holds heads it can check the store
// against later (docs/audit.md, "Outside anchors"). A head has its own cursor.
//
// The runner reads and moves its cursors through a SinkStore: the data dir's SQLite file (here),
// or the PostgreSQL store every replica shares (pg-sinks.ts), where a sink is driven by whichever
// replica holds its lock, and the replica that takes it over goes on from the stored cursor.
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

export interface SinkEventRow {
  seq: number
  body: string
  payload: string | null
}

/** Where a runner reads committed events and heads, and keeps its cursors. */
export interface SinkStore {
  /**
   * May this process drive the sink now? 'gained': it just took it (the cursors are read again);
   * 'held': it already drives it; 'taken': another replica does.
   */
  claim(sink: string): Promise<'held' | 'gained' | 'taken'>
  cursor(name: string): Promise<number>
  /** Moves a cursor forward (never back); rejects when this process no longer drives the sink. */
  saveCursor(name: string, seq: number): Promise<void>
  events(after: number, limit: number): Promise<SinkEventRow[]>
  /** The newest signed head of size in (after, upTo]. */
  headBetween(after: number, upTo: number): Promise<CheckpointRow | undefined>
  /** Records that the sink received the head (audit_anchors, kind 'sink'). */
  noteAnchor(treeSize: number, rootHash: string, sink: string): Promise<void>
}

/** The data dir's SQLite file: one gateway, so every sink is always this process's to drive. */
export function sqliteSinkStore(db: Database.Database, durableUpTo: () => number = () => Number.MAX_SAFE_INTEGER): SinkStore {
  // Only durable events leave for a sink: a committed group may still wait for its fdatasync (log.ts).
  const read = db.prepare(`SELECT e.seq, e.body, ${payloadColumn(db)} FROM audit_events e WHERE e.seq > ? AND e.seq <= ? ORDER BY e.seq LIMIT ?`)
  const save = db.prepare('INSERT INTO audit_sink_cursors (name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = max(seq, excluded.seq)')
  const load = db.prepare('SELECT seq FROM audit_sink_cursors WHERE name = ?')
  const head = db.prepare('SELECT * FROM audit_checkpoints WHERE tree_size <= ? AND tree_size > ? ORDER BY tree_size DESC LIMIT 1')
  const note = db.prepare("INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at) VALUES (?, ?, 'sink', ?, ?)")
  let claimed = false
  return {
    claim: async () => {
      const first = !claimed
      claimed = true
      return first ? 'gained' : 'held'
    },
    cursor: async (name) => (load.get(name) as {seq: number} | undefined)?.seq ?? 0,
    saveCursor: async (name, seq) => void save.run(name, seq),
    events: async (after, limit) => read.all(after, durableUpTo(), limit) as SinkEventRow[],
    headBetween: async (after, upTo) => head.get(upTo, after) as CheckpointRow | undefined,
    noteAnchor: async (size, root, sink) => void note.run(size, root, sink, new Date().toISOString()),
  }
}

/**
 * Moves events from the store to one sink. `kick()` after each commit (and every `pollMs`, where
 * other processes commit too); never throws.
 */
export class SinkRunner {
  attempts = 0
  delivered = 0
  private busy = false
  private timer?: NodeJS.Timeout
  private poller?: NodeJS.Timeout
  private stopped = false
  private idleWaiters: (() => void)[] = []
  /** Whether this process drove the sink at its last run. */
  private driving = false
  private cursor = 0
  /** Size of the last tree head this sink received. */
  private headCursor = 0

  constructor(
    private readonly store: SinkStore,
    readonly sink: AuditSink,
    private readonly logger: Logger,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    pollMs?: number,
  ) {
    if (pollMs) {
      this.poller = setInterval(() => this.kick(), pollMs)
      this.poller.unref()
    }
  }

  private get headName(): string {
    return `${this.sink.name}#tree-head`
  }

  /** The newest signed head whose events the sink has and it has not received yet. */
  private async pendingHead(): Promise<CheckpointRow | undefined> {
    if (!this.sink.publishHead) return undefined
    return this.store.headBetween(this.headCursor, this.cursor)
  }

  get position(): number {
    return this.cursor
  }

  /** Whether this process drives the sink (on a shared store, another replica may). */
  get active(): boolean {
    return this.driving
  }

  kick(): void {
    if (this.busy || this.timer || this.stopped) return
    void this.run()
  }

  /** Resolves when the sink has caught up, or another process drives it (or the timeout passes). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (!this.busy && !this.timer && (!this.driving || (await this.caughtUp()))) return true
      this.kick()
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve)
        setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))).unref()
      })
    }
    return false
  }

  private async caughtUp(): Promise<boolean> {
    try {
      return (await this.store.events(this.cursor, 1)).length === 0 && !(await this.pendingHead())
    } catch {
      return false
    }
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    if (this.poller) clearInterval(this.poller)
    this.timer = undefined
  }

  private async run(): Promise<void> {
    this.busy = true
    try {
      const claim = await this.store.claim(this.sink.name)
      this.driving = claim !== 'taken'
      if (!this.driving) return
      if (claim === 'gained') {
        // Taken over (or first run): go on from where the store says the sink is.
        this.cursor = await this.store.cursor(this.sink.name)
        this.headCursor = await this.store.cursor(this.headName)
      }
      for (;;) {
        if (this.stopped) return
        const rows = await this.store.events(this.cursor, this.backoff.batchSize)
        if (rows.length === 0) {
          const head = await this.pendingHead()
          if (!head) return
          if (!(await this.attempt(() => this.sink.publishHead!({v: 1, ...head})))) return
          this.headCursor = Number(head.tree_size)
          await this.store.saveCursor(this.headName, this.headCursor)
          await this.store.noteAnchor(this.headCursor, head.root_hash, this.sink.name)
          continue
        }
        const batch: SinkBatch = {first: Number(rows[0].seq), last: Number(rows[rows.length - 1].seq), lines: rows.map((r) => packageLine(r.body, r.payload ?? undefined))}
        if (!(await this.attempt(() => this.sink.deliver(batch)))) return
        this.cursor = batch.last
        this.delivered += rows.length
        await this.store.saveCursor(this.sink.name, this.cursor)
      }
    } catch (err) {
      // The store failed (or this process lost the sink): claim it again on the next kick.
      this.driving = false
      this.logger.warn('audit sink paused: its store could not be read or its position saved; it resumes from the stored position', {sink: this.sink.name, error: errorMessage(err)})
      this.retryLater()
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
      const retryInMs = this.retryLater()
      this.logger.warn('audit sink delivery failed; will retry', {sink: this.sink.name, attempt: this.attempts, retryInMs, error: errorMessage(err)})
      return false
    }
    this.attempts = 0
    return true
  }

  private retryLater(): number {
    this.attempts++
    const delay = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** (this.attempts - 1))
    const jittered = Math.round(delay / 2 + Math.random() * (delay / 2))
    if (this.stopped) return jittered
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.kick()
    }, jittered)
    this.timer.unref()
    return jittered
  }
}
