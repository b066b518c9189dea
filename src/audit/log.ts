// The audit writer. `append` resolves only once the event is durable: appends made in one turn of
// the event loop are gathered into one group commit, one transaction on a second connection with
// `synchronous = NORMAL` (the WAL frames are written to the OS, no fsync on the event loop). With
// the default durability the group is then made durable by an `fdatasync` of the `-wal` file on
// libuv's threadpool and acknowledged when it returns; while it is in flight the next appends
// gather (a large group is written at once), and the next fdatasync covers all of them
// (acknowledgements stay in order). Why this is as durable as a FULL commit: docs/audit.md
// "Durable without blocking the event loop".
// `durability: 'os'` acknowledges at the commit. The commit itself runs on the event loop
// (better-sqlite3 is synchronous); a worker thread for commits measured slower (bench/README.md).
// Each event is chained to its predecessor (prev_hash = SHA-256 of the predecessor's canonical
// JSON) and is a leaf of an RFC 6962 Merkle tree whose heads are signed with Ed25519 and
// checkpointed periodically and on close. If a commit fails, every append in it rejects with
// AUDIT_UNAVAILABLE and nothing is acknowledged: the gateway then refuses the statement (fail
// closed). Each signed head is published outside the store (anchors.ts): appended to the witness
// file, handed to every sink, and timestamped by an RFC 3161 authority when one is configured.
//
// The gateway opens its store only when it can vouch for it (`vouch`): the store must hold the
// last head published to the witness file and its own last checkpoint (vouch.ts). While it runs
// (`guardStore`), every group commit first checks that the database file is the one it opened and
// still ends with the last event it committed; a file swapped, removed or cut short turns the log
// into a refusal of every append (fail closed) and publishes the head it holds in memory to the
// witness, so the next start refuses the swapped store too.
import Database from 'better-sqlite3'
import {type KeyObject} from 'node:crypto'
import {closeSync, fdatasync, openSync, statSync} from 'node:fs'
import {errorMessage, HoopError} from '../shared/errors.js'
import {type Logger, silentLogger} from '../shared/log.js'
import {appendWitness, lastWitnessAnchor} from './anchors.js'
import type {AppendedEvent, AuditEvent} from './events.js'
import {loadSigningKey, publicKeyFromPem, type SignedTreeHead, signTreeHead, type SigningKey} from './keys.js'
import {EMPTY_ROOT, MerkleFrontier} from './merkle.js'
import {type EncodedEvent, encodeEvent} from './payloads.js'
import {expirePayloads, type RetentionPolicy, runRetentionBatches} from './retention.js'
import {type CheckpointRow, ensureAuditSchema} from './schema.js'
import {SessionLastTracker} from './session-marks.js'
import {type AuditSink, type BackoffOptions, SinkRunner, sqliteSinkStore} from './sinks.js'
import {HeadStamper, type TimestampOptions} from './stamper.js'
import {vouch as vouchFor} from './vouch.js'
import type {AcceptedStore, AuditWriter, Pending} from './writer.js'

export const GENESIS_HASH = '0'.repeat(64)
const MAX_BATCH = 20_000
/** Longest a deferred append waits for a group commit to ride with. */
const DEFER_MS = 20
/**
 * While an fdatasync is in flight, appends gather until this many wait, then are written at once
 * (pipelining); fewer are written when the fdatasync returns (see runBatch).
 */
const GATHER = 512

const INSERT_EVENT =
  'INSERT INTO audit_events (seq, time, kind, session, subject, connection, hash, prev_hash, leaf, body, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'

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
  /** Drop recording payloads of sessions that finished more than this many days ago (`retention.payloads['session.recording']`). */
  retentionDays?: number
  /**
   * Payload retention per kind and legal holds (retention.ts): run on open and every `intervalMs`
   * (default 1 h) in batches of RETENTION_BATCH, one short transaction each, yielding between them.
   */
  retention?: RetentionPolicy & {intervalMs?: number}
  /**
   * `fsync` (default): a group is acknowledged once fsync'd, so it survives a power loss.
   * `os`: acknowledged once written to the OS (WAL, synchronous NORMAL): survives a crash or
   * kill -9 of the gateway but not of the machine; far cheaper per statement on slow disks.
   */
  durability?: 'fsync' | 'os'
  /** Where each signed tree head is published besides the store and the sinks. */
  anchors?: AnchorOptions
  /**
   * Refuse (AUDIT_STORE_REFUSED) a store that is behind, forked from or replaces the log the
   * witness file's last head and the store's own last checkpoint describe. `acceptRollback` opens
   * it anyway (disaster recovery) and says why in `accepted`; the caller records it.
   */
  vouch?: {acceptRollback?: boolean}
  /** Before each group commit and every second: is the database file still the one opened, holding our last event? */
  guardStore?: boolean
  /** Append the events commands run on the data dir left in audit_pending (on open and every second). */
  absorbPending?: boolean
  /**
   * Test seam: how the `-wal` file is made durable (default `fs.fdatasync`). Tests hold or fail
   * it to show the acknowledgement order and the log failing closed; nothing else sets it.
   */
  syncWal?: (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void
}

