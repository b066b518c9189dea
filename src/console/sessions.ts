// The web console's login sessions: a random id in an HttpOnly cookie, and server side the
// identity verified from the OpenID Provider's access token, a CSRF token, and an expiry no later
// than that token's. Kept in memory per gateway process (docs/console.md: behind several replicas,
// a browser needs sticky routing or logs in again on each), bounded in number.
import {createHash, randomBytes, timingSafeEqual} from 'node:crypto'
import type {Identity} from '../identity/types.js'

export interface ConsoleSession {
  identity: Identity
  /** Sent back by the page in X-Hoop-Csrf on every state change. */
  csrf: string
  /** Milliseconds since epoch. */
  expiresAt: number
}

/** Short-lived on purpose: an hour at most, and never past the access token it was made from. */
export const MAX_SESSION_SECONDS = 3600
const MAX_SESSIONS = 10_000

/** Constant-time equality of two secrets of any length (compared as SHA-256 digests). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

/** Sessions are found by the hash of their id: the map holds nothing a memory dump could replay. */
const keyOf = (id: string) => createHash('sha256').update(id).digest('base64url')

export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>()

  constructor(private readonly now: () => number = Date.now) {}

  /** Opens a session for a verified identity; returns the cookie value (the only copy of the id). */
  create(identity: Identity): {id: string; session: ConsoleSession} {
    this.sweep()
    // The oldest session gives way rather than the table growing without bound.
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string)
    const now = this.now()
    const tokenEnd = identity.expiresAt ? identity.expiresAt * 1000 : Infinity
    const session = {identity, csrf: randomBytes(32).toString('base64url'), expiresAt: Math.min(now + MAX_SESSION_SECONDS * 1000, tokenEnd)}
    const id = randomBytes(32).toString('base64url')
    this.sessions.set(keyOf(id), session)
    return {id, session}
  }

  get(id: string | undefined): ConsoleSession | undefined {
    if (!id || id.length > 128) return undefined
    const key = keyOf(id)
    const s = this.sessions.get(key)
    if (s && s.expiresAt <= this.now()) {
      this.sessions.delete(key)
      return undefined
    }
    return s
  }

  end(id: string | undefined): void {
    if (id && id.length <= 128) this.sessions.delete(keyOf(id))
  }

  get size(): number {
    return this.sessions.size
  }

  private sweep(): void {
    const now = this.now()
    for (const [k, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(k)
  }
}
