// The audit writer. `append` resolves only once the event is durable: appends made while a commit
// is pending are gathered into one group commit (one transaction on a `synchronous = FULL`
// connection = one fsync of the WAL). Each event is chained to its predecessor (prev_hash =
// SHA-256 of the predecessor's canonical JSON) and is a leaf of an RFC 6962 Merkle tree whose
// heads are signed with Ed25519 and checkpointed periodically and on close. If a commit fails,
// every append in it rejects with AUDIT_UNAVAILABLE and nothing is acknowledged: the gateway then
// refuses the statement (fail closed).
import Database from 'better-sqlite3'
import {hash as digest, type KeyObject} from 'node:crypto'
import {createRequire} from 'node:module'
import {Worker} from 'node:worker_threads'
import {errorMessage, HoopError} from '../shared/errors.js'
import {type Logger, silentLogger} from '../shared/log.js'
import {canonicalize} from './canonical.js'
import type {AppendedEvent, AuditEvent} from './events.js'
import {loadSigningKey, type SignedTreeHead, signTreeHead, type SigningKey} from './keys.js'
import {leafHash, MerkleFrontier} from './merkle.js'
import {pruneRecordings} from './recorder.js'
import {type CheckpointRow, ensureAuditSchema} from './schema.js'
import {type AuditSink, type BackoffOptions, SinkRunner} from './sinks.js'

export const GENESIS_HASH = '0'.repeat(64)
const MAX_BATCH = 20_000
/** Longest a deferred append waits for a group commit to ride with. */
export const DEFER_MS = 20

const INSERT_EVENT =
  'INSERT INTO audit_events (seq, time, kind, session, subject, connection, hash, prev_hash, leaf, body) VALUES (@seq, @time, @kind, @session, @subject, @connection, @hash, @prev_hash, @leaf, @body)'
const INSERT_EVENT_POSITIONAL =
  'INSERT INTO audit_events (seq, time, kind, session, subject, connection, hash, prev_hash, leaf, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'

/**
 * A group as the commit thread receives it: one array per column (cheap to clone, unlike an
 * array of row objects) and the 32-byte leaves packed into one transferred buffer.
 */
interface GroupMessage {
  firstSeq: number
  time: string[]
  kind: string[]
  session: (string | null)[]
  subject: (string | null)[]
  connection: (string | null)[]
  hash: string[]
  prevHash: string[]
  body: string[]
  leaves: ArrayBuffer
}

function toGroupMessage(rows: Row[]): GroupMessage {
  const n = rows.length
  const m: GroupMessage = {firstSeq: rows[0].seq, time: [], kind: [], session: [], subject: [], connection: [], hash: [], prevHash: [], body: [], leaves: new ArrayBuffer(32 * n)}
  const leaves = Buffer.from(m.leaves)
  for (let i = 0; i < n; i++) {
    const r = rows[i]
    m.time.push(r.time)
    m.kind.push(r.kind)
    m.session.push(r.session)
    m.subject.push(r.subject)
    m.connection.push(r.connection)
    m.hash.push(r.hash)
    m.prevHash.push(r.prev_hash)
    m.body.push(r.body)
    r.leaf.copy(leaves, 32 * i)
  }
  return m
}

// The commit thread: its own FULL-synchronous connection, one transaction (one WAL fsync) per
// group. The fsync runs off the event loop, so sessions keep being served (and the next group
// keeps filling) while a group is made durable. Inline source: works the same from src/ and dist/.
const COMMIT_THREAD = `
const {parentPort, workerData} = require('node:worker_threads')
const Database = require(workerData.sqlite)
const db = new Database(workerData.file)
db.pragma('busy_timeout = 5000')
db.pragma('synchronous = ' + workerData.synchronous)
const insert = db.prepare(workerData.sql)
const commit = db.transaction((m) => {
  const leaves = Buffer.from(m.leaves)
  for (let i = 0; i < m.body.length; i++) {
    insert.run(m.firstSeq + i, m.time[i], m.kind[i], m.session[i], m.subject[i], m.connection[i], m.hash[i], m.prevHash[i], leaves.subarray(32 * i, 32 * i + 32), m.body[i])
  }
})
parentPort.on('message', (m) => {
  try {
    commit(m)
    parentPort.postMessage(null)
  } catch (err) {
    parentPort.postMessage(String((err && err.message) || err))
  }
})
`