export type {AcceptedStore} from './writer.js'

/** How often an idle gateway checks that its database file is still the one it opened. */
const GUARD_MS = 1000

class StoreChanged extends Error {}

/** SQLite errors that mean the file under the writer is not the database it wrote. */
const CORRUPT = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_IOERR_SHORT_READ', 'SQLITE_CORRUPT_VTAB', 'SQLITE_IOERR_READ'])

export interface AnchorOptions {
  /** Witness file: each signed head appended as one JSONL line and fsync'd (see anchors.ts). */
  witness?: string
  /** An RFC 3161 timestamp authority: each signed head's digest is stamped, the token kept. */
  timestamp?: TimestampOptions
}


/** A group committed to the WAL (written to the OS), waiting for the fdatasync that makes it durable. */
interface Group {
  batch: Pending[]
  rows: Row[]
  seq: number
  prev: string
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
  payload: string | null
}

export class AuditLog implements AuditWriter {
  private queue: Pending[] = []
  private scheduled = false
  private closed = false
  /** The last durable (acknowledged) event: what `size`, the Merkle frontier and signed heads describe. */
  private seq: number
  private head: string
  /** The last event written to the store (committed, maybe not yet durable): the next group chains after it. */
  private writtenSeq: number
  private writtenHead: string
  /** The `-wal` file, fdatasync'd off the event loop after each commit; undefined when commits are durable (or `os`) on their own. */
  private walFd?: number
  /** Groups written since the fdatasync in flight started, and that fdatasync. */
  private unsynced: Group[] = []
  private syncing?: Promise<void>
  private readonly frontier = new MerkleFrontier()
  private lastCheckpoint?: SignedTreeHead
  private readonly writer: Database.Database
  private readonly ownWriter: boolean
  private readonly commit: (rows: Row[]) => boolean
  /** The newest event time of each session, written to audit_session_last every few thousand events (session-marks.ts). */
  private readonly sessionLast: SessionLastTracker
  private readonly insertCheckpoint: Database.Statement
  private readonly runners: SinkRunner[]
  private readonly timers: NodeJS.Timeout[] = []
  private flushing?: Promise<void>
  private deferTimer?: NodeJS.Timeout
  private readonly insertAnchor: Database.Statement
  private readonly stamper?: HeadStamper
  /** Size of the newest head written to the witness file. */
  private witnessed = -1
  private writerClosed = false
  /** Set when the store may not be written any more (swapped, cut short): every append is refused with it. */
  private broken?: HoopError
  private fileId?: {dev: number; ino: number; size: number}
  /** Set when the store was opened with --accept-store-rollback, with the reason it was not vouched for. */
  readonly accepted?: AcceptedStore

