// Session recordings on the PostgreSQL store (docs/ha.md, "Recordings"): the tables of migration
// 3, written by the replica that serves the session, read by any replica. The SQLite side is
// recorder.ts / recording-writer.ts / sessions.ts; this file is their asynchronous counterpart.
//
// The writer keeps the SQLite writer's batching (every session's chunks in one queue, written
// together once BATCH_BYTES are queued or BATCH_MS after the first) but a write is a round trip,
// so one write is in flight at a time and the queue is bounded by MAX_QUEUED_BYTES: beyond it, the
// chunk's session stops recording (the store is too slow) and the session goes on, as when the
// store refuses a write. A refused batch is retried session by session.
//
// Each recording row names the replica that writes it (its audit key fingerprint), so a replica
// restarting after a crash closes only its own recordings: another replica's may still be live.
import {createHash} from 'node:crypto'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {PostgresStore} from '../store/postgres.js'
import type {RecordingSummary} from './events.js'
import {chunkDigestInput} from './recorder.js'
import {BATCH_BYTES, BATCH_MS, byOwner, type ChunkOwner, type QueuedChunk} from './recording-writer.js'
import {replayChunk, type SessionDetail, type SessionListItem, sessionListItem} from './sessions.js'

/** Chunks waiting while a write is in flight, at most: a slow store costs recordings, never memory. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024

const INSERT_CHUNKS = `INSERT INTO audit_recording_chunks (session_id, idx, at_ms, direction, kind, encoding, size, sha256, payload)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::integer[], $8::text[], $9::bytea[])`

const writers = new WeakMap<PostgresStore, PgRecordingWriter>()

export class PgRecordingWriter {
  private queue: QueuedChunk[] = []
  private queuedBytes = 0
  private timer?: NodeJS.Timeout
  private writing: Promise<void> = Promise.resolve()

  static of(store: PostgresStore): PgRecordingWriter {
    let w = writers.get(store)
    if (!w) writers.set(store, (w = new PgRecordingWriter(store)))
    return w
  }

  private constructor(private readonly store: PostgresStore) {}

  add(chunk: QueuedChunk): void {
    if (this.queuedBytes + chunk.size > MAX_QUEUED_BYTES) {
      chunk.owner.refused([chunk], `the store is too slow: ${this.queuedBytes} bytes of recordings wait to be written`)
      return
    }
    this.queue.push(chunk)
    this.queuedBytes += chunk.size
    if (this.queuedBytes >= BATCH_BYTES) void this.flush()
    else this.timer ??= setTimeout(() => void this.flush(), BATCH_MS).unref()
  }

  /** Resolves once everything queued so far is written (or refused); never rejects. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.queue.length === 0) return this.writing
    const chunks = this.queue
    this.queue = []
    // The queue's bytes are freed when the write ends, so the bound covers what is in flight too.
    this.writing = this.writing
      .then(() => this.write(chunks))
      .catch(() => undefined) // write() settles every owner itself; the chain must never stay rejected
      .finally(() => (this.queuedBytes -= chunks.reduce((n, c) => n + c.size, 0)))
    return this.writing
  }

  private async write(chunks: QueuedChunk[]): Promise<void> {
    try {
      await this.insert(chunks)
    } catch {
      for (const [owner, own] of byOwner(chunks)) await this.writeAlone(owner, own)
      return
    }
    for (const [owner, own] of byOwner(chunks)) owner.stored(own)
  }

  private async writeAlone(owner: ChunkOwner, chunks: QueuedChunk[]): Promise<void> {
    try {
      await this.insert(chunks)
    } catch (err) {
      owner.refused(chunks, errorMessage(err))
      return
    }
    owner.stored(chunks)
  }

  private async insert(chunks: QueuedChunk[]): Promise<void> {
    const cols: unknown[][] = Array.from({length: 9}, () => [])
    for (const c of chunks) {
      const values = [c.sessionId, c.idx, c.at_ms, c.direction, c.kind, c.encoding, c.size, c.sha256, c.payload]
      for (let i = 0; i < values.length; i++) cols[i].push(values[i])
    }
    await this.store.query(INSERT_CHUNKS, cols)
  }
}

/** Writes every session's queued chunks now (the gateway calls it before it closes the store). */
export function flushPgRecordings(store: PostgresStore): Promise<void> {
  return writers.get(store)?.flush() ?? Promise.resolve()
}

