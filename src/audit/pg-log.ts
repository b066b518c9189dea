// The audit writer on the PostgreSQL store: one log, one total order, for every replica that
// shares the store (docs/ha.md, "One audit log across replicas"). The events, hash chain and
// Merkle tree are those of log.ts; what changes is where the head lives. Each group commit is one
// transaction:
//
//   SELECT ... FROM audit_head FOR UPDATE     replicas queue here, so commits are serialised
//   number the batch from seq + 1, chain prev_hash from head_hash, push the leaves on the frontier
//   INSERT INTO audit_events ... unnest(...)  one statement for the whole batch
//   sign a tree head if the batch crosses the checkpoint interval (this replica's key)
//   UPDATE audit_head; COMMIT                 `append` resolves only now
//
// The head is read under the lock on every commit and never trusted from memory: another replica
// may have committed in between. One batch is in flight per writer; what is appended meanwhile
// gathers and forms the next group, so a replica pays one round trip per group, not per event.
// A failed transaction rejects every append of its batch with AUDIT_UNAVAILABLE (fail closed),
// and the next batch tries again: the gateway keeps running and the store decides.
//
// A replica another took for dead (replicas.ts: its heartbeat stalled, and its open sessions were
// ended in this log) must not add to those sessions afterwards. So once `fence` is set, each group
// commit first takes a share lock on this replica's `replicas` row of the current incarnation:
// the replica ending it holds that row FOR UPDATE while it ends the sessions and deletes it, so a
// commit either lands before the ends, or finds no row and is refused (AUDIT_UNAVAILABLE). The row
// is locked before the head, as the reaper does, so the two never wait on each other in a cycle.
//
// Heads this replica signs are appended to its own witness file (anchors.ts) and, when a
// timestamp authority is configured, stamped in the background (stamper.ts, anchors kind 'tsa');
// on start it refuses a store that is behind or forked from that file's last head, or from the
// store's newest checkpoint (vouch.ts).
//
// The background jobs every replica is configured with, but only one runs at a time: each sink
// (pg-sinks.ts) and payload retention (pg-retention.ts). Whichever replica holds the job's
// advisory lock on its lock connection (pg-locks.ts) runs it; the others try again every
// `jobPollMs` and take over when the holder dies. Sink cursors live in the store.
import {errorMessage, HoopError} from '../shared/errors.js'
import {type Logger, silentLogger} from '../shared/log.js'
import type {PgLockSession} from '../store/pg-locks.js'
import type {PostgresStore} from '../store/postgres.js'
import type {Row} from '../store/rows.js'
import {appendWitness, lastWitnessAnchor} from './anchors.js'
import type {AppendedEvent, AuditEvent} from './events.js'
import {loadSigningKey, publicKeyFromPem, type SignedTreeHead, signTreeHead, type SigningKey} from './keys.js'
import {EMPTY_ROOT, MerkleFrontier} from './merkle.js'
import {type Head, headFrom, insertEvents, LOCK_HEAD, type Query, saveHead} from './pg-append.js'
import {expirePayloadsPg} from './pg-retention.js'
import {pgSinkStore} from './pg-sinks.js'
import {type RetentionPolicy, runRetentionBatches} from './retention.js'
import {type AuditSink, type BackoffOptions, SinkRunner} from './sinks.js'
import {HeadStamper, type TimestampOptions} from './stamper.js'
import {vouch as vouchFor} from './vouch.js'
import type {AcceptedStore, AuditWriter, Pending} from './writer.js'

/** The advisory lock job of payload retention (pg-locks.ts). */
const RETENTION_JOB = 'audit.retention'
/** Events in one group commit: bounds the statement's size and the time the head row is held. */
const MAX_BATCH = 2_000
/** Longest a deferred append waits for a group commit to ride with. */
const DEFER_MS = 20
/** Leaves read per query when the frontier is rebuilt on start (bounded memory). */
const LEAF_PAGE = 10_000