  private constructor(
    private readonly db: Database.Database,
    private readonly key: SigningKey,
    private readonly logger: Logger,
    private readonly opts: AuditLogOptions,
  ) {
    ensureAuditSchema(db)
    // Rebuild the head and the Merkle frontier from what is stored, keeping the roots at the sizes
    // the store is vouched against: the witness file's last head and the store's last checkpoint.
    const last = db.prepare('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1').get() as {seq: number; hash: string} | undefined
    this.seq = last?.seq ?? 0
    this.head = last?.hash ?? GENESIS_HASH
    this.writtenSeq = this.seq
    this.writtenHead = this.head
    const cp = db.prepare('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1').get() as CheckpointRow | undefined
    const witnessFile = opts.anchors?.witness
    const tail = opts.vouch && witnessFile ? lastWitnessAnchor(witnessFile) : undefined
    const vouchSizes = new Set([tail?.state === 'ok' ? tail.anchor.tree_head.tree_size : -1, cp?.tree_size ?? -1])
    const roots = new Map<number, string>([[0, EMPTY_ROOT.toString('hex')]])
    for (const [leaf] of db.prepare('SELECT leaf FROM audit_events ORDER BY seq').raw().iterate() as IterableIterator<[Buffer]>) {
      this.frontier.push(leaf)
      if (vouchSizes.has(this.frontier.size)) roots.set(this.frontier.size, this.frontier.root().toString('hex'))
    }
    if (this.frontier.size !== this.seq) {
      throw new HoopError('AUDIT_UNAVAILABLE', `audit log has ${this.frontier.size} events but its last seq is ${this.seq}; run \`hoop audit verify --live\``)
    }
    if (cp) this.lastCheckpoint = {v: 1, ...cp}
    if (opts.vouch) {
      const refusal = this.vouchStore(key, cp, witnessFile, tail, roots)
      if (refusal && !opts.vouch.acceptRollback) {
        throw new HoopError(
          'AUDIT_STORE_REFUSED',
          `refusing to start on this audit store: ${refusal.message}. Put the right store back (hoop.db and its -wal file), or start with --accept-store-rollback to accept this one for disaster recovery (recorded as an audit event)`,
        )
      }
      if (refusal) {
        this.accepted = refusal
        logger.warn('starting on an audit store the gateway cannot vouch for, as --accept-store-rollback asks', {reason: refusal.message})
      }
    }

    // A second connection to the same file, so the audit commits get their own synchronous level
    // and checkpoint setting. In WAL mode it commits with NORMAL (no fsync in the commit) and the
    // default durability fdatasyncs the `-wal` file on the threadpool afterwards (syncGroups). On
    // a store not in WAL mode, FULL commits do the fsync themselves, on the event loop. An
    // in-memory database cannot be shared: use the handle.
    this.ownWriter = !db.memory
    let syncWal = false
    this.writer = this.ownWriter ? new Database(db.name) : db
    if (this.ownWriter) {
      this.writer.pragma('busy_timeout = 5000')
      const wal = this.writer.pragma('journal_mode', {simple: true}) === 'wal'
      this.writer.pragma(`synchronous = ${opts.durability === 'os' || wal ? 'NORMAL' : 'FULL'}`)
      syncWal = wal && opts.durability !== 'os'
    }
    const insert = this.writer.prepare(INSERT_EVENT)
    const lastRow = this.writer.prepare('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1')
    const guard = Boolean(opts.guardStore && !db.memory)
    this.sessionLast = new SessionLastTracker(this.writer)
    // Returns whether audit_session_last was written (up to the event before the group).
    this.commit = this.writer.transaction((rows: Row[]): boolean => {
      // The store must still end where this writer left it: another file, or one cut short or
      // rolled back under us, is not written to (and the batch is refused).
      if (guard && rows.length > 0) {
        const at = lastRow.get() as {seq: number; hash: string} | undefined
        if ((at?.seq ?? 0) !== rows[0].seq - 1 || (at?.hash ?? GENESIS_HASH) !== rows[0].prev_hash) {
          throw new StoreChanged(`the store ends at seq ${at?.seq ?? 0}${at ? ` (hash ${at.hash.slice(0, 12)}…)` : ''}, but this gateway committed up to seq ${rows[0].seq - 1}: the database was replaced, rolled back or cut short while the gateway ran`)
        }
      }
      // Positional parameters: binding by name looks up every key of every row.
      for (const r of rows) insert.run(r.seq, r.time, r.kind, r.session, r.subject, r.connection, r.hash, r.prev_hash, r.leaf, r.body, r.payload)
      if (rows.length === 0 || !this.sessionLast.due(rows[0].seq - 1)) return false
      this.sessionLast.write(rows[0].seq - 1)
      return true
    })
    this.insertCheckpoint = this.writer.prepare(
      'INSERT OR REPLACE INTO audit_checkpoints (tree_size, root_hash, head_hash, timestamp, key_fingerprint, signature) VALUES (@tree_size, @root_hash, @head_hash, @timestamp, @key_fingerprint, @signature)',
    )
    this.writer
      .prepare('INSERT OR IGNORE INTO audit_keys (fingerprint, public_pem, first_used_at) VALUES (?, ?, ?)')
      .run(key.fingerprint, key.publicPem, new Date().toISOString())
    // After a write on this connection, so the file exists. Any descriptor of the file's inode
    // will do: fdatasync flushes the inode's dirty pages, whoever wrote them.
    if (syncWal) this.walFd = openSync(`${db.name}-wal`, 'r')
    this.insertAnchor = this.writer.prepare(
      'INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at, token, gen_time) VALUES (?, ?, ?, ?, ?, ?, ?)',
    )
    // Offline commands (`hoop audit export --data-dir`) find the witness file here.
    if (witnessFile) this.writer.prepare("INSERT OR REPLACE INTO audit_meta (key, value) VALUES ('witness_path', ?)").run(witnessFile)
    if (opts.absorbPending) {
      setImmediate(() => this.absorbPending())
      const t = setInterval(() => this.absorbPending(), GUARD_MS)
      t.unref()
      this.timers.push(t)
    }
    if (guard) {
      const st = statSync(db.name)
      this.fileId = {dev: st.dev, ino: st.ino, size: st.size}
      const t = setInterval(() => {
        const problem = this.storeProblem()
        if (problem) this.breakStore(problem)
      }, GUARD_MS)
      t.unref()
      this.timers.push(t)
    }

    const sinkStore = sqliteSinkStore(db, () => this.seq)
    this.runners = (opts.sinks ?? []).map((s) => new SinkRunner(sinkStore, s, logger, opts.sinkBackoff))
    if (opts.anchors?.timestamp) {
      this.stamper = new HeadStamper(opts.anchors.timestamp, {
        record: (head, tsa, token, genTime) => void this.insertAnchor.run(head.tree_size, head.root_hash, 'tsa', tsa, new Date().toISOString(), token, genTime),
        witness: () => (witnessFile ? {file: witnessFile, size: this.witnessed} : undefined),
        open: () => !this.writerClosed,
      }, logger)
    }
    for (const r of this.runners) r.kick()

    const every = opts.checkpointEvery ?? {events: 10_000, ms: 60_000}
    if (every.ms > 0) {
      const t = setInterval(() => this.safeCheckpoint(), every.ms)
      t.unref()
      this.timers.push(t)
    }
    const retention = opts.retention ?? (opts.retentionDays !== undefined ? {payloads: {'session.recording': opts.retentionDays}} : undefined)
    if (retention && Object.keys(retention.payloads).length > 0) {
      setImmediate(() => void this.runRetention(retention))
      const t = setInterval(() => void this.runRetention(retention), retention.intervalMs ?? 3_600_000)
      t.unref()
      this.timers.push(t)
    }
  }

