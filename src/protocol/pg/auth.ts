// Client side of PostgreSQL password authentication, used by the gateway to log in to the target
// with the connection's stored secret (credential injection). Pure: strings and buffers in/out.
// SCRAM-SHA-256: RFC 5802 + RFC 7677, as PostgreSQL implements it (the user name in the SCRAM
// message is empty; PostgreSQL takes it from the startup packet).
// https://www.postgresql.org/docs/current/sasl-authentication.html
import {createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual} from 'node:crypto'
import {HoopError} from '../../shared/errors.js'

/** md5 password response: "md5" + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user, 'utf8').digest('hex')
  return 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner, 'utf8'), salt])).digest('hex')
}

export const SCRAM_MECHANISM = 'SCRAM-SHA-256'

/** One SCRAM-SHA-256 exchange. Call `clientFirst`, then `clientFinal`, then `verifyServerFinal`. */
export class ScramClient {
  private readonly nonce: string
  private clientFirstBare = ''
  private expectedServerSignature: Buffer | undefined

  constructor(
    private readonly password: string,
    nonce?: string,
  ) {
    this.nonce = nonce ?? randomBytes(18).toString('base64')
  }

  clientFirst(): string {
    this.clientFirstBare = `n=,r=${this.nonce}`
    return `n,,${this.clientFirstBare}`
  }

  clientFinal(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst)
    const r = attrs.r
    const s = attrs.s
    const i = Number(attrs.i)
    if (!r || !s || !Number.isInteger(i) || i < 1 || i > 10_000_000) throw new HoopError('PROTOCOL_ERROR', 'SCRAM server-first-message is malformed')
    if (!r.startsWith(this.nonce) || r.length === this.nonce.length) throw new HoopError('PROTOCOL_ERROR', 'SCRAM server nonce does not extend the client nonce')
    const salt = Buffer.from(s, 'base64')
    // PostgreSQL applies SASLprep and falls back to the raw bytes when it fails; for the passwords
    // accepted here (no prohibited characters) the raw UTF-8 bytes are what SASLprep returns.
    const salted = pbkdf2Sync(Buffer.from(this.password.normalize('NFKC'), 'utf8'), salt, i, 32, 'sha256')
    const clientKey = hmac(salted, 'Client Key')
    const storedKey = createHash('sha256').update(clientKey).digest()
    const withoutProof = `c=biws,r=${r}`
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`
    const clientSignature = hmac(storedKey, authMessage)
    const proof = Buffer.alloc(clientKey.length)
    for (let k = 0; k < proof.length; k++) proof[k] = clientKey[k] ^ clientSignature[k]
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage)
    return `${withoutProof},p=${proof.toString('base64')}`
  }

  /** Throws unless the server proved it knows the password too (mutual authentication). */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal)
    if (attrs.e) throw new HoopError('TARGET_REFUSED', `target rejected SCRAM authentication: ${attrs.e}`)
    const v = attrs.v ? Buffer.from(attrs.v, 'base64') : Buffer.alloc(0)
    const expected = this.expectedServerSignature
    if (!expected || v.length !== expected.length || !timingSafeEqual(v, expected)) {
      throw new HoopError('PROTOCOL_ERROR', 'SCRAM server signature does not verify: the target did not prove it knows the password')
    }
  }
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest()
}

function parseAttributes(msg: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=')
    if (eq === 1) out[part[0]] = part.slice(2)
  }
  return out
}