export interface PgAuditLogOptions {
  store: PostgresStore
  dataDir: string
  signingKeyFile?: string
  logger?: Logger
  /** Sign a tree head after this many new events (inside the commit that crosses it) or this many ms. */
  checkpointEvery?: {events: number; ms: number}
  /** This replica's witness file (every head it signs is appended there), and a TSA stamping those heads. */
  anchors?: {witness?: string; timestamp?: TimestampOptions}
  /** Sinks: each driven by one replica at a time, from its cursor in the store. */
  sinks?: AuditSink[]
  sinkBackoff?: BackoffOptions
  /** Payload retention per kind and legal holds, run by one replica at a time every `intervalMs` (default 1 h). */
  retention?: RetentionPolicy & {intervalMs?: number}
  /** How often a replica looks for events other replicas committed and for jobs whose driver died (default 1 s). */
  jobPollMs?: number
  /** Refuse (AUDIT_STORE_REFUSED) a store behind or forked from what was published; see log.ts. */
  vouch?: {acceptRollback?: boolean}
}

/** This replica's row of one incarnation (replicas.ts): commits are refused once it is gone. */
export interface ReplicaFence {
  replica: string
  /** started_at of the row, in microseconds since the epoch: a re-registered row is another one. */
  epoch: string
  /** Called once when a commit finds the row gone: the replica must end its live sessions. */
  onFenced: () => void
}

/** started_at as whole microseconds: exact, unlike a JavaScript Date. */
export const REPLICA_EPOCH = '(extract(epoch from started_at) * 1000000)::bigint::text'
const FENCED = 'this replica was taken for dead by another (its heartbeat stalled) and its open sessions were ended in the audit log'
/** The epoch of a fenced replica's row: matches no row, so every commit is refused until it registers again. */
const FENCED_EPOCH = 'fenced'
const LOCK_OWN_ROW = `SELECT 1 FROM replicas WHERE id = $1 AND ${REPLICA_EPOCH} = $2 FOR SHARE`

function checkpointFrom(r: Row): SignedTreeHead {
  return {v: 1, tree_size: Number(r.tree_size), root_hash: r.root_hash as string, head_hash: r.head_hash as string, timestamp: r.timestamp as string, key_fingerprint: r.key_fingerprint as string, signature: r.signature as string}
}

async function newestCheckpoint(store: PostgresStore): Promise<SignedTreeHead | undefined> {
  const [row] = await store.query('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1')
  return row ? checkpointFrom(row) : undefined
}

export class PgAuditLog implements AuditWriter {
  private queue: Pending[] = []
  private scheduled = false
  private running?: Promise<void>
  private deferTimer?: NodeJS.Timeout
  private closed = false
  /** Why the last group commit failed, until one succeeds again (for /readyz). */
  private failure?: HoopError
  private fence?: ReplicaFence
  /** Bumped whenever the fence changes: a session belongs to the incarnation it started in. */
  private incarnation = 0
  /** Open sessions started here under a fence, with their incarnation (bounded by open sessions). */
  private readonly sessionIncarnation = new Map<string, number>()
  private readonly timers: NodeJS.Timeout[] = []
  /** The head at this writer's last commit: a cache for `size`/`rootHash`, never used to write. */
  private seen: {seq: number; root: string}
  /** Size of the newest head written to the witness file. */
  private witnessed = -1
  private publishing = Promise.resolve()
  private readonly locks?: PgLockSession
  private readonly runners: SinkRunner[] = []
  private readonly stamper?: HeadStamper
  private retaining?: Promise<{removed: number; recordings: number}>

  private constructor(
    private readonly store: PostgresStore,
    private readonly key: SigningKey,
    private readonly logger: Logger,
    private readonly opts: PgAuditLogOptions,
    head: Head,
    readonly accepted: AcceptedStore | undefined,
  ) {
    this.seen = {seq: head.seq, root: head.frontier.root().toString('hex')}
    const retention = opts.retention && Object.keys(opts.retention.payloads).length > 0 ? opts.retention : undefined
    const pollMs = opts.jobPollMs ?? 1000
    if (opts.sinks?.length || retention) this.locks = store.lockSession(logger.child({component: 'audit-jobs'}))
    if (this.locks && opts.sinks?.length) {
      const sinkStore = pgSinkStore(store, this.locks)
      this.runners = opts.sinks.map((s) => new SinkRunner(sinkStore, s, logger, opts.sinkBackoff, pollMs))
      for (const r of this.runners) r.kick()
    }
    if (retention) {
      setImmediate(() => void this.runRetention(retention))
      // Tried every poll while another replica holds it (to take over when it dies), run every interval.
      let last = Date.now()
      const t = setInterval(() => {
        if (this.locks?.holds(RETENTION_JOB) && Date.now() - last < (retention.intervalMs ?? 3_600_000)) return
        last = Date.now()
        void this.runRetention(retention)
      }, Math.min(pollMs * 5, retention.intervalMs ?? 3_600_000))
      t.unref()
      this.timers.push(t)
    }
    const tsa = opts.anchors?.timestamp
    if (tsa) {
      this.stamper = new HeadStamper(tsa, {
        record: async (h, url, token, genTime) => {
          await this.store.query('INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at, token, gen_time) VALUES ($1, $2, $3, $4, $5, $6, $7)', [h.tree_size, h.root_hash, 'tsa', url, new Date().toISOString(), token, genTime])
        },
        witness: () => (opts.anchors?.witness ? {file: opts.anchors.witness, size: this.witnessed} : undefined),
      }, logger)
    }
    const every = opts.checkpointEvery ?? {events: 10_000, ms: 60_000}
    if (every.ms > 0) {
      const t = setInterval(() => void this.checkpointIfNew(false).catch((err) => this.logger.error('audit checkpoint failed', {error: errorMessage(err)})), every.ms)
      t.unref()
      this.timers.push(t)
    }
  }