/** The recording row, made when the session's recorder starts. */
export async function startPgRecording(store: PostgresStore, r: {sessionId: string; connection?: string; connectionType?: string; startedAt: string; capBytes: number; replica: string}): Promise<void> {
  await store.query(
    'INSERT INTO audit_recordings (session_id, connection, connection_type, started_at, cap_bytes, replica) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING',
    [r.sessionId, r.connection ?? null, r.connectionType ?? null, r.startedAt, r.capBytes, r.replica],
  )
}

export async function finishPgRecording(store: PostgresStore, sessionId: string, finishedAt: string, s: RecordingSummary): Promise<void> {
  await store.query('UPDATE audit_recordings SET finished_at = $1, bytes = $2, chunks = $3, truncated = $4, dropped_bytes = $5, sha256 = $6 WHERE session_id = $7', [
    finishedAt,
    s.bytes,
    s.chunks,
    s.truncated ? 1 : 0,
    s.droppedBytes,
    s.sha256,
    sessionId,
  ])
}

/** Whether this replica was recording the session (so it is this replica's to close after a crash). */
export async function recordedHere(store: PostgresStore, sessionId: string, replica: string): Promise<boolean> {
  return (await store.query('SELECT 1 FROM audit_recordings WHERE session_id = $1 AND replica = $2', [sessionId, replica])).length > 0
}

/** As finishOrphanRecording (recorder.ts), on the store: the summary covers exactly the stored chunks. */
export async function finishOrphanPgRecording(store: PostgresStore, sessionId: string, why: string): Promise<RecordingSummary | undefined> {
  const [row] = await store.query('SELECT cap_bytes::float8 AS cap_bytes, dropped_bytes::float8 AS dropped_bytes FROM audit_recordings WHERE session_id = $1 AND finished_at IS NULL', [sessionId])
  if (!row) return undefined
  const h = createHash('sha256')
  let bytes = 0
  let n = 0
  for (const c of await store.query('SELECT idx, at_ms::float8 AS at_ms, direction, kind, encoding, size, sha256 FROM audit_recording_chunks WHERE session_id = $1 ORDER BY idx', [sessionId])) {
    h.update(chunkDigestInput(c as Parameters<typeof chunkDigestInput>[0]))
    bytes += c.size as number
    n++
  }
  const summary: RecordingSummary = {sha256: h.digest('hex'), bytes, chunks: n, capBytes: row.cap_bytes as number, truncated: true, droppedBytes: row.dropped_bytes as number, failed: why}
  await finishPgRecording(store, sessionId, new Date().toISOString(), summary)
  return summary
}

const SELECT = `SELECT s.*, r.bytes::float8 AS r_bytes, r.chunks AS r_chunks, r.cap_bytes::float8 AS r_cap, r.truncated AS r_truncated,
  r.dropped_bytes::float8 AS r_dropped, r.sha256 AS r_sha256, r.pruned_at AS r_pruned, r.session_id AS r_id
  FROM sessions s LEFT JOIN audit_recordings r ON r.session_id = s.id`

/** `hoop sessions list` on the store: every replica's sessions, newest first. */
export async function listPgSessions(store: PostgresStore, opts: {limit?: number; connection?: string; user?: string} = {}): Promise<SessionListItem[]> {
  const where: string[] = []
  const args: unknown[] = []
  if (opts.connection) where.push(`s.connection = $${args.push(opts.connection)}`)
  if (opts.user) where.push(`s.subject = $${args.push(opts.user)}`)
  const sql = `${SELECT}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY s.started_at DESC, s.id DESC LIMIT $${args.push(opts.limit ?? 50)}`
  return (await store.query(sql, args)).map(sessionListItem)
}

/** `hoop sessions show ID` on the store, with the recording's chunks in order. */
export async function showPgSession(store: PostgresStore, id: string): Promise<SessionDetail> {
  const [row] = await store.query(`${SELECT} WHERE s.id = $1`, [id])
  if (!row) throw new HoopError('NOT_FOUND', `no session ${id} in the store; run \`hoop sessions list\``)
  const chunks = (await store.query('SELECT idx, at_ms::float8 AS at_ms, direction, kind, encoding, size, sha256, payload FROM audit_recording_chunks WHERE session_id = $1 ORDER BY idx', [id])).map(replayChunk)
  return {...sessionListItem(row), chunks}
}