  private retaining?: Promise<{removed: number; recordings: number}>

  /**
   * Expires payloads and recordings past their retention, batch by batch (each batch one short
   * transaction and one audit.retention event, appended through audit_pending), yielding to the
   * event loop between batches so commits go on.
   */
  runRetention(policy: RetentionPolicy, now?: Date): Promise<{removed: number; recordings: number}> {
    this.retaining ??= runRetentionBatches(() => expirePayloads(this.db, policy, {now}), () => !this.closed && !this.broken, this.logger).finally(() => {
      this.retaining = undefined
    })
    return this.retaining
  }

  /** Appends the events commands and retention left in audit_pending now (they are also picked up every second). */
  async absorbPendingNow(): Promise<void> {
    this.absorbPending()
    await this.flush()
  }

  static open(opts: AuditLogOptions): AuditLog {
    const key = loadSigningKey({dataDir: opts.dataDir, key: opts.signingKey, keyFile: opts.signingKeyFile, create: true})!
    return new AuditLog(opts.db, key, opts.logger ?? silentLogger, opts)
  }

  get size(): number {
    return this.seq
  }

  /** Why every append is refused now (closed, or a store that cannot be vouched for); for /readyz. */
  get unavailable(): HoopError | undefined {
    return this.closed ? new HoopError('AUDIT_UNAVAILABLE', 'audit log is closed') : this.broken
  }

  get headHash(): string {
    return this.head
  }

  /** The Merkle root of every committed event, hex. */
  get rootHash(): string {
    return this.frontier.root().toString('hex')
  }

