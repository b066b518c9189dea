// Client side of the MySQL authentication plugins the gateway speaks to a target (credential
// injection). Pure crypto, no sockets.
// mysql_native_password: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods_native_password_authentication.html
// caching_sha2_password: https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html
import {constants, createHash, publicEncrypt} from 'node:crypto'

export const NATIVE_PASSWORD = 'mysql_native_password'
export const CACHING_SHA2 = 'caching_sha2_password'
export const SHA256_PASSWORD = 'sha256_password'
export const CLEAR_PASSWORD = 'mysql_clear_password'

/** caching_sha2_password AuthMoreData status bytes. */
export const SHA2_FAST_AUTH_OK = 0x03
export const SHA2_FULL_AUTH = 0x04
/** Client byte asking the server for its RSA public key (caching_sha2_password). */
export const SHA2_REQUEST_PUBLIC_KEY = 0x02

function hash(alg: 'sha1' | 'sha256', ...parts: Buffer[]): Buffer {
  const h = createHash(alg)
  for (const p of parts) h.update(p)
  return h.digest()
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i % b.length]
  return out
}

/** The scramble part used by the plugins: the first 20 bytes of auth-plugin-data. */
function nonce(scramble: Buffer): Buffer {
  return scramble.subarray(0, 20)
}

/** SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for an empty password. */
export function nativePasswordToken(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0)
  const stage1 = hash('sha1', Buffer.from(password, 'utf8'))
  const stage2 = hash('sha1', stage1)
  return xor(stage1, hash('sha1', nonce(scramble), stage2))
}

/** SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble); empty for an empty password. */
export function cachingSha2Token(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0)
  const stage1 = hash('sha256', Buffer.from(password, 'utf8'))
  const stage2 = hash('sha256', stage1)
  return xor(stage1, hash('sha256', stage2, nonce(scramble)))
}

/** Full authentication without TLS: (password + NUL) XOR scramble, RSA-OAEP encrypted with the server's public key. */
export function rsaEncryptPassword(password: string, scramble: Buffer, publicKeyPem: string): Buffer {
  const plain = xor(Buffer.from(password + '\0', 'utf8'), nonce(scramble))
  return publicEncrypt({key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING}, plain)
}

/** The first auth response for a plugin, or undefined when the gateway does not speak it. */
export function initialAuthResponse(plugin: string, password: string, scramble: Buffer): Buffer | undefined {
  switch (plugin) {
    case NATIVE_PASSWORD:
      return nativePasswordToken(password, scramble)
    case CACHING_SHA2:
      return cachingSha2Token(password, scramble)
    default:
      return undefined
  }
}
