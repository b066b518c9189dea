// The web console's login sessions: a random id in an HttpOnly cookie, and in the gateway's store
// (store.ts) the identity verified from the OpenID Provider's access token, a CSRF token, and an
// expiry no later than that token's. Every replica on one store sees the same sessions, and a
// sign-out on one ends the session on all.
import {createHash, randomBytes, timingSafeEqual} from 'node:crypto'
import type {Identity} from '../identity/types.js'
import type {ConsoleSession, ConsoleStore} from './store.js'

export type {ConsoleSession} from './store.js'

/** Short-lived on purpose: an hour at most, and never past the access token it was made from. */
export const MAX_SESSION_SECONDS = 3600
/** Our ids are 43 characters; anything much longer is not one, and is not hashed or looked up. */
const MAX_ID_LENGTH = 128

/** Constant-time equality of two secrets of any length (compared as SHA-256 digests). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

const plausible = (id: string | undefined): id is string => id !== undefined && id.length > 0 && id.length <= MAX_ID_LENGTH

export class ConsoleSessions {
  constructor(
    private readonly store: ConsoleStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** Opens a session for a verified identity; returns the cookie value (the only copy of the id). */
  async create(identity: Identity): Promise<{id: string; session: ConsoleSession}> {
    const now = this.now()
    const tokenEnd = identity.expiresAt ? identity.expiresAt * 1000 : Infinity
    const session = {identity, csrf: randomBytes(32).toString('base64url'), expiresAt: Math.min(now + MAX_SESSION_SECONDS * 1000, tokenEnd)}
    const id = randomBytes(32).toString('base64url')
    await this.store.addSession(id, session, now)
    return {id, session}
  }

  async get(id: string | undefined): Promise<ConsoleSession | undefined> {
    return plausible(id) ? this.store.session(id, this.now()) : undefined
  }

  async end(id: string | undefined): Promise<void> {
    if (plausible(id)) await this.store.endSession(id)
  }
}
