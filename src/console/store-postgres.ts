// The console's login state on the PostgreSQL store the replicas share (tables of migration 6), so
// a browser is served by whichever replica it reaches. Taking a pending login is one
// DELETE ... RETURNING: of two replicas handed the same callback, the second finds no row.
import type {PostgresStore} from '../store/postgres.js'
import {CONSOLE_LIMITS, keyOf, loginFromRow, sessionFromRow, type ConsoleSession, type ConsoleStore, type ConsoleStoreLimits, type PendingLogin} from './store.js'

/**
 * Expired rows go, and live ones beyond the newest `max`. Not in one transaction with the insert:
 * replicas inserting at the same moment may each miss the other's row, so the table can exceed
 * its bound by the inserts in flight, until the next trim.
 */
const trim = (table: string) =>
  `DELETE FROM ${table} WHERE expires_at <= $1 OR key IN (SELECT key FROM ${table} WHERE expires_at > $1 ORDER BY created_at DESC, key DESC OFFSET $2)`

export class PostgresConsoleStore implements ConsoleStore {
  constructor(
    private readonly store: PostgresStore,
    private readonly limits: ConsoleStoreLimits = CONSOLE_LIMITS,
  ) {}

  async addSession(id: string, s: ConsoleSession, now: number): Promise<void> {
    await this.store.query('INSERT INTO console_sessions (key, identity_json, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [
      keyOf(id),
      JSON.stringify(s.identity),
      s.csrf,
      now,
      s.expiresAt,
    ])
    await this.store.query(trim('console_sessions'), [now, this.limits.maxSessions])
  }

  async session(id: string, now: number): Promise<ConsoleSession | undefined> {
    const [row] = await this.store.query('SELECT identity_json, csrf, expires_at FROM console_sessions WHERE key = $1 AND expires_at > $2', [keyOf(id), now])
    return row && sessionFromRow(row)
  }

  async endSession(id: string): Promise<void> {
    await this.store.query('DELETE FROM console_sessions WHERE key = $1', [keyOf(id)])
  }

  async addLogin(state: string, l: PendingLogin, now: number): Promise<void> {
    await this.store.query('INSERT INTO console_logins (key, verifier, next_page, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [keyOf(state), l.verifier, l.next, now, l.expiresAt])
    await this.store.query(trim('console_logins'), [now, this.limits.maxLogins])
  }

  async takeLogin(state: string, now: number): Promise<PendingLogin | undefined> {
    const [row] = await this.store.query('DELETE FROM console_logins WHERE key = $1 RETURNING verifier, next_page, expires_at', [keyOf(state)])
    return row && Number(row.expires_at) > now ? loginFromRow(row) : undefined
  }
}
