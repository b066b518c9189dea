// Where the console's login state is kept: its sessions, and the logins started and not yet
// finished (state -> PKCE verifier). With the gateway's store, so that behind several replicas on
// one PostgreSQL store any replica serves any browser: a login started on one completes on
// another, and a sign-out on one ends the session on all (store-postgres.ts; the data dir's SQLite
// file for a single gateway, store-sqlite.ts). Rows are found by the SHA-256 of the cookie id or
// the login state, never the value itself: read access to the store gives no usable cookie.
import {createHash} from 'node:crypto'
import type {Identity} from '../identity/types.js'

export interface ConsoleSession {
  identity: Identity
  /** Sent back by the page in X-Hoop-Csrf on every state change. */
  csrf: string
  /** Milliseconds since epoch. */
  expiresAt: number
}

export interface PendingLogin {
  /** The PKCE code verifier (RFC 7636) that the callback sends with the code. */
  verifier: string
  /** The console page to return to. */
  next: string
  /** Milliseconds since epoch. */
  expiresAt: number
}

export interface ConsoleStoreLimits {
  maxSessions: number
  /** Anyone may start a login, so this bound is what a flood of /console/login requests meets. */
  maxLogins: number
}

export const CONSOLE_LIMITS: ConsoleStoreLimits = {maxSessions: 10_000, maxLogins: 1000}

/**
 * Times are the caller's clock in milliseconds (`now`), like approvals. Adding a row sweeps the
 * expired ones and, past the bound, drops the oldest: the newest `max` stay.
 */
export interface ConsoleStore {
  addSession(id: string, session: ConsoleSession, now: number): Promise<void>
  /** The session while it has not expired at `now`. */
  session(id: string, now: number): Promise<ConsoleSession | undefined>
  endSession(id: string): Promise<void>
  addLogin(state: string, login: PendingLogin, now: number): Promise<void>
  /**
   * Removes the login and returns it unless it expired: one step in the store, so of two callbacks
   * with the same state (a replay, or two replicas at once) exactly one gets it.
   */
  takeLogin(state: string, now: number): Promise<PendingLogin | undefined>
}

/** The row key for a cookie id or a login state. */
export const keyOf = (secret: string) => createHash('sha256').update(secret).digest('base64url')

type Row = Record<string, unknown>

/** A session row (the same columns in both stores). PostgreSQL returns bigint as a string. */
export function sessionFromRow(r: Row): ConsoleSession {
  return {identity: JSON.parse(r.identity_json as string) as Identity, csrf: r.csrf as string, expiresAt: Number(r.expires_at)}
}

export function loginFromRow(r: Row): PendingLogin {
  return {verifier: r.verifier as string, next: r.next_page as string, expiresAt: Number(r.expires_at)}
}
