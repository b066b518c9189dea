// Session recording: the exchange as the client saw it (statements and masked results for
// databases, bytes and timing for raw TCP), capped per session with the cap recorded. Payloads
// live in their own table so retention can drop them; the running SHA-256 over all chunks goes
// into the session.end event (RecordingSummary), so the chain proves what was recorded even
// after the payloads are pruned. Credentials are never handed to the recorder.
//
// A recorder never throws: it runs inside socket listeners, where an exception would reach the
// process. When the store refuses a write (full disk, closed database), the recording stops there:
// the summary says `failed` with the reason, covers exactly the chunks that were stored, and
// counts everything after as dropped.
import type Database from 'better-sqlite3'
import {createHash, hash, type Hash} from 'node:crypto'
import {errorMessage} from '../shared/errors.js'
import {type Logger, silentLogger} from '../shared/log.js'
import type {RecordingSummary} from './events.js'
import type {PostgresStore} from '../store/postgres.js'
import {finishPgRecording, PgRecordingWriter, startPgRecording} from './pg-recordings.js'
import {type ChunkOwner, type QueuedChunk, RecordingWriter} from './recording-writer.js'
import {ensureAuditSchema} from './schema.js'

const DEFAULT_RECORDING_CAP = 10 * 1024 * 1024

type Direction = 'client' | 'server'
/** statement / result / error / notice for databases, request / response for HTTP, bytes for TCP. */
type ChunkKind = 'statement' | 'result' | 'error' | 'notice' | 'request' | 'response' | 'bytes' | 'event'
type Payload = string | Buffer | Record<string, unknown> | unknown[]

interface RecorderOptions {
  db: Database.Database
  /**
   * On the PostgreSQL store: the recording goes there (pg-recordings.ts), its row naming this
   * replica (`replica`, its audit key fingerprint); `db` is not written. Finish with finishStored().
   */
  pg?: {store: PostgresStore; replica: string}
  sessionId: string
  connection?: string
  connectionType?: string
  capBytes?: number
  now?: () => number
  /** Where the one warning about a failed recording goes. */
  logger?: Logger
}

/**
 * One session's recording. Chunks go to the database's RecordingWriter, which stores every
 * session's chunks in shared batches (recording-writer.ts says when); this class keeps the cap,
 * the counts and the digest, which grows as the writer reports chunks stored.
 */
export class SessionRecorder implements ChunkOwner {
  /** Covers the chunks stored so far, in their order. */
  private readonly digest: Hash = createHash('sha256')
  private readonly started: number
  private idx = 0
  /** Bytes accepted under the cap (stored or queued). */
  private bytes = 0
  private storedBytes = 0
  private storedChunks = 0
  private dropped = 0
  private truncated = false
  /** Why the store refused the recording; set once, and nothing is stored after it. */
  private failure?: string
  private finished?: RecordingSummary
  private writer?: {add(c: QueuedChunk): void; flush(): void | Promise<void>}
  /** On PostgreSQL: the recording row's insert, awaited before the row is finished. */
  private pgStart?: Promise<void>
  /** finishStored() has begun: later exchanges are not recorded (the summary is being made). */
  private finishing = false
  readonly capBytes: number
  private readonly now: () => number
  private readonly log: Logger

  constructor(private readonly opts: RecorderOptions) {
    this.capBytes = opts.capBytes ?? DEFAULT_RECORDING_CAP
    this.now = opts.now ?? Date.now
    this.started = this.now()
    this.log = opts.logger ?? silentLogger
    const pg = opts.pg
    if (pg) {
      this.writer = PgRecordingWriter.of(pg.store)
      const row = {sessionId: opts.sessionId, connection: opts.connection, connectionType: opts.connectionType, startedAt: new Date(this.started).toISOString(), capBytes: this.capBytes, replica: pg.replica}
      this.pgStart = startPgRecording(pg.store, row).catch((err: unknown) => this.fail('start the recording', err))
      return
    }
    this.guard('start the recording', () => {
      ensureAuditSchema(opts.db)
      opts.db
        .prepare('INSERT OR REPLACE INTO audit_recordings (session_id, connection, connection_type, started_at, cap_bytes) VALUES (?, ?, ?, ?, ?)')
        .run(opts.sessionId, opts.connection ?? null, opts.connectionType ?? null, new Date(this.started).toISOString(), this.capBytes)
      this.writer = RecordingWriter.of(opts.db)
    })
  }