  /**
   * Records this replica's key, rebuilds the Merkle tree from the stored leaves to check it against
   * the head row, and vouches for the store against the witness file and the newest checkpoint.
   */
  static async open(opts: PgAuditLogOptions): Promise<PgAuditLog> {
    const key = loadSigningKey({dataDir: opts.dataDir, keyFile: opts.signingKeyFile, create: true})!
    const logger = opts.logger ?? silentLogger
    const {store} = opts
    await store.query('INSERT INTO audit_keys (fingerprint, public_pem, first_used_at) VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING', [key.fingerprint, key.publicPem, new Date().toISOString()])
    const [headRow] = await store.query('SELECT seq, head_hash, frontier, checkpoint_size FROM audit_head WHERE id = 1')
    if (!headRow) throw new HoopError('AUDIT_UNAVAILABLE', 'the audit head row is missing from the store (audit_head); run `hoop audit verify --live`')
    const head = headFrom(headRow)
    const cp = await newestCheckpoint(store)
    const witnessFile = opts.anchors?.witness
    const tail = opts.vouch && witnessFile ? lastWitnessAnchor(witnessFile) : undefined
    const wanted = new Set([tail?.state === 'ok' ? tail.anchor.tree_head.tree_size : -1, cp?.tree_size ?? -1])
    const {roots, hashes} = await rebuild(store, head, wanted)

    let accepted: AcceptedStore | undefined
    if (opts.vouch) {
      const keys = new Map((await store.query('SELECT fingerprint, public_pem FROM audit_keys')).map((r) => [r.fingerprint as string, r.public_pem as string]))
      const keyFor = (fp: string) => (fp === key.fingerprint ? key.publicKey : keys.has(fp) ? publicKeyFromPem(keys.get(fp)!) : undefined)
      const view = {size: head.seq, rootAt: (m: number) => roots.get(m), hashAt: (m: number) => hashes.get(m)}
      const judge = (h: SignedTreeHead, where: string): AcceptedStore | undefined => {
        const v = vouchFor(view, h, keyFor, where)
        return v.ok ? undefined : {kind: v.kind, message: v.message, head: h, witness: witnessFile}
      }
      const own = cp && judge(cp, 'the store\'s newest checkpoint')
      if (own && (own.kind === 'behind' || own.kind === 'forked')) accepted = own
      else if (witnessFile && tail) accepted = await judgeWitness(store, key, witnessFile, tail, judge, logger)
      if (accepted && !opts.vouch.acceptRollback) {
        throw new HoopError(
          'AUDIT_STORE_REFUSED',
          `refusing to start on this audit store: ${accepted.message}. Point the gateway at the right PostgreSQL store, or start with --accept-store-rollback to accept this one for disaster recovery (recorded as an audit event)`,
        )
      }
      if (accepted) logger.warn('starting on an audit store the gateway cannot vouch for, as --accept-store-rollback asks', {reason: accepted.message})
    }
    return new PgAuditLog(store, key, logger, opts, head, accepted)
  }

  get size(): number {
    return this.seen.seq
  }

  get rootHash(): string {
    return this.seen.root
  }

  get unavailable(): HoopError | undefined {
    return this.closed ? new HoopError('AUDIT_UNAVAILABLE', 'audit log is closed') : this.failure
  }

