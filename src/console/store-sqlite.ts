// The console's login state in the data dir's SQLite file, on the gateway's one handle (a single
// gateway; replicas share PostgreSQL, store-postgres.ts). better-sqlite3 is synchronous, so each
// method is one step nothing interleaves with; an insert and its trim share one IMMEDIATE
// transaction, so the bound holds exactly.
import type Database from 'better-sqlite3'
import {CONSOLE_LIMITS, keyOf, loginFromRow, sessionFromRow, type ConsoleSession, type ConsoleStore, type ConsoleStoreLimits, type PendingLogin} from './store.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS console_sessions (
  key TEXT PRIMARY KEY, identity_json TEXT NOT NULL, csrf TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_age ON console_sessions(created_at, key);
CREATE TABLE IF NOT EXISTS console_logins (
  key TEXT PRIMARY KEY, verifier TEXT NOT NULL, next_page TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS console_logins_age ON console_logins(created_at, key);
`

type Row = Record<string, unknown>

/** Expired rows go, and live ones beyond the newest `max`. */
const trim = (table: string) =>
  `DELETE FROM ${table} WHERE expires_at <= ? OR key IN (SELECT key FROM ${table} WHERE expires_at > ? ORDER BY created_at DESC, key DESC LIMIT -1 OFFSET ?)`

export class SqliteConsoleStore implements ConsoleStore {
  constructor(
    private readonly db: Database.Database,
    private readonly limits: ConsoleStoreLimits = CONSOLE_LIMITS,
  ) {
    db.exec(SCHEMA)
  }

  async addSession(id: string, s: ConsoleSession, now: number): Promise<void> {
    this.tx(() => {
      this.db
        .prepare('INSERT INTO console_sessions (key, identity_json, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)')
        .run(keyOf(id), JSON.stringify(s.identity), s.csrf, now, s.expiresAt)
      this.db.prepare(trim('console_sessions')).run(now, now, this.limits.maxSessions)
    })
  }

  async session(id: string, now: number): Promise<ConsoleSession | undefined> {
    const row = this.db.prepare('SELECT identity_json, csrf, expires_at FROM console_sessions WHERE key = ? AND expires_at > ?').get(keyOf(id), now) as Row | undefined
    return row && sessionFromRow(row)
  }

  async endSession(id: string): Promise<void> {
    this.db.prepare('DELETE FROM console_sessions WHERE key = ?').run(keyOf(id))
  }

  async addLogin(state: string, l: PendingLogin, now: number): Promise<void> {
    this.tx(() => {
      this.db.prepare('INSERT INTO console_logins (key, verifier, next_page, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(keyOf(state), l.verifier, l.next, now, l.expiresAt)
      this.db.prepare(trim('console_logins')).run(now, now, this.limits.maxLogins)
    })
  }

  async takeLogin(state: string, now: number): Promise<PendingLogin | undefined> {
    // One statement: the row is gone for every other connection the moment it is read.
    const row = this.db.prepare('DELETE FROM console_logins WHERE key = ? RETURNING verifier, next_page, expires_at').get(keyOf(state)) as Row | undefined
    return row && Number(row.expires_at) > now ? loginFromRow(row) : undefined
  }

  /** IMMEDIATE: the write lock up front, as in the approval store (the audit writer is another connection). */
  private tx(fn: () => void): void {
    this.db.transaction(fn).immediate()
  }
}
