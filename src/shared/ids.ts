// Branded ids, made only by the functions here.
import {randomBytes} from 'node:crypto'

type SessionId = string & {readonly __brand: 'SessionId'}

export function newSessionId(): SessionId {
  return ('ses_' + randomBytes(9).toString('base64url')) as SessionId
}
