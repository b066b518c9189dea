// The audit writer. `append` resolves only once the event is durable: appends made in one turn of
// the event loop are gathered into one group commit (one transaction on a `synchronous = FULL`
// connection = one fsync of the WAL; `durability: 'os'` writes without the fsync). The commit
// runs on the event loop (better-sqlite3 is synchronous): while a group's fsync blocks it, the
// next group gathers in the sockets. A worker thread for commits measured slower (bench/README.md).
// Each event is chained to its predecessor (prev_hash = SHA-256 of the predecessor's canonical
// JSON) and is a leaf of an RFC 6962 Merkle tree whose heads are signed with Ed25519 and
// checkpointed periodically and on close. If a commit fails, every append in it rejects with
// AUDIT_UNAVAILABLE and nothing is acknowledged: the gateway then refuses the statement (fail
// closed). Each signed head is published outside the store (anchors.ts): appended to the witness
// file, handed to every sink, and timestamped by an RFC 3161 authority when one is configured.
import Database from 'better-sqlite3'
import {hash as digest, type KeyObject, type X509Certificate} from 'node:crypto'
import {errorMessage, HoopError} from '../shared/errors.js'
import {type Logger, silentLogger} from '../shared/log.js'
import {appendWitness, headDigest} from './anchors.js'
import {canonicalize} from './canonical.js'
import type {AppendedEvent, AuditEvent} from './events.js'
import {loadSigningKey, type SignedTreeHead, signTreeHead, type SigningKey} from './keys.js'
import {leafHash, MerkleFrontier} from './merkle.js'
import {pruneRecordings} from './recorder.js'
import {type CheckpointRow, ensureAuditSchema} from './schema.js'
import {type AuditSink, type BackoffOptions, SinkRunner} from './sinks.js'
import {requestTimestamp} from './tsa.js'

export const GENESIS_HASH = '0'.repeat(64)
const MAX_BATCH = 20_000
/** Longest a deferred append waits for a group commit to ride with. */
const DEFER_MS = 20

const INSERT_EVENT =
  'INSERT INTO audit_events (seq, time, kind, session, subject, connection, hash, prev_hash, leaf, body) VALUES (@seq, @time, @kind, @session, @subject, @connection, @hash, @prev_hash, @leaf, @body)'

interface AuditLogOptions {
  db: Database.Database
  dataDir: string
  signingKey?: KeyObject | string
  signingKeyFile?: string
  logger?: Logger
  sinks?: AuditSink[]
  sinkBackoff?: BackoffOptions
  /** Sign a tree head after this many new events or this many ms, whichever comes first. */
  checkpointEvery?: {events: number; ms: number}
  /** Drop recording payloads of sessions that finished more than this many days ago. */
  retentionDays?: number
  /**
   * `fsync` (default): a group is acknowledged once fsync'd, so it survives a power loss.
   * `os`: acknowledged once written to the OS (WAL, synchronous NORMAL): survives a crash or
   * kill -9 of the gateway but not of the machine; far cheaper per statement on slow disks.
   */
  durability?: 'fsync' | 'os'
  /** Where each signed tree head is published besides the store and the sinks. */
  anchors?: AnchorOptions
}

export interface AnchorOptions {
  /** Witness file: each signed head appended as one JSONL line and fsync'd (see anchors.ts). */
  witness?: string
  /** An RFC 3161 timestamp authority: each signed head's digest is stamped, the token kept. */
  timestamp?: {url: string; timeoutMs?: number; trusted?: X509Certificate[]}
}

interface Pending {
  event: AuditEvent
  resolve: (e: AppendedEvent) => void
  reject: (err: Error) => void
}

interface Row {
  seq: number
  time: string
  kind: string
  session: string | null
  subject: string | null
  connection: string | null
  hash: string
  prev_hash: string
  leaf: Buffer
  body: string
}

