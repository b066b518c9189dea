// Audit tables on the gateway's SQLite database. Events keep their canonical JSON (the hashed
// bytes), the chain hash and the Merkle leaf hash; recordings keep payloads apart from events so
// retention can drop payloads without touching anything that is hashed. A v2 event's payload
// (statement text, justifications) sits in `audit_events.payload`, outside the hashed `body`;
// `audit_payload_removals` records each payload removed (expired or erased, when, and the `ref` of
// the audit.retention / audit.erasure event that says so); `audit_holds` are legal holds. `audit_anchors` says where
// each signed head was published (witness file, sink, timestamp authority, with the token);
// `audit_meta` keeps settings the offline commands need (the witness file's path);
// `audit_pending` holds events written by commands run on the data dir (`hoop audit export
// --data-dir`): the log has one writer, the gateway, which appends them (notePending, log.ts).
//
// `audit_events` has one secondary index on every row, by time (near-sorted, so each insert lands
// on the index's last page). A session's events are not indexed one by one: each commit would
// rewrite a random page of such an index per event (half the audit log's WAL bytes; bench/README.md
// "Audit appends without the per-event session index"). Instead `audit_events_marks` indexes only a
// session's start and end (a partial index, MARK_KINDS), and `audit_session_last` keeps the time of
// the last event of each session whose end is not recorded, written by the log every
// SESSION_LAST_EVERY events and complete up to the seq in audit_meta `session_last_upto`
// (session-marks.ts). Stores from before are migrated on first open (migrateSessionIndex).
import type Database from 'better-sqlite3'
import {HoopError} from '../shared/errors.js'