  /** true once the store refused a write: nothing more is stored for this session. */
  get failed(): boolean {
    return this.failure !== undefined
  }

  /**
   * Records one exchange; never throws. Beyond the cap, or after the store refused a write,
   * nothing more is stored and the dropped bytes are counted.
   */
  record(direction: Direction, kind: ChunkKind, payload: Payload): void {
    if (this.finished || this.finishing) return
    try {
      this.add(direction, kind, payload)
    } catch (err) {
      // Encoding the payload failed (e.g. a circular object): a recorder bug, not the caller's.
      this.fail('record an exchange', err)
    }
  }

  private add(direction: Direction, kind: ChunkKind, payload: Payload): void {
    // Text and JSON are encoded into a buffer of their own; a caller's buffer is copied, since the
    // chunk waits in the writer's queue and the caller may reuse its buffer.
    const [encoding, buf, own] =
      typeof payload === 'string'
        ? (['text', Buffer.from(payload, 'utf8'), true] as const)
        : Buffer.isBuffer(payload)
          ? (['binary', payload, false] as const)
          : (['json', Buffer.from(JSON.stringify(payload), 'utf8'), true] as const)
    if (this.failure !== undefined || this.truncated || this.bytes + buf.length > this.capBytes) {
      this.truncated = true
      this.dropped += buf.length
      return
    }
    this.bytes += buf.length
    this.writer!.add({
      owner: this,
      sessionId: this.opts.sessionId,
      idx: this.idx++,
      at_ms: this.now() - this.started,
      direction,
      kind,
      encoding,
      size: buf.length,
      sha256: hash('sha256', buf, 'hex'),
      payload: own ? buf : Buffer.from(buf),
    })
  }

  /** Called by the writer once a batch holding these chunks (in this session's order) committed. */
  stored(chunks: QueuedChunk[]): void {
    // The summary is made (and the digest closed) only once every queued chunk was reported.
    if (this.finished) return
    for (const c of chunks) {
      this.digest.update(chunkDigestInput(c))
      this.storedBytes += c.size
    }
    this.storedChunks += chunks.length
  }

  /** Called by the writer when the store refused these chunks: they and every later one are dropped. */
  refused(chunks: QueuedChunk[], why: string): void {
    for (const c of chunks) this.dropped += c.size
    this.fail('store recording chunks', why)
  }

  /** Stores every queued chunk (of every session on this database) now; never throws. */
  flush(): void {
    void this.writer?.flush()
  }

  /**
   * Stores what is queued and the summary; never throws. Pass the result to events.sessionEnd:
   * it describes exactly what was stored, and says why recording stopped if the store refused.
   */
  finish(): RecordingSummary {
    if (this.finished) return this.finished
    this.flush()
    const summary = this.summarize()
    if (this.failure === undefined && !this.opts.pg) {
      this.guard('finish the recording', () =>
        this.opts.db
          .prepare('UPDATE audit_recordings SET finished_at = ?, bytes = ?, chunks = ?, truncated = ?, dropped_bytes = ?, sha256 = ? WHERE session_id = ?')
          .run(new Date(this.now()).toISOString(), summary.bytes, summary.chunks, summary.truncated ? 1 : 0, summary.droppedBytes, summary.sha256, this.opts.sessionId),
      )
    }
    if (this.failure !== undefined) summary.failed = this.failure
    return summary
  }

  /**
   * finish() once every queued chunk is written: on PostgreSQL a write is a round trip, so the
   * summary waits for it (and for the row's update). On SQLite, finish() as is. Never rejects.
   */
  async finishStored(): Promise<RecordingSummary> {
    const pg = this.opts.pg
    if (!pg) return this.finish()
    if (this.finished) return this.finished
    this.finishing = true
    await this.pgStart
    await this.writer?.flush()
    const summary = this.summarize()
    if (this.failure === undefined) {
      try {
        await finishPgRecording(pg.store, this.opts.sessionId, new Date(this.now()).toISOString(), summary)
      } catch (err) {
        this.fail('finish the recording', err)
      }
    }
    if (this.failure !== undefined) summary.failed = this.failure
    return summary
  }