export interface AuditLogOptions {
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
   * Commit groups on a worker thread (file databases only; default false). Measured through the
   * PostgreSQL engine with pgbench -S on 2 cores: the thread hop adds 0.4-0.6 ms per statement
   * at 1 client (fsync 0.92 -> 1.52 ms, os 0.57 -> 0.95 ms) and gains nothing at 8 clients
   * (1515 vs 1530 TPS), so commits run on the event loop unless asked.
   */
  commitThread?: boolean
  /**
   * `fsync` (default): a group is acknowledged once fsync'd, so it survives a power loss.
   * `os`: acknowledged once written to the OS (WAL, synchronous NORMAL): survives a crash or
   * kill -9 of the gateway but not of the machine; far cheaper per statement on slow disks.
   */
  durability?: 'fsync' | 'os'
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
  /** Commits groups off the event loop (file databases); undefined = commit synchronously. */
  private commitThread?: Worker
  private onCommitted?: (error: string | null) => void
  private get synchronous(): 'FULL' | 'NORMAL' {
    return this.opts.durability === 'os' ? 'NORMAL' : 'FULL'
  }

  private constructor(
    private readonly db: Database.Database,
    private readonly key: SigningKey,
    private readonly logger: Logger,
    private readonly opts: AuditLogOptions,
  ) {
    ensureAuditSchema(db)
    // A second connection to the same file so the audit commits are FULL-synchronous while the
    // rest of the store keeps NORMAL. An in-memory database cannot be shared: use the handle.
    this.ownWriter = !db.memory
    this.writer = this.ownWriter ? new Database(db.name) : db
    if (this.ownWriter) {
      this.writer.pragma('busy_timeout = 5000')
      this.writer.pragma(`synchronous = ${this.synchronous}`)
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

    if (this.ownWriter && opts.commitThread === true) this.startCommitThread()

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
   * Resolves once the event is committed with fsync; rejects with AUDIT_UNAVAILABLE otherwise.
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
    return sth
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
    const thread = this.commitThread
    this.commitThread = undefined
    await thread?.terminate()
    for (const t of this.timers) clearInterval(t)
    try {
      this.checkpoint()
    } catch (err) {
      this.logger.error('final audit checkpoint failed', {error: String(err)})
    }
    await this.drainSinks(opts.sinkDrainMs ?? 2_000)
    for (const r of this.runners) r.stop()
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
    let failed: Error | undefined
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
    const thread = this.commitThread
    if (thread && rows.length > 0) {
      // One group in flight: appends made meanwhile queue up and form the next group.
      this.flushing = new Promise<void>((resolve) => {
        this.onCommitted = (error) => {
          this.onCommitted = undefined
          thread.unref()
          this.settle(batch, rows, seq, prev, error === null ? undefined : this.commitError(rows.length, error))
          this.flushing = undefined
          resolve()
          if (this.queue.length > 0) this.runBatch()
        }
      })
      thread.ref()
      const message = toGroupMessage(rows)
      thread.postMessage(message, [message.leaves])
      return
    }
    if (!failed) {
      try {
        this.commit(rows)
      } catch (err) {
        failed = this.commitError(rows.length, errorMessage(err))
      }
    }
    this.settle(batch, rows, seq, prev, failed)
    // Appends that arrived while this batch committed form the next group.
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

  private startCommitThread(): void {
    const thread = new Worker(COMMIT_THREAD, {
      eval: true,
      workerData: {file: this.writer.name, sqlite: createRequire(import.meta.url).resolve('better-sqlite3'), sql: INSERT_EVENT_POSITIONAL, synchronous: this.synchronous},
    })
    thread.unref()
    thread.on('message', (error: string | null) => this.onCommitted?.(error))
    const lost = (why: string) => {
      if (this.commitThread !== thread) return
      // Fall back to committing on the event loop; the group in flight (if any) is refused.
      this.logger.error('audit commit thread failed; committing on the main thread', {error: why})
      this.commitThread = undefined
      this.onCommitted?.(`commit thread failed: ${why}`)
      this.resyncHead()
    }
    thread.on('error', (err) => lost(err.message))
    thread.on('exit', (code) => lost(`exited with code ${code}`))
    this.commitThread = thread
  }

  /** After losing the commit thread mid-group: adopt rows it committed but could not acknowledge. */
  private resyncHead(): void {
    try {
      const rows = this.db.prepare('SELECT seq, hash, leaf FROM audit_events WHERE seq > ? ORDER BY seq').all(this.seq) as {seq: number; hash: string; leaf: Buffer}[]
      for (const r of rows) {
        this.frontier.push(r.leaf)
        this.seq = r.seq
        this.head = r.hash
      }
    } catch (err) {
      this.logger.error('audit head resync failed', {error: String(err)})
    }
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
