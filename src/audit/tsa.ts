// RFC 3161 trusted timestamps for signed tree heads: the request (a SHA-256 message imprint and a
// nonce, certReq set so the token carries the TSA's certificate), the response, and the check of
// a token offline: its message imprint, its CMS signature (RFC 5652 §5.4: the signed attributes,
// whose message-digest attribute binds the TSTInfo), the signer's timeStamping extended key use,
// its validity at the token's time and, when CA certificates are given, its chain to one of them.
// A token binds the head to an outside clock: whoever holds it can show the head existed then.
import {createHash, verify as verifySignature, X509Certificate} from 'node:crypto'
import {errorMessage, HoopError} from '../shared/errors.js'
import {bool, children, ctx, DerError, expect, type Node, nul, octets, oid, parseDer, raw, readGeneralizedTime, readInt, readOid, seq, TAG, uint, value} from './der.js'

const OIDS = {
  signedData: '1.2.840.113549.1.7.2',
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
} as const

/** Digest algorithms a token may use, by OID, as node:crypto names them. */
const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}
const SHA256_OID = '2.16.840.1.101.3.4.2.1'

/** Signature algorithms: the hash they fix (undefined: the SignerInfo's digest algorithm; null: none, Ed25519). */
const SIGNATURES: Record<string, string | undefined | null> = {
  '1.2.840.113549.1.1.1': undefined, // rsaEncryption
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.2.1': undefined, // ecPublicKey
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null, // Ed25519
}

const PKI_STATUS = ['granted', 'grantedWithMods', 'rejection', 'waiting', 'revocationWarning', 'revocationNotification']

/** TimeStampReq (RFC 3161 §2.4.1) for a SHA-256 digest, with a nonce and certReq TRUE. */
export function timestampRequest(digest: Buffer, nonce: Buffer): Buffer {
  if (digest.length !== 32) throw new HoopError('INVALID_INPUT', 'a timestamp request takes a SHA-256 digest (32 bytes)')
  return seq(uint(Buffer.from([1])), seq(seq(oid(SHA256_OID), nul()), octets(digest)), uint(nonce), bool(true))
}

/** TimeStampResp (RFC 3161 §2.4.2): the status and, when granted, the token (a CMS ContentInfo). */
export function parseTimestampResponse(der: Buffer): {status: string; text?: string; token?: Buffer} {
  const top = children(expect(parseDer(der), TAG.SEQUENCE, 'TimeStampResp'))
  const statusInfo = children(expect(top[0], TAG.SEQUENCE, 'PKIStatusInfo'))
  const code = Number(readInt(statusInfo[0]))
  const status = PKI_STATUS[code] ?? `status ${code}`
  let text: string | undefined
  if (statusInfo[1]?.tag === TAG.SEQUENCE) {
    text = children(statusInfo[1])
      .map((s) => value(s).toString('utf8'))
      .join('; ')
      .replace(/[^\x20-\x7e]+/g, ' ')
      .slice(0, 200)
  }
  const token = top[1] ? Buffer.from(raw(expect(top[1], TAG.SEQUENCE, 'TimeStampToken'))) : undefined
  return {status, text, token}
}

/** What a token says (TSTInfo, RFC 3161 §2.4.2), before its signature is checked. */
export interface TokenInfo {
  /** ISO 8601: when the TSA says it saw the imprint. */
  genTime: string
  /** Hex. */
  serial: string
  policy: string
  /** node:crypto hash name of the message imprint. */
  imprintAlgorithm: string
  imprint: Buffer
  nonce?: bigint
}

interface ParsedToken {
  info: TokenInfo
  /** The DER of TSTInfo (the encapsulated content). */
  tstInfo: Buffer
  certificates: X509Certificate[]
  /** Raw issuer Name and serial (big-endian magnitude) of each certificate, for matching the signer. */
  certIds: {issuer: Buffer; serial: Buffer}[]
  signer: {
    issuer?: Buffer
    serial?: Buffer
    digestAlgorithm: string
    signedAttrs?: Buffer
    messageDigest?: Buffer
    contentType?: string
    signatureAlgorithm: string
    signature: Buffer
  }
}

function hashName(algId: Node, what: string): string {
  const o = readOid(children(expect(algId, TAG.SEQUENCE, what))[0])
  const h = HASHES[o]
  if (!h) throw new DerError(`${what} ${o} is not a supported digest`)
  return h
}

/** The big-endian magnitude of an INTEGER's bytes (leading zero dropped), for comparisons. */
function magnitude(intNode: Node): Buffer {
  let b = value(expect(intNode, TAG.INTEGER, 'serial number'))
  while (b.length > 1 && b[0] === 0) b = b.subarray(1)
  return b
}