const AUDIT_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, session TEXT, subject TEXT, connection TEXT,
  hash TEXT NOT NULL, prev_hash TEXT NOT NULL, leaf BLOB NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events(time);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  tree_size INTEGER PRIMARY KEY, root_hash TEXT NOT NULL, head_hash TEXT NOT NULL, timestamp TEXT NOT NULL,
  key_fingerprint TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_keys (
  fingerprint TEXT PRIMARY KEY, public_pem TEXT NOT NULL, first_used_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_sink_cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_recordings (
  session_id TEXT PRIMARY KEY, connection TEXT, connection_type TEXT, started_at TEXT NOT NULL, finished_at TEXT,
  cap_bytes INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
  truncated INTEGER NOT NULL DEFAULT 0, dropped_bytes INTEGER NOT NULL DEFAULT 0, sha256 TEXT, pruned_at TEXT);
CREATE TABLE IF NOT EXISTS audit_recording_chunks (
  session_id TEXT NOT NULL, idx INTEGER NOT NULL, at_ms INTEGER NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL,
  encoding TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, payload BLOB,
  PRIMARY KEY (session_id, idx));
CREATE TABLE IF NOT EXISTS audit_anchors (
  id INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, root_hash TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
  published_at TEXT NOT NULL, token BLOB, gen_time TEXT);
CREATE INDEX IF NOT EXISTS audit_anchors_size ON audit_anchors(tree_size);
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_pending (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_payload_removals (
  seq INTEGER PRIMARY KEY, how TEXT NOT NULL, at TEXT NOT NULL, ref TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_payload_removals_ref ON audit_payload_removals(ref);
CREATE TABLE IF NOT EXISTS audit_holds (
  id INTEGER PRIMARY KEY, scope TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL, placed_at TEXT NOT NULL,
  placed_by TEXT NOT NULL, released_at TEXT);
`

/** The kinds `audit_events_marks` indexes; a query uses that index only with this very term. */
export const MARK_KINDS = "kind IN ('session.start', 'session.end')"

/** audit_meta's key for the seq up to which `audit_session_last` is complete. */
export const SESSION_LAST_UPTO = 'session_last_upto'

/** Objects added since the first release: created by a writer (a read-only store from before lacks them). */
const SESSION_SCHEMA = `
CREATE INDEX IF NOT EXISTS audit_events_marks ON audit_events(session) WHERE ${MARK_KINDS};
CREATE TABLE IF NOT EXISTS audit_session_last (session TEXT PRIMARY KEY, time TEXT NOT NULL) WITHOUT ROWID;
`

export function ensureAuditSchema(db: Database.Database): void {
  db.exec(AUDIT_SCHEMA)
  if (db.readonly) return
  // Stores from before payloads were kept apart (envelope v1) gain the column; their events keep
  // their payloads inline and never expire.
  const cols = db.prepare('PRAGMA table_info(audit_events)').all() as {name: string}[]
  if (!cols.some((c) => c.name === 'payload')) db.exec('ALTER TABLE audit_events ADD COLUMN payload TEXT')
  if (!hasIndex(db, 'audit_events_marks') || hasIndex(db, 'audit_events_session')) migrateSessionIndex(db)
}

function hasIndex(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?").get(name) !== undefined
}

/**
 * A store from before (or one a gateway of before opened since) has an index on the session of
 * every event: the marks index and `audit_session_last` are built from it (one pass over the
 * index, once), then it is dropped. A new store gets them empty. One IMMEDIATE transaction, checked
 * again inside, so two processes opening the store at once migrate it once.
 */
function migrateSessionIndex(db: Database.Database): void {
  db.transaction(() => {
    const old = hasIndex(db, 'audit_events_session')
    if (hasIndex(db, 'audit_events_marks') && !old) return
    db.exec(SESSION_SCHEMA)
    if (old) {
      db.exec('DELETE FROM audit_session_last')
      db.exec(`INSERT INTO audit_session_last (session, time)
        SELECT session, max(time) FROM audit_events WHERE session IS NOT NULL GROUP BY session HAVING sum(kind = 'session.end') = 0`)
      db.exec('DROP INDEX audit_events_session')
    }
    const upto = (db.prepare('SELECT max(seq) AS m FROM audit_events').get() as {m: number | null}).m ?? 0
    db.prepare('INSERT OR REPLACE INTO audit_meta (key, value) VALUES (?, ?)').run(SESSION_LAST_UPTO, String(upto))
  }).immediate()
}

export interface CheckpointRow {
  tree_size: number
  root_hash: string
  head_hash: string
  timestamp: string
  key_fingerprint: string
  signature: string
}

export interface AnchorRow {
  tree_size: number
  root_hash: string
  kind: 'witness' | 'sink' | 'tsa'
  target: string
  published_at: string
  token: Buffer | null
  gen_time: string | null
}

/** Where the gateway writes its witness file, as it recorded it (offline commands read it from here). */
export function witnessPathOf(db: Database.Database): string | undefined {
  const row = db.prepare("SELECT value FROM audit_meta WHERE key = 'witness_path'").get() as {value: string} | undefined
  return row?.value
}

/**
 * An event from a command run on the data dir, for the gateway to append to the log (it is the
 * log's only writer): at once if it runs, else when it starts.
 */
export function notePending(db: Database.Database, event: object): void {
  ensureAuditSchema(db)
  db.prepare('INSERT INTO audit_pending (body, created_at) VALUES (?, ?)').run(JSON.stringify(event), new Date().toISOString())
}

/** The payload column in a SELECT: `payload`, or NULL on a read-only store from before it existed. */
export function payloadColumn(db: Database.Database, table = 'e'): string {
  const cols = db.prepare('PRAGMA table_info(audit_events)').all() as {name: string}[]
  return cols.some((c) => c.name === 'payload') ? `${table}.payload` : 'NULL AS payload'
}

/**
 * Notes in the data dir where this gateway keeps its audit log. On PostgreSQL, a command run on
 * the data dir (`hoop audit export --data-dir`) then refuses with a clear error instead of reading
 * the local tables, which stay empty.
 */
export function markAuditStore(db: Database.Database, kind: 'sqlite' | 'postgres'): void {
  ensureAuditSchema(db)
  if (kind === 'postgres') db.prepare("INSERT OR REPLACE INTO audit_meta (key, value) VALUES ('audit_store', 'postgres')").run()
  else db.prepare("DELETE FROM audit_meta WHERE key = 'audit_store'").run()
}

/** Refuses a data dir whose gateway keeps its audit log on PostgreSQL (see markAuditStore). */
export function refuseIfAuditOnPostgres(db: Database.Database, dir: string): void {
  const row = db.prepare("SELECT value FROM audit_meta WHERE key = 'audit_store'").get() as {value: string} | undefined
  if (row?.value === 'postgres') {
    throw new HoopError('INVALID_INPUT', `the gateway of ${dir} keeps its audit log on the PostgreSQL store, not in this data dir; run the command without --data-dir to ask the gateway (as an auditor), or, for hoop audit erase and hoop audit hold, with --config and the gateway's config file`)
  }
}
