// What the SQLite log knows of each session without an index on every event's session
// (schema.ts): where it starts and ends (the partial index audit_events_marks), and when its last
// event was (audit_session_last, complete up to audit_meta `session_last_upto`; the events after
// that seq are read from the table itself, a few thousand at most).
//
// The writer (log.ts) keeps the newest time per session of the events it committed since the last
// write of the table (SessionLastTracker) and writes them, in the same transaction as a group, once
// every SESSION_LAST_EVERY events: one row per active session instead of one index entry per
// event. On open it folds in what the store holds past `session_last_upto` (events committed
// before a crash, or by a gateway of before), so the table and its seq stay true.
import type Database from 'better-sqlite3'
import {ensureAuditSchema, MARK_KINDS, SESSION_LAST_UPTO} from './schema.js'

/** Events between two writes of audit_session_last: what a look-up reads at most past it (plus one group). */
export const SESSION_LAST_EVERY = 8192

function uptoOf(db: Database.Database): number | undefined {
  const row = db.prepare('SELECT value FROM audit_meta WHERE key = ?').get(SESSION_LAST_UPTO) as {value: string} | undefined
  return row ? Number(row.value) : undefined
}

/** The writer's side: newest event time per session since the table was last written. */
export class SessionLastTracker {
  /** Session -> newest time of its events since `upto`; undefined once its end is committed (its row goes). */
  private readonly times = new Map<string, string | undefined>()
  private upto: number
  private readonly upsert: Database.Statement
  private readonly remove: Database.Statement
  private readonly setUpto: Database.Statement

  /** On the writer's connection, after ensureAuditSchema: folds in the events past the stored seq. */
  constructor(writer: Database.Database) {
    this.upsert = writer.prepare('INSERT INTO audit_session_last (session, time) VALUES (?, ?) ON CONFLICT (session) DO UPDATE SET time = max(time, excluded.time)')
    this.remove = writer.prepare('DELETE FROM audit_session_last WHERE session = ?')
    this.setUpto = writer.prepare('INSERT OR REPLACE INTO audit_meta (key, value) VALUES (?, ?)')
    const last = (writer.prepare('SELECT max(seq) AS m FROM audit_events').get() as {m: number | null}).m ?? 0
    const from = uptoOf(writer) ?? 0
    writer.transaction(() => {
      const tail = writer
        .prepare(`SELECT session, max(time), sum(kind = 'session.end') FROM audit_events WHERE seq > ? AND seq <= ? AND session IS NOT NULL GROUP BY session`)
        .raw()
        .all(from, last) as [string, string, number][]
      for (const [session, time, ended] of tail) {
        if (ended > 0) this.remove.run(session)
        else this.upsert.run(session, time)
      }
      this.setUpto.run(SESSION_LAST_UPTO, String(last))
    }).immediate()
    this.upto = last
  }

  /** Whether the table is due to be written before the group that starts after `seq`. */
  due(seq: number): boolean {
    return seq - this.upto >= SESSION_LAST_EVERY
  }

  /** Writes what was noted, as complete up to `seq` (the last committed event); inside the group's transaction. */
  write(seq: number): void {
    for (const [session, time] of this.times) {
      if (time === undefined) this.remove.run(session)
      else this.upsert.run(session, time)
    }
    this.setUpto.run(SESSION_LAST_UPTO, String(seq))
  }

  /** After the transaction of `write(seq)` committed. */
  written(seq: number): void {
    this.times.clear()
    this.upto = seq
  }

  /** Notes a committed event. */
  note(session: string | null, kind: string, time: string): void {
    if (session === null) return
    if (kind === 'session.end') {
      this.times.set(session, undefined)
      return
    }
    const t = this.times.get(session)
    if (t === undefined || time > t) this.times.set(session, time)
  }
}

/** A session's start and end events, and the time of its last event (null when it has none). */
export interface SessionMarks {
  rows: {kind: string; body: string}[]
  last: string | null
}

/**
 * Looks up sessions' marks on the SQLite log (closeUnendedSessions on start). The events past
 * `session_last_upto` are grouped once, on the first look-up.
 */
export function sessionMarksOf(db: Database.Database): (session: string) => SessionMarks {
  ensureAuditSchema(db)
  const eventsOf = db.prepare(`SELECT kind, body FROM audit_events WHERE session = ? AND ${MARK_KINDS} ORDER BY seq`)
  const upto = uptoOf(db)
  if (upto === undefined) {
    // A read-only store from before (never migrated): its index on every event's session answers.
    const lastAt = db.prepare('SELECT max(time) AS t FROM audit_events WHERE session = ?')
    return (session) => ({rows: eventsOf.all(session) as {kind: string; body: string}[], last: (lastAt.get(session) as {t: string | null}).t})
  }
  const stored = db.prepare('SELECT time FROM audit_session_last WHERE session = ?').pluck()
  let tail: Map<string, string> | undefined
  return (session) => {
    tail ??= new Map(db.prepare('SELECT session, max(time) FROM audit_events WHERE seq > ? AND session IS NOT NULL GROUP BY session').raw().all(upto) as [string, string][])
    const a = (stored.get(session) as string | undefined) ?? null
    const b = tail.get(session) ?? null
    return {rows: eventsOf.all(session) as {kind: string; body: string}[], last: a === null || (b !== null && b > a) ? b : a}
  }
}

/**
 * The first seq a session's events can have: that of its session.start (the gateway mints the id
 * and appends the start before anything of the session runs; the SQLite log has no other writer),
 * or 1 when the log holds no start for it. A scan by session reads from there, by seq.
 */
export function sessionFirstSeq(db: Database.Database, session: string): number {
  const row = db.prepare(`SELECT min(seq) AS s FROM audit_events WHERE session = ? AND ${MARK_KINDS} AND kind = 'session.start'`).get(session) as {s: number | null}
  return row.s ?? 1
}