export class AuditLog {
  private queue: Pending[] = []
  private scheduled = false
  private closed = false
  private seq: number
  private head: string
  private readonly frontier = new MerkleFrontier()
  private lastCheckpoint?: SignedTreeHead
  private readonly writer: Database.Database
  private readonly ownWriter: boolean
  private readonly commit: (rows: Row[]) => void
  private readonly insertCheckpoint: Database.Statement
  private readonly runners: SinkRunner[]
  private readonly timers: NodeJS.Timeout[] = []
  private flushing?: Promise<void>
  private deferTimer?: NodeJS.Timeout
  private readonly insertAnchor: Database.Statement
  /** The TSA request in flight, and the newest head waiting for the next one. */
  private stamping?: Promise<void>
  private stampNext?: SignedTreeHead
  /** Size of the newest head written to the witness file. */
  private witnessed = -1
  private writerClosed = false

  private constructor(
    private readonly db: Database.Database,
    private readonly key: SigningKey,
    private readonly logger: Logger,
    private readonly opts: AuditLogOptions,
  ) {
    ensureAuditSchema(db)
    // A second connection to the same file so the audit commits get the synchronous level
    // `durability` asks for (FULL by default) while the rest of the store keeps NORMAL. An
    // in-memory database cannot be shared: use the handle.
    this.ownWriter = !db.memory
    this.writer = this.ownWriter ? new Database(db.name) : db
    if (this.ownWriter) {
      this.writer.pragma('busy_timeout = 5000')
      this.writer.pragma(`synchronous = ${opts.durability === 'os' ? 'NORMAL' : 'FULL'}`)
    }
    const insert = this.writer.prepare(INSERT_EVENT)
    this.commit = this.writer.transaction((rows: Row[]) => {
      for (const r of rows) insert.run(r)
    })
    this.insertCheckpoint = this.writer.prepare(
      'INSERT OR REPLACE INTO audit_checkpoints (tree_size, root_hash, head_hash, timestamp, key_fingerprint, signature) VALUES (@tree_size, @root_hash, @head_hash, @timestamp, @key_fingerprint, @signature)',
    )
    this.writer
      .prepare('INSERT OR IGNORE INTO audit_keys (fingerprint, public_pem, first_used_at) VALUES (?, ?, ?)')
      .run(key.fingerprint, key.publicPem, new Date().toISOString())
    this.insertAnchor = this.writer.prepare(
      'INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at, token, gen_time) VALUES (?, ?, ?, ?, ?, ?, ?)',
    )
    // Offline commands (`hoop audit export --data-dir`) find the witness file here.
    if (opts.anchors?.witness) this.writer.prepare("INSERT OR REPLACE INTO audit_meta (key, value) VALUES ('witness_path', ?)").run(opts.anchors.witness)

    // Rebuild the head and the Merkle frontier from what is stored.
    const last = db.prepare('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1').get() as {seq: number; hash: string} | undefined
    this.seq = last?.seq ?? 0
    this.head = last?.hash ?? GENESIS_HASH
    for (const [leaf] of db.prepare('SELECT leaf FROM audit_events ORDER BY seq').raw().iterate() as IterableIterator<[Buffer]>) {
      this.frontier.push(leaf)
    }
    if (this.frontier.size !== this.seq) {
      throw new HoopError('AUDIT_UNAVAILABLE', `audit log has ${this.frontier.size} events but its last seq is ${this.seq}; run \`hoop audit verify --live\``)
    }
    const cp = db.prepare('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1').get() as CheckpointRow | undefined
    if (cp) this.lastCheckpoint = {v: 1, ...cp}

    this.runners = (opts.sinks ?? []).map((s) => new SinkRunner(db, s, logger, opts.sinkBackoff))
    for (const r of this.runners) r.kick()

    const every = opts.checkpointEvery ?? {events: 10_000, ms: 60_000}
    if (every.ms > 0) {
      const t = setInterval(() => this.safeCheckpoint(), every.ms)
      t.unref()
      this.timers.push(t)
    }
    if (opts.retentionDays !== undefined) {
      const prune = () => {
        try {
          const n = pruneRecordings(this.db, {olderThanDays: opts.retentionDays!})
          if (n > 0) this.logger.info('pruned recording payloads', {sessions: n, retentionDays: opts.retentionDays})
        } catch (err) {
          this.logger.error('recording retention failed', {error: String(err)})
        }
      }
      prune()
      const t = setInterval(prune, 3_600_000)
      t.unref()
      this.timers.push(t)
    }
  }

  static open(opts: AuditLogOptions): AuditLog {
    const key = loadSigningKey({dataDir: opts.dataDir, key: opts.signingKey, keyFile: opts.signingKeyFile, create: true})!
    return new AuditLog(opts.db, key, opts.logger ?? silentLogger, opts)
  }