function parseToken(token: Buffer): ParsedToken {
  const ci = children(expect(parseDer(token), TAG.SEQUENCE, 'ContentInfo'))
  if (readOid(ci[0]) !== OIDS.signedData) throw new DerError('the token is not CMS SignedData')
  const sd = children(expect(children(expect(ci[1], ctx(0), 'SignedData wrapper'))[0], TAG.SEQUENCE, 'SignedData'))
  // version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
  const encap = children(expect(sd[2], TAG.SEQUENCE, 'EncapsulatedContentInfo'))
  if (readOid(encap[0]) !== OIDS.tstInfo) throw new DerError('the token does not hold a TSTInfo')
  const tstInfo = value(expect(children(expect(encap[1], ctx(0), 'eContent'))[0], TAG.OCTET_STRING, 'eContent'))
  let i = 3
  const certificates: X509Certificate[] = []
  const certIds: ParsedToken['certIds'] = []
  if (sd[i]?.tag === ctx(0)) {
    for (const c of children(sd[i])) {
      if (c.tag !== TAG.SEQUENCE) continue // other certificate formats are not used by TSAs
      const tbs = children(expect(children(c)[0], TAG.SEQUENCE, 'TBSCertificate'))
      const off = tbs[0].tag === ctx(0) ? 1 : 0
      certificates.push(new X509Certificate(Buffer.from(raw(c))))
      certIds.push({serial: magnitude(tbs[off]), issuer: Buffer.from(raw(tbs[off + 2]))})
    }
    i++
  }
  if (sd[i]?.tag === ctx(1)) i++
  const signerInfos = children(expect(sd[i], TAG.SET, 'signerInfos'))
  if (signerInfos.length !== 1) throw new DerError(`the token has ${signerInfos.length} signers; a timestamp has one`)
  const si = children(expect(signerInfos[0], TAG.SEQUENCE, 'SignerInfo'))
  // version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature, [1] unsignedAttrs
  const signer: ParsedToken['signer'] = {digestAlgorithm: hashName(si[2], 'digest algorithm'), signatureAlgorithm: '', signature: Buffer.alloc(0)}
  if (si[1].tag === TAG.SEQUENCE) {
    const ias = children(si[1])
    signer.issuer = Buffer.from(raw(ias[0]))
    signer.serial = magnitude(ias[1])
  }
  let j = 3
  if (si[j]?.tag === ctx(0)) {
    // Signed over the DER of the attributes as a SET (RFC 5652 §5.4): the IMPLICIT [0] tag is replaced.
    const attrs = Buffer.from(raw(si[j]))
    attrs[0] = TAG.SET
    signer.signedAttrs = attrs
    for (const a of children(si[j])) {
      const [type, values] = children(expect(a, TAG.SEQUENCE, 'attribute'))
      const t = readOid(type)
      const first = children(expect(values, TAG.SET, 'attribute values'))[0]
      if (t === OIDS.messageDigest) signer.messageDigest = Buffer.from(value(expect(first, TAG.OCTET_STRING, 'message digest')))
      if (t === OIDS.contentType) signer.contentType = readOid(first)
    }
    j++
  }
  signer.signatureAlgorithm = readOid(children(expect(si[j], TAG.SEQUENCE, 'signature algorithm'))[0])
  signer.signature = Buffer.from(value(expect(si[j + 1], TAG.OCTET_STRING, 'signature')))

  const t = children(expect(parseDer(Buffer.from(tstInfo)), TAG.SEQUENCE, 'TSTInfo'))
  // version, policy, messageImprint, serialNumber, genTime, accuracy?, ordering?, nonce?, [0] tsa?, [1] extensions?
  const mi = children(expect(t[2], TAG.SEQUENCE, 'message imprint'))
  const info: TokenInfo = {
    policy: readOid(t[1]),
    imprintAlgorithm: hashName(mi[0], 'message imprint algorithm'),
    imprint: Buffer.from(value(expect(mi[1], TAG.OCTET_STRING, 'message imprint'))),
    serial: magnitude(t[3]).toString('hex'),
    genTime: readGeneralizedTime(t[4]),
  }
  for (const n of t.slice(5)) if (n.tag === TAG.INTEGER) info.nonce = readInt(n)
  return {info, tstInfo: Buffer.from(tstInfo), certificates, certIds, signer}
}

/** What a token says, unchecked (which head it stamps, and when); DerError when it is unreadable. */
export function readTimestampToken(token: Buffer): TokenInfo {
  return parseToken(token).info
}

export type TokenCheck =
  | {ok: true; info: TokenInfo; signer: string; chain: 'trusted' | 'not-pinned'}
  | {ok: false; reason: string; info?: TokenInfo}

/**
 * Checks a timestamp token against the digest it must carry. `trusted`: CA certificates the
 * signer must chain to (through certificates in the token); without them the signature is checked
 * with the certificate the token carries, and `chain` says it was not pinned.
 */
