// Gateway-issued secrets (agent tokens, service-account keys): `hoop_<kind>_<id>_<secret>`.
// Only a SHA-256 hash of the secret is stored; comparison is constant-time. The id part lets
// the gateway find the record without scanning, and is safe to log.
import {createHash, randomBytes, timingSafeEqual} from 'node:crypto'

type KeyKind = 'sa' | 'ag'

interface IssuedKey {
  id: string
  token: string
  hash: string
}

export function issueKey(kind: KeyKind): IssuedKey {
  const id = randomBytes(6).toString('hex')
  const secret = randomBytes(32).toString('base64url')
  const token = `hoop_${kind}_${id}_${secret}`
  return {id, token, hash: hashSecret(secret)}
}

export function parseKey(token: string): {kind: KeyKind; id: string; secret: string} | undefined {
  const m = /^hoop_(sa|ag)_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(token)
  if (!m) return undefined
  return {kind: m[1] as KeyKind, id: m[2], secret: m[3]}
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex')
  const b = Buffer.from(storedHash, 'hex')
  return a.length === b.length && timingSafeEqual(a, b)
}