  accepts(): boolean {
    return !this.closed
  }

  /** As AuditLog.append: `defer` rides with the next group (or commits after DEFER_MS), `overlap` commits one turn later. */
  append(event: AuditEvent, opts: {defer?: boolean; overlap?: boolean} = {}): Promise<AppendedEvent> {
    if (this.closed) return Promise.reject(new HoopError('AUDIT_UNAVAILABLE', 'audit log is closed; statements are refused'))
    return new Promise((resolve, reject) => {
      this.queue.push({event, resolve, reject})
      if (!opts.defer) this.schedule(opts.overlap)
      else this.deferTimer ??= setTimeout(this.onDeferTimer, DEFER_MS)
    })
  }

  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.running) {
      if (this.running) await this.running
      else this.runBatch()
    }
  }

  /** Commits what is queued, then signs the head unless a checkpoint (of any replica) already covers it. */
  async signHead(): Promise<SignedTreeHead> {
    await this.flush()
    return this.checkpointIfNew(true)
  }

  latestHead(): Promise<SignedTreeHead | undefined> {
    return newestCheckpoint(this.store)
  }

  async recentAccess(limit: number): Promise<{seq: number; time: string; body: string}[]> {
    const rows = await this.store.query("SELECT seq, time, body FROM audit_events WHERE kind = 'audit.access' ORDER BY seq DESC LIMIT $1", [limit])
    return rows.map((r) => ({seq: Number(r.seq), time: r.time as string, body: r.body as string}))
  }

  /** A session's start and end events and the time of its last event (closing sessions a crash cut). */
  async sessionMarks(session: string): Promise<{rows: {kind: string; body: string}[]; last: string | null}> {
    const rows = await this.store.query("SELECT kind, body FROM audit_events WHERE session = $1 AND kind IN ('session.start', 'session.end') ORDER BY seq", [session])
    const [last] = await this.store.query('SELECT max(time) AS t FROM audit_events WHERE session = $1', [session])
    return {rows: rows.map((r) => ({kind: r.kind as string, body: r.body as string})), last: (last?.t as string | null) ?? null}
  }

  /** This replica's witness file, if any. */
  get witnessPath(): string | undefined {
    return this.opts.anchors?.witness
  }

  /** The store the log is on (export and verify take a snapshot of it). */
  get pgStore(): PostgresStore {
    return this.store
  }

  publicKeyPem(): string {
    return this.key.publicPem
  }

  fingerprint(): string {
    return this.key.fingerprint
  }

  keyDocument(): {algorithm: 'Ed25519'; publicKey: string; fingerprint: string} {
    return {algorithm: 'Ed25519', publicKey: this.key.publicPem, fingerprint: this.key.fingerprint}
  }

  /**
   * Expires payloads and recordings past their retention, batch by batch (pg-retention.ts), when
   * this replica holds the retention job's lock (or gets it now); otherwise another replica runs it.
   */
  runRetention(policy: RetentionPolicy, now?: Date): Promise<{removed: number; recordings: number}> {
    this.retaining ??= (async () => {
      try {
        if (!this.locks || (await this.locks.claim(RETENTION_JOB)) === 'taken') return {removed: 0, recordings: 0}
      } catch (err) {
        this.logger.warn('audit retention: the store could not be asked who runs it; tried again later', {error: errorMessage(err)})
        return {removed: 0, recordings: 0}
      }
      const locks = this.locks
      return runRetentionBatches(() => expirePayloadsPg(this.store, policy, {now}), () => !this.closed && locks.holds(RETENTION_JOB), this.logger)
    })().finally(() => {
      this.retaining = undefined
    })
    return this.retaining
  }

  /** Sink positions as this replica sees them, and whether it drives each; for metrics and tests. */
  sinkStatus(): {name: string; position: number; attempts: number; active: boolean}[] {
    return this.runners.map((r) => ({name: r.sink.name, position: r.position, attempts: r.attempts, active: r.active}))
  }

  /** Resolves when every sink this replica drives has caught up (or the timeout passes). */
  async drainSinks(timeoutMs = 5_000): Promise<boolean> {
    return (await Promise.all(this.runners.map((r) => r.drain(timeoutMs)))).every(Boolean)
  }

  /**
   * Commits what is queued, signs a final head, gives the sinks this replica drives a moment to
   * catch up, and lets go of its jobs (another replica takes them); the store (its pool) is the
   * caller's to close.
   */
  async close(opts: {sinkDrainMs?: number} = {}): Promise<void> {
    if (this.closed) return
    await this.flush()
    this.closed = true
    clearTimeout(this.deferTimer)
    for (const t of this.timers) clearInterval(t)
    try {
      await this.checkpointIfNew(false)
    } catch (err) {
      this.logger.error('final audit checkpoint failed', {error: errorMessage(err)})
    }
    await Promise.all([this.drainSinks(opts.sinkDrainMs ?? 2_000), this.publishing, this.stamper?.settled(), this.retaining])
    for (const r of this.runners) r.stop()
    await this.locks?.close()
  }

  private readonly onDeferTimer = (): void => {
    this.deferTimer = undefined
    this.schedule()
  }

  private schedule(nextTurn = false): void {
    if (this.scheduled || this.running) return
    this.scheduled = true
    // An immediate queued from an immediate runs in the next turn, after this turn's writes left.
    setImmediate(nextTurn ? () => setImmediate(this.runScheduled) : this.runScheduled)
  }

  private readonly runScheduled = (): void => {
    this.scheduled = false
    this.runBatch()
  }

  private runBatch(): void {
    if (this.running || this.queue.length === 0) return
    const taken = this.queue.splice(0, MAX_BATCH)
    this.running = this.commit(taken).finally(() => {
      this.running = undefined
      // What gathered while this group was in flight is the next group.
      if (this.queue.length > 0) this.runBatch()
    })
  }

  /** One group commit: the transaction in the header comment. Never rejects; settles every append. */
  private async commit(taken: Pending[]): Promise<void> {
    const every = this.opts.checkpointEvery?.events ?? 10_000
    let settled: {rows: AppendedEvent[]; batch: Pending[]; bad: [Pending, Error][]; head: Head; signed?: SignedTreeHead} | undefined
    try {
      settled = await this.store.transaction(async (q) => {
        await this.checkFence(q)
        const head = headFrom((await q(LOCK_HEAD))[0])
        // Events of a session this replica started before it was fenced are refused, not numbered.
        const live: Pending[] = []
        const refused: [Pending, Error][] = []
        for (const p of taken) {
          if (this.staleSession(p.event)) refused.push([p, new HoopError('AUDIT_UNAVAILABLE', `${FENCED}; the session is over`)])
          else live.push(p)
        }
        const {rows, ok, bad} = await insertEvents(q, head, live.map((p) => p.event))
        const batch = ok.map((i) => live[i])
        for (const [i, err] of bad) refused.push([live[i], err])
        if (rows.length === 0) return {rows, batch, bad: refused, head}
        let signed: SignedTreeHead | undefined
        if (every > 0 && head.seq - head.checkpointSize >= every) signed = await this.signLocked(q, head)
        await saveHead(q, head)
        return {rows, batch, bad: refused, head, signed}
      })
    } catch (err) {
      const failed = err instanceof HoopError && err.code === 'AUDIT_UNAVAILABLE' ? err : new HoopError('AUDIT_UNAVAILABLE', `audit store cannot write (${errorMessage(err)}); the statement is refused`)
      this.failure = failed
      this.logger.error('audit commit failed; refusing the statements in this batch', {events: taken.length, error: failed.message})
      for (const p of taken) p.reject(failed)
      return
    }
    this.failure = undefined
    for (const [p, err] of settled.bad) p.reject(err)
    for (let i = 0; i < settled.batch.length; i++) settled.batch[i].resolve(settled.rows[i])
    if (settled.rows.length > 0) this.seen = {seq: settled.head.seq, root: settled.head.frontier.root().toString('hex')}
    if (settled.signed) this.publish(settled.signed)
    for (const r of this.runners) r.kick()
  }

  /**
   * From now on every commit needs this replica's row of this incarnation (header comment);
   * undefined lifts the fence (a log with no replicas table, as in the conformance tests).
   */
  setFence(fence: ReplicaFence | undefined): void {
    this.fence = fence
    this.incarnation++
    if (fence && this.failure?.message.startsWith(FENCED)) this.failure = undefined
  }

  /** Inside a commit: refuses it when this replica's row is gone (another ended its sessions). */
  private async checkFence(q: (sql: string, args?: unknown[]) => Promise<Row[]>): Promise<void> {
    const fence = this.fence
    if (!fence) return
    const [own] = await q(LOCK_OWN_ROW, [fence.replica, fence.epoch])
    if (own) return
    if (this.fence === fence && fence.epoch !== FENCED_EPOCH) {
      this.fence = {...fence, epoch: FENCED_EPOCH}
      this.incarnation++
      fence.onFenced()
    }
    throw new HoopError('AUDIT_UNAVAILABLE', `${FENCED}; the statement is refused`)
  }

  /**
   * Whether `e` belongs to a session this replica started before it was fenced: such a session
   * was ended in the log by another replica, so nothing more of it may be recorded (a statement
   * queued before the fence, its own session.end while it is being closed). Called inside a
   * commit, after the fence was checked; sessions started elsewhere (ended here as a dead
   * replica's) are not this replica's to judge.
   */
  private staleSession(e: AuditEvent): boolean {
    if (!this.fence || !e.session) return false
    if (e.kind === 'session.start') {
      this.sessionIncarnation.set(e.session, this.incarnation)
      return false
    }
    const started = this.sessionIncarnation.get(e.session)
    if (e.kind === 'session.end') this.sessionIncarnation.delete(e.session)
    return started !== undefined && started !== this.incarnation
  }

  /**
   * For /readyz after a failed group commit: the same locks as a commit and a write of the head
   * row that changes nothing. A success clears the failure, so a replica whose store recovered
   * while no statement was running becomes ready again.
   */
  async probe(): Promise<void> {
    if (!this.failure || this.closed) return
    try {
      await this.store.transaction(async (q) => {
        await this.checkFence(q)
        await q(LOCK_HEAD)
        await q('UPDATE audit_head SET seq = seq WHERE id = 1')
      })
      this.failure = undefined
    } catch (err) {
      this.failure = err instanceof HoopError && err.code === 'AUDIT_UNAVAILABLE' ? err : new HoopError('AUDIT_UNAVAILABLE', `audit store cannot write (${errorMessage(err)})`)
    }
  }

  /** Signs the locked head with this replica's key and stores the checkpoint (the caller updates the head row). */
  private async signLocked(q: Query, head: Head): Promise<SignedTreeHead> {
    const sth = signTreeHead({tree_size: head.seq, root_hash: head.frontier.root().toString('hex'), head_hash: head.hash, timestamp: new Date().toISOString()}, this.key)
    await q(
      'INSERT INTO audit_checkpoints (tree_size, root_hash, head_hash, timestamp, key_fingerprint, signature) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tree_size) DO NOTHING',
      [sth.tree_size, sth.root_hash, sth.head_hash, sth.timestamp, sth.key_fingerprint, sth.signature],
    )
    head.checkpointSize = head.seq
    return sth
  }

  /**
   * Signs the head when no checkpoint covers it yet (the interval timer, close, the API's export).
   * `wanted`: return the checkpoint that already covers the head (any replica's) rather than nothing.
   */
  private async checkpointIfNew(wanted: true): Promise<SignedTreeHead>
  private async checkpointIfNew(wanted: false): Promise<SignedTreeHead | undefined>
  private async checkpointIfNew(wanted: boolean): Promise<SignedTreeHead | undefined> {
    const r = await this.store.transaction(async (q) => {
      const head = headFrom((await q(LOCK_HEAD))[0])
      if (head.seq > head.checkpointSize || (head.seq === 0 && wanted)) {
        const signed = await this.signLocked(q, head)
        await q('UPDATE audit_head SET checkpoint_size = $1 WHERE id = 1', [head.checkpointSize])
        return {signed, head}
      }
      if (!wanted) return {head}
      const [cp] = await q('SELECT * FROM audit_checkpoints WHERE tree_size = $1', [head.seq])
      return {existing: cp ? checkpointFrom(cp) : await this.signLocked(q, head), head}
    })
    this.seen = {seq: r.head.seq, root: r.head.frontier.root().toString('hex')}
    if (r.signed) this.publish(r.signed)
    // An accepted store's head goes to the witness even when another replica signed it: the next
    // start vouches against the witness's last line.
    else if (r.existing && this.accepted && this.witnessed < 0) this.publish(r.existing)
    return r.signed ?? r.existing
  }

  /**
   * Appends a head this replica signed to its witness file (fsync'd, at once) and records the
   * anchor in the store. A failure is logged: the head is still in the store.
   */
  private publish(sth: SignedTreeHead): void {
    for (const r of this.runners) r.kick()
    const witness = this.opts.anchors?.witness
    if (!witness || sth.tree_size === 0 || sth.tree_size <= this.witnessed) {
      if (sth.tree_size > this.witnessed) this.stamper?.stamp(sth)
      return
    }
    try {
      const accepted = this.accepted && this.witnessed < 0 ? {problem: this.accepted.kind, at: sth.timestamp} : undefined
      appendWitness(witness, {tree_head: sth, accepted})
      this.witnessed = sth.tree_size
    } catch (err) {
      this.logger.error('audit witness file could not be written; the signed head is kept in the store', {file: witness, error: errorMessage(err)})
      return
    }
    this.stamper?.stamp(sth)
    this.publishing = this.publishing
      .then(() => this.store.query('INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at) VALUES ($1, $2, $3, $4, $5)', [sth.tree_size, sth.root_hash, 'witness', witness, new Date().toISOString()]))
      .then(
        () => undefined,
        (err) => this.logger.warn('the witness anchor was not recorded in the store', {error: errorMessage(err)}),
      )
  }
}