export function verifyTimestampToken(token: Buffer, o: {digest: Buffer; trusted?: X509Certificate[]; nonce?: bigint}): TokenCheck {
  let p: ParsedToken
  try {
    p = parseToken(token)
  } catch (err) {
    return {ok: false, reason: `not a readable RFC 3161 token: ${errorMessage(err)}`}
  }
  const {info, signer} = p
  const bad = (reason: string): TokenCheck => ({ok: false, reason, info})
  if (info.imprintAlgorithm !== 'sha256' || !info.imprint.equals(o.digest)) {
    return bad(`its message imprint (${info.imprintAlgorithm} ${info.imprint.toString('hex')}) is not the SHA-256 of this tree head (${o.digest.toString('hex')})`)
  }
  if (o.nonce !== undefined && info.nonce !== o.nonce) return bad('its nonce is not the one sent with the request')
  if (signer.signedAttrs) {
    if (signer.contentType !== OIDS.tstInfo) return bad('its signed content-type attribute is not TSTInfo')
    const d = createHash(signer.digestAlgorithm).update(p.tstInfo).digest()
    if (!signer.messageDigest || !signer.messageDigest.equals(d)) return bad('its signed message-digest attribute does not match the TSTInfo: the token was altered')
  }
  const idx = p.certIds.findIndex((c) => signer.serial && signer.issuer && c.serial.equals(signer.serial) && c.issuer.equals(signer.issuer))
  const cert = idx >= 0 ? p.certificates[idx] : p.certificates.length === 1 ? p.certificates[0] : undefined
  if (!cert) return bad('it does not carry the TSA certificate that signed it (request with certReq)')
  const hashAlg = SIGNATURES[signer.signatureAlgorithm]
  if (hashAlg === undefined && !(signer.signatureAlgorithm in SIGNATURES)) return bad(`its signature algorithm ${signer.signatureAlgorithm} is not supported`)
  const signed = signer.signedAttrs ?? p.tstInfo
  let valid: boolean
  try {
    valid = verifySignature(hashAlg === null ? null : (hashAlg ?? signer.digestAlgorithm), signed, {key: cert.publicKey, dsaEncoding: 'der'}, signer.signature)
  } catch (err) {
    return bad(`its signature cannot be checked: ${errorMessage(err)}`)
  }
  if (!valid) return bad(`its signature does not verify with the certificate of ${cert.subject.replace(/\n/g, ', ')}: the token was altered`)
  if (!(cert.keyUsage ?? []).includes(OIDS.timeStamping)) return bad(`the signing certificate (${cert.subject.replace(/\n/g, ', ')}) is not for time stamping (extendedKeyUsage timeStamping)`)
  const at = Date.parse(info.genTime)
  if (at < Date.parse(cert.validFrom) || at > Date.parse(cert.validTo)) return bad(`the signing certificate was not valid at the token's time ${info.genTime}`)
  let chain: 'trusted' | 'not-pinned' = 'not-pinned'
  if (o.trusted && o.trusted.length > 0) {
    let cur = cert
    let ok = false
    for (let depth = 0; depth < 6 && !ok; depth++) {
      if (o.trusted.some((ca) => cur.fingerprint256 === ca.fingerprint256 || (cur.checkIssued(ca) && cur.verify(ca.publicKey)))) {
        ok = true
        break
      }
      const next = p.certificates.find((c) => c !== cur && cur.checkIssued(c) && cur.verify(c.publicKey))
      if (!next) break
      cur = next
    }
    if (!ok) return bad(`the TSA certificate (${cert.subject.replace(/\n/g, ', ')}) does not chain to a pinned TSA CA`)
    chain = 'trusted'
  }
  return {ok: true, info, signer: cert.subject.replace(/\n/g, ', '), chain}
}

/** Asks a TSA to timestamp a SHA-256 digest; returns the token once it checks out against the request. */
export async function requestTimestamp(url: string, digest: Buffer, o: {timeoutMs?: number; trusted?: X509Certificate[]} = {}): Promise<{token: Buffer; info: TokenInfo}> {
  const nonceBytes = Buffer.from(createHash('sha256').update(digest).update(String(process.hrtime.bigint())).update(String(Math.random())).digest().subarray(0, 8))
  nonceBytes[0] &= 0x7f
  const nonce = BigInt('0x' + nonceBytes.toString('hex'))
  const res = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply'},
    body: timestampRequest(digest, nonceBytes),
    signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
  })
  const body = Buffer.from(await res.arrayBuffer())
  if (res.status !== 200) throw new Error(`timestamp authority answered HTTP ${res.status}`)
  let r: ReturnType<typeof parseTimestampResponse>
  try {
    r = parseTimestampResponse(body)
  } catch (err) {
    throw new Error(`timestamp authority sent no RFC 3161 response: ${errorMessage(err)}`)
  }
  if ((r.status !== 'granted' && r.status !== 'grantedWithMods') || !r.token) throw new Error(`timestamp authority refused: ${r.status}${r.text ? ` (${r.text})` : ''}`)
  const check = verifyTimestampToken(r.token, {digest, nonce, trusted: o.trusted})
  if (!check.ok) throw new Error(`timestamp token from ${url} does not check out: ${check.reason}`)
  return {token: r.token, info: check.info}
}

/** PEM certificates (one or more, concatenated) as X509Certificates. */
export function certificatesFromPem(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new HoopError('INVALID_INPUT', 'no PEM certificate found')
  return blocks.map((b) => new X509Certificate(b))
}