  /**
   * Resolves once the event is committed (fsync'd unless `durability: 'os'`); rejects with
   * AUDIT_UNAVAILABLE otherwise.
   * `defer: true` is for events nobody waits on (a statement's result, masking counts): the event
   * keeps its place in the chain but rides with the next group commit, or commits on its own after
   * DEFER_MS, so a statement costs one fsync on its path instead of two.
   * `overlap: true` is for a record whose statement is forwarded while it commits (audit mode
   * `hold`): its group commits one turn later, after the writes made in this turn have left (the
   * relay corks its socket until setImmediate), so the commit overlaps the statement's round trip.
   *
   * The event's place in the chain is fixed when `append` returns (the queue is committed in
   * order, group after group). A failed group refuses its events, and an event that cannot be
   * encoded is refused alone; later events still commit, right after the last committed one (no
   * gap). So whoever must not outlive a failed event (the gate's hold mode) chains its own promises.
   */
  append(event: AuditEvent, opts: {defer?: boolean; overlap?: boolean} = {}): Promise<AppendedEvent> {
    if (this.closed) return Promise.reject(new HoopError('AUDIT_UNAVAILABLE', 'audit log is closed; statements are refused'))
    if (this.broken) return Promise.reject(this.broken)
    return new Promise((resolve, reject) => {
      this.queue.push({event, resolve, reject})
      if (!opts.defer) this.schedule(opts.overlap)
      else this.deferTimer ??= setTimeout(this.onDeferTimer, DEFER_MS)
    })
  }

  /**
   * Whether a record placed now can be committed: false once the log is closed or refuses every
   * append. With `guardStore` it first checks (one stat) that the database file is still the one
   * opened, so a statement that will not wait for its commit (audit mode hold) is refused before it
   * runs when the store was swapped or cut short, as a waiting one is at its commit.
   */
  accepts(): boolean {
    if (this.closed || this.broken) return false
    const problem = this.storeProblem()
    if (problem) this.breakStore(problem)
    return this.broken === undefined
  }

  private readonly onDeferTimer = (): void => {
    this.deferTimer = undefined
    this.schedule()
  }