  /** What was stored, as the session.end event says it; the recording is finished from here on. */
  private summarize(): RecordingSummary {
    const summary: RecordingSummary = {
      sha256: this.digest.digest('hex'),
      bytes: this.storedBytes,
      chunks: this.storedChunks,
      capBytes: this.capBytes,
      truncated: this.truncated,
      droppedBytes: this.dropped,
    }
    this.finished = summary
    return summary
  }

  /** Runs a store operation; a throw fails the recording (logged once) instead of reaching the caller. */
  private guard(what: string, op: () => void): boolean {
    if (this.failure !== undefined) return false
    try {
      op()
      return true
    } catch (err) {
      this.fail(what, err)
      return false
    }
  }

  /** Stops the recording. Chunks already queued stay queued: the summary counts whatever the writer stores. */
  private fail(what: string, err: unknown): void {
    if (this.failure !== undefined) return
    this.failure = `could not ${what}: ${typeof err === 'string' ? err : errorMessage(err)}`
    this.truncated = true
    this.log.warn('session recording failed; the session goes on unrecorded', {session: this.opts.sessionId, error: this.failure})
  }
}

/** What the recording digest covers per chunk: its position, timing, direction, kind and payload hash. */
export function chunkDigestInput(c: {idx: number; at_ms: number; direction: string; kind: string; encoding: string; size: number; sha256: string}): string {
  return `${c.idx}\t${c.at_ms}\t${c.direction}\t${c.kind}\t${c.encoding}\t${c.size}\t${c.sha256}\n`
}

/** Recomputes a recording's digest from the stored chunk hashes (works after pruning too). */
export function recordingDigest(db: Database.Database, sessionId: string): string {
  const h = createHash('sha256')
  const rows = db.prepare('SELECT idx, at_ms, direction, kind, encoding, size, sha256 FROM audit_recording_chunks WHERE session_id = ? ORDER BY idx').all(sessionId) as Parameters<typeof chunkDigestInput>[0][]
  for (const r of rows) h.update(chunkDigestInput(r))
  return h.digest('hex')
}

/**
 * Closes the recording of a session the gateway did not see end: its summary covers exactly the
 * chunks that were stored (what was pending in memory is lost, so it is `truncated` and `failed`
 * says why). Undefined when the session has no recording.
 */
export function finishOrphanRecording(db: Database.Database, sessionId: string, why: string): RecordingSummary | undefined {
  ensureAuditSchema(db)
  const row = db.prepare('SELECT cap_bytes, truncated, dropped_bytes FROM audit_recordings WHERE session_id = ? AND finished_at IS NULL').get(sessionId) as {cap_bytes: number; truncated: number; dropped_bytes: number} | undefined
  if (!row) return undefined
  const stored = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM audit_recording_chunks WHERE session_id = ?').get(sessionId) as {n: number; bytes: number}
  const summary: RecordingSummary = {
    sha256: recordingDigest(db, sessionId),
    bytes: stored.bytes,
    chunks: stored.n,
    capBytes: row.cap_bytes,
    truncated: true,
    droppedBytes: row.dropped_bytes,
    failed: why,
  }
  db.prepare('UPDATE audit_recordings SET finished_at = ?, bytes = ?, chunks = ?, truncated = 1, sha256 = ? WHERE session_id = ?').run(new Date().toISOString(), summary.bytes, summary.chunks, summary.sha256, sessionId)
  return summary
}

/** Retention: drops payloads of recordings finished before the cutoff. Events are untouched. */
export function pruneRecordings(db: Database.Database, opts: {olderThanDays: number; now?: Date}): number {
  ensureAuditSchema(db)
  const cutoff = new Date((opts.now ?? new Date()).getTime() - opts.olderThanDays * 86_400_000).toISOString()
  const run = db.transaction(() => {
    const ids = db.prepare('SELECT session_id FROM audit_recordings WHERE finished_at IS NOT NULL AND finished_at < ? AND pruned_at IS NULL').all(cutoff) as {session_id: string}[]
    const clear = db.prepare('UPDATE audit_recording_chunks SET payload = NULL WHERE session_id = ?')
    const mark = db.prepare('UPDATE audit_recordings SET pruned_at = ? WHERE session_id = ?')
    const at = new Date().toISOString()
    for (const {session_id} of ids) {
      clear.run(session_id)
      mark.run(at, session_id)
    }
    return ids.length
  })
  // IMMEDIATE: it reads then writes while the audit writer commits on another connection.
  return run.immediate()
}
