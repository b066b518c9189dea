// The one writer of recording chunks per database: every session's chunks wait in one queue and
// are stored together, in arrival order, in one transaction. Per-session flushes cost a
// transaction per 64 small chunks of each session; with the per-chunk work in the recorder, that
// was a quarter of the gateway's busy time on the raw `tcp` path (bench/README.md).
//
// When the queue is written: once it holds BATCH_BYTES (synchronously, inside the call that
// reached the bound: the queue never holds more than BATCH_BYTES plus one chunk, and nothing is
// dropped for it), BATCH_MS after its first chunk, when a session finishes, and when the gateway
// closes. A crash loses at most the queued tail: the chunks of the last BATCH_MS or BATCH_BYTES
// (docs/audit.md, "Session recording").
//
// A batch the store refuses is retried session by session, so a session's recording fails only
// when its own chunks cannot be stored.
import type Database from 'better-sqlite3'
import {errorMessage} from '../shared/errors.js'

export const BATCH_BYTES = 256 * 1024
export const BATCH_MS = 10

export interface QueuedChunk {
  owner: ChunkOwner
  sessionId: string
  idx: number
  at_ms: number
  direction: string
  kind: string
  encoding: string
  size: number
  sha256: string
  payload: Buffer
}

/** The session recorder a chunk belongs to: told what became of its chunks, in their order. */
export interface ChunkOwner {
  stored(chunks: QueuedChunk[]): void
  refused(chunks: QueuedChunk[], why: string): void
}

const writers = new WeakMap<Database.Database, RecordingWriter>()

export class RecordingWriter {
  private queue: QueuedChunk[] = []
  private queuedBytes = 0
  private timer?: NodeJS.Timeout
  private readonly write: (chunks: QueuedChunk[]) => void

  /** The writer of this database, made on first use (throws when the statements cannot be prepared). */
  static of(db: Database.Database): RecordingWriter {
    let w = writers.get(db)
    if (!w) writers.set(db, (w = new RecordingWriter(db)))
    return w
  }

  private constructor(db: Database.Database) {
    const insert = db.prepare('INSERT INTO audit_recording_chunks (session_id, idx, at_ms, direction, kind, encoding, size, sha256, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    this.write = db.transaction((chunks: QueuedChunk[]) => {
      for (const c of chunks) insert.run(c.sessionId, c.idx, c.at_ms, c.direction, c.kind, c.encoding, c.size, c.sha256, c.payload)
    })
  }

  add(chunk: QueuedChunk): void {
    this.queue.push(chunk)
    this.queuedBytes += chunk.size
    if (this.queuedBytes >= BATCH_BYTES) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS).unref()
  }

  /** Writes the queue in one transaction and tells each owner; never throws. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.queue.length === 0) return
    const chunks = this.queue
    this.queue = []
    this.queuedBytes = 0
    try {
      this.write(chunks)
    } catch {
      // Retry per session: one session's bad chunk (or its closed database) must not fail the others.
      for (const [owner, own] of byOwner(chunks)) this.writeAlone(owner, own)
      return
    }
    for (const [owner, own] of byOwner(chunks)) owner.stored(own)
  }

  private writeAlone(owner: ChunkOwner, chunks: QueuedChunk[]): void {
    try {
      this.write(chunks)
    } catch (err) {
      owner.refused(chunks, errorMessage(err))
      return
    }
    owner.stored(chunks)
  }
}

/** Each owner's chunks, in queue order (so each recording's digest follows its chunk order). */
export function byOwner(chunks: QueuedChunk[]): Map<ChunkOwner, QueuedChunk[]> {
  const m = new Map<ChunkOwner, QueuedChunk[]>()
  for (const c of chunks) {
    const own = m.get(c.owner)
    if (own) own.push(c)
    else m.set(c.owner, [c])
  }
  return m
}

/** Writes every session's queued chunks now (the gateway calls it before it closes the store). */
export function flushRecordings(db: Database.Database): void {
  writers.get(db)?.flush()
}