  get size(): number {
    return this.seq
  }

  get headHash(): string {
    return this.head
  }

  /**
   * Resolves once the event is committed (fsync'd unless `durability: 'os'`); rejects with
   * AUDIT_UNAVAILABLE otherwise.
   * `defer: true` is for events nobody waits on (a statement's result, masking counts): the event
   * keeps its place in the chain but rides with the next group commit, or commits on its own after
   * DEFER_MS, so a statement costs one fsync on its path instead of two.
   */
  append(event: AuditEvent, opts: {defer?: boolean} = {}): Promise<AppendedEvent> {
    if (this.closed) return Promise.reject(new HoopError('AUDIT_UNAVAILABLE', 'audit log is closed; statements are refused'))
    return new Promise((resolve, reject) => {
      this.queue.push({event, resolve, reject})
      if (!opts.defer) this.schedule()
      else this.deferTimer ??= setTimeout(this.onDeferTimer, DEFER_MS)
    })
  }

  private readonly onDeferTimer = (): void => {
    this.deferTimer = undefined
    this.schedule()
  }

  /** Waits until everything appended so far is committed (or failed). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.flushing) {
      if (this.flushing) await this.flushing
      else this.runBatch()
    }
  }

  /** Signs the current tree head (committed events only) and stores it. */
  checkpoint(): SignedTreeHead {
    if (this.lastCheckpoint && this.lastCheckpoint.tree_size === this.seq && this.lastCheckpoint.key_fingerprint === this.key.fingerprint) {
      return this.lastCheckpoint
    }
    const sth = signTreeHead(
      {tree_size: this.seq, root_hash: this.frontier.root().toString('hex'), head_hash: this.head, timestamp: new Date().toISOString()},
      this.key,
    )
    const {v: _v, ...row} = sth
    this.insertCheckpoint.run(row)
    this.lastCheckpoint = sth
    this.publish(sth)
    return sth
  }

  /**
   * Publishes a head outside the store: the witness file (at once, fsync'd), the sinks (once they
   * have its events) and the timestamp authority (in the background; the newest head waits while
   * a request is in flight). A failure is logged; the head is still in the store and the sinks.
   */
  private publish(sth: SignedTreeHead): void {
    const witness = this.opts.anchors?.witness
    if (witness && sth.tree_size > 0) {
      try {
        appendWitness(witness, {tree_head: sth})
        this.witnessed = sth.tree_size
        this.insertAnchor.run(sth.tree_size, sth.root_hash, 'witness', witness, new Date().toISOString(), null, null)
      } catch (err) {
        this.logger.error('audit witness file could not be written; the signed head is kept in the store and the sinks', {file: witness, error: errorMessage(err)})
      }
    }
    for (const r of this.runners) r.kick()
    if (this.opts.anchors?.timestamp && sth.tree_size > 0) this.stamp(sth)
  }

  private stamp(sth: SignedTreeHead): void {
    this.stampNext = sth
    if (this.stamping) return
    const tsa = this.opts.anchors!.timestamp!
    this.stamping = (async () => {
      while (this.stampNext) {
        const head = this.stampNext
        this.stampNext = undefined
        try {
          const {token, info} = await requestTimestamp(tsa.url, headDigest(head), {timeoutMs: tsa.timeoutMs, trusted: tsa.trusted})
          if (this.writerClosed) return
          this.insertAnchor.run(head.tree_size, head.root_hash, 'tsa', tsa.url, new Date().toISOString(), token, info.genTime)
          // The witness gets the token too, unless a newer head was written there meanwhile (its
          // last line is what the gateway checks its store against on start).
          const witness = this.opts.anchors?.witness
          if (witness && this.witnessed === head.tree_size) appendWitness(witness, {tree_head: head, timestamp: {tsa: tsa.url, token: token.toString('base64'), gen_time: info.genTime}})
        } catch (err) {
          this.logger.warn('timestamp authority did not stamp the signed tree head; the next head will be tried', {tsa: tsa.url, treeSize: head.tree_size, error: errorMessage(err)})
        }
      }
    })().finally(() => {
      this.stamping = undefined
    })
  }

  latestCheckpoint(): SignedTreeHead | undefined {
    return this.lastCheckpoint
  }