/**
 * Streams every leaf (keyset pages, bounded memory), checks that they rebuild the head row's
 * frontier, and keeps the roots and chain hashes at the sizes the store is vouched against.
 */
async function rebuild(store: PostgresStore, head: Head, wanted: Set<number>): Promise<{roots: Map<number, string>; hashes: Map<number, string>}> {
  const roots = new Map<number, string>([[0, EMPTY_ROOT.toString('hex')]])
  const hashes = new Map<number, string>()
  const frontier = new MerkleFrontier()
  let last = 0
  for (;;) {
    const page = await store.query('SELECT seq, hash, leaf FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [last, LEAF_PAGE])
    for (const r of page) {
      const seq = Number(r.seq)
      if (seq !== frontier.size + 1) throw new HoopError('AUDIT_UNAVAILABLE', `the audit log in the store goes from seq ${frontier.size} to ${seq} (an event is missing); run \`hoop audit verify --live\``)
      frontier.push(r.leaf as Buffer)
      if (wanted.has(seq)) {
        roots.set(seq, frontier.root().toString('hex'))
        hashes.set(seq, r.hash as string)
      }
      last = seq
    }
    if (page.length < LEAF_PAGE) break
  }
  if (frontier.size !== head.seq || !frontier.root().equals(head.frontier.root())) {
    throw new HoopError('AUDIT_UNAVAILABLE', `the audit head row (seq ${head.seq}) does not match the ${frontier.size} stored events; run \`hoop audit verify --live\``)
  }
  return {roots, hashes}
}

/** The witness file's last head against the store; a missing witness is judged by the anchors this key recorded. */
async function judgeWitness(
  store: PostgresStore,
  key: SigningKey,
  witness: string,
  tail: ReturnType<typeof lastWitnessAnchor>,
  judge: (h: SignedTreeHead, where: string) => AcceptedStore | undefined,
  logger: Logger,
): Promise<AcceptedStore | undefined> {
  if (tail.state === 'absent' || tail.state === 'empty') {
    // Another replica may use the same path on its own host: count only heads this key signed.
    const [rec] = await store.query(
      "SELECT count(*)::integer AS n, max(a.tree_size)::bigint AS m FROM audit_anchors a JOIN audit_checkpoints c ON c.tree_size = a.tree_size WHERE a.kind = 'witness' AND a.target = $1 AND c.key_fingerprint = $2",
      [witness, key.fingerprint],
    )
    if (Number(rec.n) === 0) return undefined
    return {kind: 'witness-missing', message: `the witness file ${witness} is ${tail.state === 'absent' ? 'missing' : 'empty'}, but this store records ${rec.n} tree head(s) this gateway published to it (the last of size ${rec.m}): the witness was removed or truncated, so the store cannot be checked`, witness}
  }
  if (tail.state === 'bad') return {kind: 'unverifiable', message: `the witness file ${witness} cannot be read: ${tail.reason}`, witness}
  if (tail.torn) logger.warn('the witness file ends with a line cut short (a crash while writing it); the line before it is used', {file: witness})
  return judge(tail.anchor.tree_head, `witness file ${witness}`)
}

