// The Ed25519 key that signs tree heads and evidence manifests. Kept in the data dir as
// `audit-signing.key` (PKCS#8 PEM, mode 0600, created on first use), or given as PEM in
// HOOP_AUDIT_SIGNING_KEY, or as a file (option / HOOP_AUDIT_SIGNING_KEY_FILE).
// Fingerprint = SHA-256 of the SubjectPublicKeyInfo DER, hex.
import {createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {errorMessage, HoopError} from '../shared/errors.js'
import {canonicalize} from './canonical.js'

const KEY_FILE = 'audit-signing.key'
const STH_DOMAIN = 'hoop-audit-tree-head-v1\n'
const MANIFEST_DOMAIN = 'hoop-audit-manifest-v1\n'

export interface SigningKey {
  privateKey: KeyObject
  publicKey: KeyObject
  publicPem: string
  fingerprint: string
  source: string
}

interface TreeHead {
  v: 1
  tree_size: number
  /** RFC 6962 root, hex. */
  root_hash: string
  /** Chain hash of the last event in the tree (64 zeros when empty), hex. */
  head_hash: string
  timestamp: string
  key_fingerprint: string
}

export interface SignedTreeHead extends TreeHead {
  /** Ed25519 over "hoop-audit-tree-head-v1\n" || canonical(TreeHead), base64. */
  signature: string
}

interface KeyOptions {
  dataDir: string
  key?: KeyObject | string
  keyFile?: string
  /** Create the data-dir key when no key is configured (gateway: yes; read-only commands: no). */
  create?: boolean
}

export function fingerprintOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({type: 'spki', format: 'der'})).digest('hex')
}

export function publicKeyFromPem(pem: string | Buffer): KeyObject {
  try {
    const text = pem.toString()
    const key = text.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(text)) : createPublicKey(text)
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${key.asymmetricKeyType} key`)
    return key
  } catch (err) {
    throw new HoopError('INVALID_INPUT', `not an Ed25519 public key in PEM form: ${errorMessage(err)}`)
  }
}

function fromPrivate(privateKey: KeyObject, source: string): SigningKey {
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new HoopError('CONFIG_INVALID', `audit signing key from ${source} is ${privateKey.asymmetricKeyType}; it must be Ed25519`)
  }
  const publicKey = createPublicKey(privateKey)
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({type: 'spki', format: 'pem'}).toString(),
    fingerprint: fingerprintOf(publicKey),
    source,
  }
}

function parsePrivate(pem: string, source: string): SigningKey {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    throw new HoopError('CONFIG_INVALID', `audit signing key from ${source} is not a PEM private key`)
  }
  return fromPrivate(key, source)
}

function readKeyFile(file: string, requirePrivateMode: boolean): SigningKey {
  let st
  try {
    st = statSync(file)
  } catch (err) {
    throw new HoopError('CONFIG_INVALID', `cannot read audit signing key ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
  }
  if (requirePrivateMode && process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new HoopError('CONFIG_INVALID', `audit signing key ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); it must be mode 0600`)
  }
  return parsePrivate(readFileSync(file, 'utf8'), file)
}

/** Returns the signing key, or undefined when none is configured and `create` is false. */
export function loadSigningKey(opts: KeyOptions): SigningKey | undefined {
  if (opts.key instanceof KeyObject) return fromPrivate(opts.key, 'option')
  if (typeof opts.key === 'string') return parsePrivate(opts.key, 'option')
  if (opts.keyFile) return readKeyFile(opts.keyFile, true)
  const envPem = process.env.HOOP_AUDIT_SIGNING_KEY
  if (envPem) return parsePrivate(envPem, 'HOOP_AUDIT_SIGNING_KEY')
  const envFile = process.env.HOOP_AUDIT_SIGNING_KEY_FILE
  if (envFile) return readKeyFile(envFile, true)
  const file = join(opts.dataDir, KEY_FILE)
  if (existsSync(file)) return readKeyFile(file, true)
  if (!opts.create) return undefined
  mkdirSync(opts.dataDir, {recursive: true, mode: 0o700})
  const {privateKey} = generateKeyPairSync('ed25519')
  const pem = privateKey.export({type: 'pkcs8', format: 'pem'}).toString()
  try {
    writeFileSync(file, pem, {mode: 0o600, flag: 'wx'})
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readKeyFile(file, true)
    throw err
  }
  return fromPrivate(privateKey, file)
}

export function signTreeHead(head: Omit<TreeHead, 'v' | 'key_fingerprint'>, key: SigningKey): SignedTreeHead {
  const body: TreeHead = {v: 1, ...head, key_fingerprint: key.fingerprint}
  const signature = sign(null, Buffer.from(STH_DOMAIN + canonicalize(body)), key.privateKey).toString('base64')
  return {...body, signature}
}

export function verifyTreeHead(sth: SignedTreeHead, publicKey: KeyObject): boolean {
  const {signature, ...body} = sth
  if (typeof signature !== 'string') return false
  try {
    return verify(null, Buffer.from(STH_DOMAIN + canonicalize(body)), publicKey, Buffer.from(signature, 'base64'))
  } catch {
    return false
  }
}

export function signManifest(manifest: Buffer, key: SigningKey): string {
  return sign(null, Buffer.concat([Buffer.from(MANIFEST_DOMAIN), manifest]), key.privateKey).toString('base64')
}

export function verifyManifest(manifest: Buffer, signature: string, publicKey: KeyObject): boolean {
  try {
    return verify(null, Buffer.concat([Buffer.from(MANIFEST_DOMAIN), manifest]), publicKey, Buffer.from(signature.trim(), 'base64'))
  } catch {
    return false
  }
}