  /** Waits until everything appended so far is committed (or failed). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.flushing || this.syncing || this.unsynced.length > 0) {
      if (this.flushing) await this.flushing
      else if (this.syncing) await this.syncing
      else if (this.queue.length > 0) this.runBatch()
      else this.syncGroups()
    }
  }

  async signHead(): Promise<SignedTreeHead> {
    await this.flush()
    return this.checkpoint()
  }

  /** Signs the current tree head (committed events only) and stores it. */
  checkpoint(): SignedTreeHead {
    if (this.broken) throw this.broken
    // An accepted store's head is published (with its marker) even when it is already signed.
    const unpublished = this.accepted !== undefined && this.witnessed < 0
    if (!unpublished && this.lastCheckpoint && this.lastCheckpoint.tree_size === this.seq && this.lastCheckpoint.key_fingerprint === this.key.fingerprint) {
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
        // The first head after an accepted store says so: heads before it describe the old log.
        const accepted = this.accepted && this.witnessed < 0 ? {problem: this.accepted.kind, at: sth.timestamp} : undefined
        appendWitness(witness, {tree_head: sth, accepted})
        this.witnessed = sth.tree_size
        this.insertAnchor.run(sth.tree_size, sth.root_hash, 'witness', witness, new Date().toISOString(), null, null)
      } catch (err) {
        this.logger.error('audit witness file could not be written; the signed head is kept in the store and the sinks', {file: witness, error: errorMessage(err)})
      }
    }
    for (const r of this.runners) r.kick()
    this.stamper?.stamp(sth)
  }

  latestCheckpoint(): SignedTreeHead | undefined {
    return this.lastCheckpoint
  }

  async latestHead(): Promise<SignedTreeHead | undefined> {
    return this.lastCheckpoint
  }

  async recentAccess(limit: number): Promise<{seq: number; time: string; body: string}[]> {
    return this.db.prepare("SELECT seq, time, body FROM audit_events WHERE kind = 'audit.access' ORDER BY seq DESC LIMIT ?").all(limit) as {seq: number; time: string; body: string}[]
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
    if (!this.broken) {
      try {
        this.checkpoint()
      } catch (err) {
        this.logger.error('final audit checkpoint failed', {error: String(err)})
      }
    }
    await Promise.all([this.drainSinks(opts.sinkDrainMs ?? 2_000), this.stamper?.settled(), this.retaining])
    for (const r of this.runners) r.stop()
    this.writerClosed = true
    if (this.walFd !== undefined) {
      // The final checkpoint row (and any anchor) was committed with NORMAL: make it durable too.
      const fd = this.walFd
      if (!this.broken) {
        await new Promise<void>((resolve) =>
          (this.opts.syncWal ?? fdatasync)(fd, (err) => {
            if (err) this.logger.error('audit fdatasync on close failed; the final checkpoint may not survive a power loss', {error: errorMessage(err)})
            resolve()
          }),
        )
      }
      this.walFd = undefined
      closeSync(fd)
    }
    if (this.ownWriter) this.writer.close()
  }

  private safeCheckpoint(): void {
    try {
      this.checkpoint()
    } catch (err) {
      this.logger.error('audit checkpoint failed', {error: String(err)})
    }
  }

  private schedule(nextTurn = false): void {
    if (this.scheduled || this.flushing) return
    this.scheduled = true
    setImmediate(nextTurn ? this.runNextTurn : this.runScheduled)
  }

  private readonly runScheduled = (): void => {
    this.scheduled = false
    this.runBatch()
  }

  /** An immediate queued from an immediate runs in the next turn, after this turn's (the relay's uncork). */
  private readonly runNextTurn = (): void => {
    setImmediate(this.runScheduled)
  }

  private runBatch(): void {
    if (this.flushing || this.queue.length === 0) return
    // While an fdatasync is in flight, a few appends wait for it to return and are then written
    // as one group: they could not be acknowledged before the next fdatasync anyway, and each
    // commit writes every page it touches (the table's and the time index's last pages), so one
    // group of 8 writes a fraction of the WAL that 8 groups of one write, and the fdatasync and
    // the checkpoints have that much less to do. Many are written at once, so the encoding and
    // the commit of a large group overlap the fdatasync.
    if (this.syncing && this.queue.length < GATHER && !this.broken) return
    const problem = this.fileId && !this.broken ? this.storeProblem() : undefined
    if (problem) this.breakStore(problem)
    if (this.broken) {
      for (const p of this.queue.splice(0)) p.reject(this.broken)
      return
    }
    const taken = this.queue.splice(0, MAX_BATCH)
    const batch: Pending[] = []
    const rows: Row[] = []
    let seq = this.writtenSeq
    let prev = this.writtenHead
    for (const p of taken) {
      const e = p.event
      let enc: EncodedEvent
      try {
        enc = encodeEvent(e, seq + 1, prev)
      } catch (err) {
        p.reject(err as Error) // this event cannot be encoded; the others go on
        continue
      }
      seq++
      batch.push(p)
      rows.push({
        seq,
        time: e.time,
        kind: e.kind,
        session: e.session ?? null,
        subject: e.actor?.subject ?? null,
        connection: e.connection ?? null,
        hash: enc.hash,
        prev_hash: prev,
        leaf: enc.leaf,
        body: enc.body,
        payload: enc.payload ?? null,
      })
      prev = enc.hash
    }
    let failed: HoopError | undefined
    try {
      if (this.commit(rows)) this.sessionLast.written(this.writtenSeq)
      for (const r of rows) this.sessionLast.note(r.session, r.kind, r.time)
    } catch (err) {
      failed =
        err instanceof StoreChanged
          ? this.breakStore(err.message)
          : this.fileId && CORRUPT.has((err as {code?: string}).code ?? '')
            ? this.breakStore(`the database file ${this.db.name} is corrupt or was cut short (${errorMessage(err)})`)
            : this.commitError(rows.length, errorMessage(err))
    }
    if (failed) {
      for (const p of batch) p.reject(failed)
    } else {
      this.writtenSeq = seq
      this.writtenHead = prev
      const group = {batch, rows, seq, prev}
      if (this.walFd === undefined) this.settle(group)
      else {
        this.unsynced.push(group)
        this.syncGroups()
      }
    }
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

  /**
   * Compares the store with the head it must hold: the witness file's last head (published outside
   * the store) and the store's own last checkpoint. Returns why it cannot be vouched for, or undefined.
   */
  private vouchStore(key: SigningKey, cp: CheckpointRow | undefined, witness: string | undefined, tail: ReturnType<typeof lastWitnessAnchor> | undefined, roots: Map<number, string>): AcceptedStore | undefined {
    const keys = new Map((this.db.prepare('SELECT fingerprint, public_pem FROM audit_keys').all() as {fingerprint: string; public_pem: string}[]).map((r) => [r.fingerprint, r.public_pem]))
    const keyFor = (fp: string) => (fp === key.fingerprint ? key.publicKey : keys.has(fp) ? publicKeyFromPem(keys.get(fp)!) : undefined)
    const hashAt = this.db.prepare('SELECT hash FROM audit_events WHERE seq = ?')
    const view = {size: this.seq, rootAt: (m: number) => roots.get(m), hashAt: (m: number) => (hashAt.get(m) as {hash: string} | undefined)?.hash}
    const judge = (head: SignedTreeHead, where: string): AcceptedStore | undefined => {
      const v = vouchFor(view, head, keyFor, where)
      return v.ok ? undefined : {kind: v.kind, message: v.message, head, witness}
    }
    // Its own last checkpoint: a store cut short below what it signed itself.
    if (cp) {
      const own = judge({v: 1, ...cp}, 'its own last checkpoint')
      if (own && (own.kind === 'behind' || own.kind === 'forked')) return own
    }
    if (!witness || !tail) return undefined
    if (tail.state === 'absent' || tail.state === 'empty') {
      // No head published there yet, unless the store says otherwise: then the witness was removed.
      const rec = this.db.prepare("SELECT count(*) AS n, max(tree_size) AS m FROM audit_anchors WHERE kind = 'witness' AND target = ?").get(witness) as {n: number; m: number | null}
      if (rec.n === 0) return undefined
      return {kind: 'witness-missing', message: `the witness file ${witness} is ${tail.state === 'absent' ? 'missing' : 'empty'}, but this store records ${rec.n} tree head(s) published to it (the last of size ${rec.m}): the witness was removed or truncated, so the store cannot be checked`, witness}
    }
    if (tail.state === 'bad') return {kind: 'unverifiable', message: `the witness file ${witness} cannot be read: ${tail.reason}`, witness}
    if (tail.torn) this.logger.warn('the witness file ends with a line cut short (a crash while writing it); the line before it is used', {file: witness})
    return judge(tail.anchor.tree_head, `witness file ${witness}`)
  }

  private readonly absorbing = new Set<number>()

  /** Appends what commands run on the data dir noted (notePending), then forgets each once it is durable. */
  private absorbPending(): void {
    if (this.closed || this.broken) return
    let rows: {id: number; body: string}[]
    try {
      rows = this.db.prepare('SELECT id, body FROM audit_pending ORDER BY id LIMIT 100').all() as {id: number; body: string}[]
    } catch (err) {
      this.logger.error('could not read pending audit events', {error: errorMessage(err)})
      return
    }
    for (const {id, body} of rows) {
      if (this.absorbing.has(id)) continue
      this.absorbing.add(id)
      let event: AuditEvent
      try {
        event = JSON.parse(body) as AuditEvent
      } catch {
        this.logger.error('a pending audit event is not JSON; it is left in audit_pending', {id})
        continue
      }
      this.append(event)
        .then(() => {
          if (!this.writerClosed) this.writer.prepare('DELETE FROM audit_pending WHERE id = ?').run(id)
        })
        .catch((err) => this.logger.error('a pending audit event could not be appended; it stays pending', {id, error: errorMessage(err)}))
        .finally(() => this.absorbing.delete(id))
    }
  }

  /** Why the database file is no longer the one this log opened, or undefined. */
  private storeProblem(): string | undefined {
    const id = this.fileId
    if (!id) return undefined
    let st
    try {
      st = statSync(this.db.name)
    } catch (err) {
      return `the database file ${this.db.name} is gone (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`
    }
    if (st.dev !== id.dev || st.ino !== id.ino) return `the database file ${this.db.name} was replaced by another file while the gateway ran`
    // SQLite never shrinks the file here (no VACUUM, no auto_vacuum): a smaller file was cut short.
    if (st.size < id.size) return `the database file ${this.db.name} shrank from ${id.size} to ${st.size} bytes while the gateway ran (truncated)`
    id.size = st.size
    return undefined
  }

  /**
   * The store can no longer be trusted: every append from now on is refused (fail closed), the
   * sinks stop, and the head this log holds in memory (every acknowledged event) goes to the
   * witness file, so a restart on the swapped store is refused too.
   */
  private breakStore(reason: string): HoopError {
    if (this.broken) return this.broken
    this.broken = new HoopError('AUDIT_UNAVAILABLE', `the audit store cannot be vouched for: ${reason}; statements are refused until the gateway is restarted on the right store`)
    this.logger.error('audit store changed under the gateway; refusing every statement (fail closed)', {reason, committedSeq: this.seq})
    for (const r of this.runners) r.stop()
    const witness = this.opts.anchors?.witness
    if (witness && this.seq > 0 && this.witnessed < this.seq) {
      try {
        const sth = signTreeHead({tree_size: this.seq, root_hash: this.frontier.root().toString('hex'), head_hash: this.head, timestamp: new Date().toISOString()}, this.key)
        appendWitness(witness, {tree_head: sth})
        this.witnessed = sth.tree_size
      } catch (err) {
        this.logger.error('could not publish the in-memory tree head to the witness file', {file: witness, error: errorMessage(err)})
      }
    }
    return this.broken
  }

  private commitError(events: number, message: string): HoopError {
    this.logger.error('audit commit failed; refusing the statements in this batch', {events, error: message})
    return new HoopError('AUDIT_UNAVAILABLE', `audit store cannot write (${message}); the statement is refused`)
  }

  /**
   * Makes the groups written so far durable: one fdatasync of the `-wal` file on libuv's
   * threadpool, then their acknowledgements, in order. One fdatasync is in flight at a time; the
   * groups written meanwhile wait for the next one, which starts as soon as it returns (so a
   * group waits at most for the end of one fdatasync and the whole of the next).
   */
  private syncGroups(): void {
    if (this.syncing || this.unsynced.length === 0 || this.walFd === undefined) return
    const groups = this.unsynced.splice(0)
    const sync = this.opts.syncWal ?? fdatasync
    this.syncing = new Promise<void>((resolve) => {
      sync(this.walFd!, (err) => {
        this.syncing = undefined
        if (err) this.failDurability(groups, err)
        else {
          // What gathered meanwhile is written first, so the next fdatasync starts at once.
          this.runBatch()
          for (const g of groups) this.settle(g)
        }
        resolve()
        this.syncGroups()
      })
    })
  }

  /**
   * A failed fdatasync: the written pages may be lost, and a retry cannot tell (Linux may mark
   * them clean after reporting the error once). So the groups it covered are refused, and so is
   * every append after them until the gateway restarts (fail closed); signed heads stay at the
   * last durable event.
   */
  private failDurability(groups: Group[], err: NodeJS.ErrnoException): void {
    const waiting = groups.concat(this.unsynced.splice(0))
    if (!this.broken) {
      this.broken = new HoopError('AUDIT_UNAVAILABLE', `audit store could not make its records durable (fdatasync of the WAL failed: ${err.code ?? errorMessage(err)}); statements are refused until the gateway is restarted`)
      this.logger.error('audit fdatasync failed; refusing every statement (fail closed)', {error: errorMessage(err), durableSeq: this.seq, writtenSeq: this.writtenSeq})
      for (const r of this.runners) r.stop()
    }
    for (const g of waiting) for (const p of g.batch) p.reject(this.broken)
    for (const p of this.queue.splice(0)) p.reject(this.broken)
  }

  /** Acknowledges a durable group and moves the durable head (the Merkle frontier, `size`, what checkpoints sign). */
  private settle({batch, rows, seq, prev}: Group): void {
    for (const r of rows) this.frontier.push(r.leaf)
    this.seq = seq
    this.head = prev
    for (let i = 0; i < batch.length; i++) batch[i].resolve({seq: rows[i].seq, hash: rows[i].hash, body: rows[i].body})
    const every = this.opts.checkpointEvery?.events ?? 10_000
    if (every > 0 && this.seq - (this.lastCheckpoint?.tree_size ?? 0) >= every) this.safeCheckpoint()
    for (const r of this.runners) r.kick()
  }
}