  publicKeyPem(): string {
    return this.key.publicPem
  }

  fingerprint(): string {
    return this.key.fingerprint
  }

  /** For a gateway endpoint (e.g. GET /api/audit/key). */
  keyDocument(): {algorithm: 'Ed25519'; publicKey: string; fingerprint: string} {
    return {algorithm: 'Ed25519', publicKey: this.key.publicPem, fingerprint: this.key.fingerprint}
  }

  /** Sink positions, for metrics and tests. */
  sinkStatus(): {name: string; position: number; attempts: number}[] {
    return this.runners.map((r) => ({name: r.sink.name, position: r.position, attempts: r.attempts}))
  }

  async drainSinks(timeoutMs = 5_000): Promise<boolean> {
    const all = await Promise.all(this.runners.map((r) => r.drain(timeoutMs)))
    return all.every(Boolean)
  }

  /** Flushes, signs a final checkpoint, gives sinks a moment to catch up, closes the writer. */
  async close(opts: {sinkDrainMs?: number} = {}): Promise<void> {
    if (this.closed) return
    await this.flush()
    this.closed = true
    clearTimeout(this.deferTimer)
    for (const t of this.timers) clearInterval(t)
    try {
      this.checkpoint()
    } catch (err) {
      this.logger.error('final audit checkpoint failed', {error: String(err)})
    }
    await Promise.all([this.drainSinks(opts.sinkDrainMs ?? 2_000), this.stamping])
    for (const r of this.runners) r.stop()
    this.writerClosed = true
    if (this.ownWriter) this.writer.close()
  }

  private safeCheckpoint(): void {
    try {
      this.checkpoint()
    } catch (err) {
      this.logger.error('audit checkpoint failed', {error: String(err)})
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.runBatch()
    })
  }

  private runBatch(): void {
    if (this.flushing || this.queue.length === 0) return
    const taken = this.queue.splice(0, MAX_BATCH)
    const batch: Pending[] = []
    const rows: Row[] = []
    let seq = this.seq
    let prev = this.head
    for (const p of taken) {
      const e = p.event
      let body: string
      try {
        body = canonicalize({...e, v: 1, seq: seq + 1, prev_hash: prev})
      } catch (err) {
        p.reject(err as Error) // this event cannot be encoded; the others go on
        continue
      }
      seq++
      batch.push(p)
      const hash = digest('sha256', body, 'hex')
      rows.push({
        seq,
        time: e.time,
        kind: e.kind,
        session: e.session ?? null,
        subject: e.actor?.subject ?? null,
        connection: e.connection ?? null,
        hash,
        prev_hash: prev,
        leaf: leafHash(body),
        body,
      })
      prev = hash
    }
    let failed: HoopError | undefined
    try {
      this.commit(rows)
    } catch (err) {
      failed = this.commitError(rows.length, errorMessage(err))
    }
    this.settle(batch, rows, seq, prev, failed)
    // More than MAX_BATCH were queued: the rest form the next group, one turn later.
    if (this.queue.length > 0) {
      this.flushing = new Promise<void>((resolve) =>
        setImmediate(() => {
          this.flushing = undefined
          this.runBatch()
          resolve()
        }),
      )
    }
  }

  private commitError(events: number, message: string): HoopError {
    this.logger.error('audit commit failed; refusing the statements in this batch', {events, error: message})
    return new HoopError('AUDIT_UNAVAILABLE', `audit store cannot write (${message}); the statement is refused`)
  }

  /** Acknowledges a committed group (or refuses it) and moves the head. */
  private settle(batch: Pending[], rows: Row[], seq: number, prev: string, failed: Error | undefined): void {
    if (failed) {
      for (const p of batch) p.reject(failed)
    } else {
      for (const r of rows) this.frontier.push(r.leaf)
      this.seq = seq
      this.head = prev
      for (let i = 0; i < batch.length; i++) batch[i].resolve({seq: rows[i].seq, hash: rows[i].hash, body: rows[i].body})
      const every = this.opts.checkpointEvery?.events ?? 10_000
      if (every > 0 && this.seq - (this.lastCheckpoint?.tree_size ?? 0) >= every) this.safeCheckpoint()
      for (const r of this.runners) r.kick()
    }
  }
}
