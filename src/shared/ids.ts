// Branded ids, made only by the functions here.
import {randomBytes} from 'node:crypto'

export type SessionId = string & {readonly __brand: 'SessionId'}

export function newSessionId(): SessionId {
  return ('ses_' + randomBytes(9).toString('base64url')) as SessionId
}

export function parseSessionId(value: string): SessionId {
  if (!/^ses_[A-Za-z0-9_-]{12}$/.test(value)) throw new TypeError(`not a session id: ${value}`)
  return value as SessionId
}
