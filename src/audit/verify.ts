// Offline verification of an evidence package (`hoop audit verify PACKAGE`) and of the gateway's
// own store (`--live`). Every check runs; failures are ranked so the reported first failure is the
// most specific one (a named record beats "the root does not match", which beats "a file hash
// differs"). The package's own public key is only trusted when no key is pinned, and the result
// says so.
import type Database from 'better-sqlite3'
import {createHash, type KeyObject} from 'node:crypto'
import {errorMessage} from '../shared/errors.js'
import type {StoredEvent} from './events.js'
import {FILES, type Manifest, PACKAGE_FORMAT, type RangeProofFile} from './export.js'
import {fingerprintOf, publicKeyFromPem, type SignedTreeHead, verifyManifest, verifyTreeHead} from './keys.js'
import {EMPTY_ROOT, leafHash, MerkleFrontier, rootFromRange, verifyConsistency} from './merkle.js'
import {ReportBuilder} from './reports.js'
import {type CheckpointRow, ensureAuditSchema} from './schema.js'
import {isoMappingMarkdown} from './summary.js'
import {readTarGz} from './tar.js'

const GENESIS = '0'.repeat(64)

interface VerifyFailure {
  /** The first bad record: "event seq 42", "file reports/approvals.csv", "signed tree head", ... */
  record: string
  reason: string
  seq?: number
  file?: string
}

export interface VerifyResult {
  ok: boolean
  source: 'package' | 'live'
  /** pinned: --public-key; package: the key shipped in the package; store: keys recorded by the gateway. */
  keyTrust: 'pinned' | 'package' | 'store'
  fingerprint?: string
  treeSize?: number
  rootHash?: string
  firstSeq?: number
  lastSeq?: number
  events: number
  redacted: number
  checkpoints: number
  checks: {name: string; ok: boolean}[]
  first?: VerifyFailure
  failures: VerifyFailure[]
  notes: string[]
}

interface VerifyOptions {
  /** PEM text or a key: pins the gateway key instead of trusting the package's. */
  publicKey?: string | KeyObject
  /** An earlier signed tree head (JSON text or object): proves the log only grew since. */
  previous?: string | SignedTreeHead
}

// Lower rank = reported first.
const RANK = {archive: 0, pin: 0, sth: 1, record: 2, truncated: 3, root: 4, checkpoint: 5, previous: 6, file: 7, manifest: 8, report: 9} as const
type Category = keyof typeof RANK

class Findings {
  private list: {rank: number; order: number; f: VerifyFailure}[] = []
  readonly checks = new Map<string, boolean>()
  fail(cat: Category, f: VerifyFailure): void {
    this.list.push({rank: RANK[cat], order: this.list.length, f})
    this.checks.set(cat, false)
  }

  pass(cat: Category): void {
    if (!this.checks.has(cat)) this.checks.set(cat, true)
  }

  sorted(): VerifyFailure[] {
    return [...this.list].sort((a, b) => a.rank - b.rank || a.order - b.order).map((x) => x.f)
  }
}

function asKey(k: string | KeyObject): KeyObject {
  return typeof k === 'string' ? publicKeyFromPem(k) : k.type === 'private' ? publicKeyFromPem(k.export({type: 'pkcs8', format: 'pem'}).toString()) : k
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex')
}

const HEX64 = /^[0-9a-f]{64}$/

/** Streams events.jsonl: seq continuity, chain links, leaf hashes, report rows. */
class EventChecker {
  expected: number | undefined
  prevHash: string | null = null
  lastHash: string | null = null
  leaves: Buffer[] = []
  readonly reports = new ReportBuilder()
  events = 0
  redacted = 0
  firstSeq?: number
  lastSeq?: number
  broken = false
  private rest: Buffer = Buffer.alloc(0)
  private line = 0

  constructor(private readonly findings: Findings, first: number | undefined, private readonly last: number | undefined) {
    this.expected = first
  }

  data(chunk: Buffer): void {
    let buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk
    let nl: number
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      this.handle(buf.subarray(0, nl))
      buf = buf.subarray(nl + 1)
    }
    this.rest = Buffer.from(buf)
  }

  end(): void {
    if (this.rest.length) this.handle(this.rest)
    this.rest = Buffer.alloc(0)
  }

  private fail(f: VerifyFailure): void {
    this.findings.fail('record', f)
    this.broken = true
  }

  private handle(bytes: Buffer): void {
    this.line++
    if (this.broken) return
    let e: StoredEvent & {redacted?: boolean; leaf_hash?: string}
    try {
      e = JSON.parse(bytes.toString('utf8'))
    } catch {
      return this.fail({record: `events.jsonl line ${this.line}`, reason: 'not valid JSON'})
    }
    const seq = e?.seq
    if (!Number.isSafeInteger(seq) || seq < 1) return this.fail({record: `events.jsonl line ${this.line}`, reason: 'has no valid seq'})
    this.expected ??= seq
    const expected = this.expected
    if (this.last !== undefined && seq > this.last) {
      return this.fail({seq, record: `event seq ${seq}`, reason: `line ${this.line} is beyond the range the package covers (seq ${this.last} is the last): an event was inserted`})
    }
    if (seq < expected) {
      return this.fail({seq, record: `event seq ${seq}`, reason: `appears again at line ${this.line} after seq ${expected - 1}: an event was inserted or records were reordered`})
    }
    if (seq > expected) {
      return this.fail({seq: expected, record: `event seq ${expected}`, reason: `missing from its place: line ${this.line} holds seq ${seq} where seq ${expected} belongs (an event was deleted or records were reordered)`})
    }
    this.firstSeq ??= seq
    if (e.redacted === true) {
      if (typeof e.leaf_hash !== 'string' || !HEX64.test(e.leaf_hash)) return this.fail({seq, record: `event seq ${seq}`, reason: 'redacted entry has no valid leaf_hash'})
      this.leaves.push(Buffer.from(e.leaf_hash, 'hex'))
      this.prevHash = null
      this.lastHash = null
      this.redacted++
    } else {
      const hash = sha256(bytes)
      if (seq === 1 && e.prev_hash !== GENESIS) {
        return this.fail({seq, record: 'event seq 1', reason: 'the first event must carry the genesis prev_hash (64 zeros)'})
      }
      if (this.prevHash !== null && e.prev_hash !== this.prevHash) {
        return this.fail({
          seq: seq - 1,
          record: `event seq ${seq - 1}`,
          reason: `its content does not hash to the prev_hash recorded by seq ${seq}: it was changed after it was written`,
        })
      }
      if (typeof e.kind !== 'string' || typeof e.time !== 'string') return this.fail({seq, record: `event seq ${seq}`, reason: 'is not an audit event (no kind or time)'})
      this.leaves.push(leafHash(bytes))
      this.prevHash = hash
      this.lastHash = hash
      this.reports.add(e)
      this.events++
    }
    this.lastSeq = seq
    this.expected = seq + 1
  }
}

/** Verifies an evidence package written by `exportEvidence`. Needs nothing but the file (and a key to pin). */
export async function verifyPackage(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const findings = new Findings()
  const notes: string[] = []
  const small = new Map<string, Buffer>()
  const hashes = new Map<string, string>()
  let manifest: Manifest | undefined
  let checker: EventChecker | undefined
  let rootDir: string | undefined

  try {
    await readTarGz(path, (name) => {
      const slash = name.indexOf('/')
      rootDir ??= slash > 0 ? name.slice(0, slash) : ''
      const rel = rootDir && name.startsWith(rootDir + '/') ? name.slice(rootDir.length + 1) : name
      const h = createHash('sha256')
      const parts: Buffer[] = []
      const isEvents = rel === FILES.events
      if (isEvents) checker = new EventChecker(findings, manifest?.range?.first_seq, manifest?.range?.last_seq)
      return {
        data(chunk) {
          h.update(chunk)
          if (isEvents) checker!.data(chunk)
          else parts.push(Buffer.from(chunk))
        },
        end() {
          if (hashes.has(rel)) findings.fail('file', {file: rel, record: `file ${rel}`, reason: 'appears twice in the archive'})
          hashes.set(rel, h.digest('hex'))
          if (isEvents) checker!.end()
          else small.set(rel, Buffer.concat(parts))
          if (rel === FILES.manifest) {
            try {
              manifest = JSON.parse(small.get(rel)!.toString('utf8')) as Manifest
            } catch {
              /* reported below */
            }
          }
        },
      }
    })
  } catch (err) {
    findings.fail('archive', {record: 'package', reason: `archive is truncated or corrupt: ${errorMessage(err)}`})
  }

  const result = (keyTrust: VerifyResult['keyTrust'], fingerprint?: string, sth?: SignedTreeHead, checkpoints = 0): VerifyResult => {
    const failures = findings.sorted()
    return {
      ok: failures.length === 0,
      source: 'package',
      keyTrust,
      fingerprint,
      treeSize: sth?.tree_size,
      rootHash: sth?.root_hash,
      firstSeq: checker?.firstSeq,
      lastSeq: checker?.lastSeq,
      events: checker?.events ?? 0,
      redacted: checker?.redacted ?? 0,
      checkpoints,
      checks: [...findings.checks].map(([name, ok]) => ({name, ok})),
      first: failures[0],
      failures,
      notes,
    }
  }

  if (!manifest || manifest.format !== PACKAGE_FORMAT) {
    findings.fail('file', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: manifest ? `format is not ${PACKAGE_FORMAT}` : 'missing or not valid JSON'})
    return result('package')
  }
  for (const required of [FILES.treeHead, FILES.publicKey, FILES.rangeProof, FILES.checkpoints, FILES.consistency]) {
    if (!small.has(required)) findings.fail('file', {file: required, record: `file ${required}`, reason: 'missing from the package'})
  }
  if (!checker) findings.fail('file', {file: FILES.events, record: `file ${FILES.events}`, reason: 'missing from the package'})
  const text = (p: string) => small.get(p)?.toString('utf8')

  // Key: pinned, or the package's own (said clearly).
  let key: KeyObject | undefined
  let keyTrust: VerifyResult['keyTrust'] = 'package'
  let packageKey: KeyObject | undefined
  try {
    if (text(FILES.publicKey)) packageKey = publicKeyFromPem(text(FILES.publicKey)!)
  } catch (err) {
    findings.fail('pin', {file: FILES.publicKey, record: `file ${FILES.publicKey}`, reason: errorMessage(err)})
  }
  if (opts.publicKey) {
    key = asKey(opts.publicKey)
    keyTrust = 'pinned'
    if (packageKey && fingerprintOf(packageKey) !== fingerprintOf(key)) {
      findings.fail('pin', {
        file: FILES.publicKey,
        record: `file ${FILES.publicKey}`,
        reason: `the package's public key (fingerprint ${fingerprintOf(packageKey)}) is not the pinned key (fingerprint ${fingerprintOf(key)})`,
      })
    } else findings.pass('pin')
  } else {
    key = packageKey
    notes.push(`no --public-key given: verified against the public key included in the package (fingerprint ${packageKey ? fingerprintOf(packageKey) : 'none'}); compare it with the gateway's published fingerprint, or pin it with --public-key`)
  }
  const fingerprint = key ? fingerprintOf(key) : undefined
  const declaredFp = text(FILES.fingerprint)?.trim()
  if (packageKey && declaredFp !== undefined && declaredFp !== fingerprintOf(packageKey)) {
    findings.fail('pin', {file: FILES.fingerprint, record: `file ${FILES.fingerprint}`, reason: `says ${declaredFp} but the included key's fingerprint is ${fingerprintOf(packageKey)}`})
  }

  // Signed tree head.
  let sth: SignedTreeHead | undefined
  try {
    sth = JSON.parse(text(FILES.treeHead) ?? 'null') as SignedTreeHead
  } catch {
    /* below */
  }
  if (!sth || typeof sth.tree_size !== 'number' || !HEX64.test(String(sth.root_hash))) {
    findings.fail('sth', {file: FILES.treeHead, record: 'signed tree head', reason: 'tree-head.json is missing or malformed'})
    return result(keyTrust, fingerprint)
  }
  if (!key || !verifyTreeHead(sth, key)) {
    findings.fail('sth', {file: FILES.treeHead, record: `signed tree head (size ${sth.tree_size})`, reason: `signature does not verify with the ${keyTrust === 'pinned' ? 'pinned' : "package's"} public key (fingerprint ${fingerprint ?? 'none'})`})
  } else if (sth.key_fingerprint !== fingerprint) {
    findings.fail('sth', {file: FILES.treeHead, record: `signed tree head (size ${sth.tree_size})`, reason: `names key ${sth.key_fingerprint} but was verified with ${fingerprint}`})
  } else findings.pass('sth')

  // Events: completeness of the range and the signed root.
  const range = manifest.range
  let proof: RangeProofFile | null = null
  try {
    proof = JSON.parse(text(FILES.rangeProof) ?? 'null') as RangeProofFile | null
  } catch {
    findings.fail('root', {file: FILES.rangeProof, record: `file ${FILES.rangeProof}`, reason: 'not valid JSON'})
  }
  if (checker) {
    if (!checker.broken) findings.pass('record')
    if (range && !checker.broken) {
      const last = checker.lastSeq ?? range.first_seq - 1
      if (last < range.last_seq) {
        findings.fail('truncated', {seq: last + 1, record: `event seq ${last + 1}`, reason: `missing: the events end at seq ${last} but the package covers seqs ${range.first_seq}..${range.last_seq} (log truncated)`})
      } else findings.pass('truncated')
      if (last === range.last_seq && range.last_seq === sth.tree_size && checker.lastHash !== null && checker.lastHash !== sth.head_hash) {
        findings.fail('record', {seq: range.last_seq, record: `event seq ${range.last_seq}`, reason: 'its content does not hash to the chain head in the signed tree head: it was changed after it was written'})
      }
    }
    if (range && proof) {
      if (proof.first_seq !== range.first_seq || proof.last_seq !== range.last_seq || proof.tree_size !== sth.tree_size) {
        findings.fail('root', {file: FILES.rangeProof, record: `file ${FILES.rangeProof}`, reason: 'covers a different range or tree size than the manifest and tree head'})
      } else if (!checker.broken && checker.leaves.length === range.last_seq - range.first_seq + 1) {
        const root = rootFromRange(range.first_seq - 1, checker.leaves, sth.tree_size, proof.nodes.map((h) => Buffer.from(h, 'hex')))
        if (!root || root.toString('hex') !== sth.root_hash) {
          findings.fail('root', {record: `events seq ${range.first_seq}..${range.last_seq}`, reason: `do not rebuild the signed Merkle root ${sth.root_hash} (an event was changed, added or removed)`})
        } else findings.pass('root')
      }
    } else if (range && !proof) {
      findings.fail('root', {file: FILES.rangeProof, record: `file ${FILES.rangeProof}`, reason: 'has no proof for the exported range'})
    }
  }

  // Earlier checkpoints: signed by the same key and consistent with the tree head.
  const cps = new Map<number, SignedTreeHead>()
  for (const line of (text(FILES.checkpoints) ?? '').split('\n').filter(Boolean)) {
    const cp = JSON.parse(line) as SignedTreeHead
    cps.set(cp.tree_size, cp)
  }
  const proofs = new Map<number, string[]>()
  for (const line of (text(FILES.consistency) ?? '').split('\n').filter(Boolean)) {
    const p = JSON.parse(line) as {from_size: number; to_size: number; nodes: string[]}
    if (p.to_size === sth.tree_size) proofs.set(p.from_size, p.nodes)
  }
  const consistent = (size: number, root: string): boolean => {
    const nodes = proofs.get(size)
    return nodes !== undefined && verifyConsistency(size, sth!.tree_size, Buffer.from(root, 'hex'), Buffer.from(sth!.root_hash, 'hex'), nodes.map((h) => Buffer.from(h, 'hex')))
  }
  for (const [size, cp] of [...cps].sort((a, b) => a[0] - b[0])) {
    if (!key || !verifyTreeHead(cp, key)) {
      findings.fail('checkpoint', {record: `checkpoint size ${size}`, reason: 'signature does not verify'})
    } else if (!consistent(size, cp.root_hash)) {
      findings.fail('checkpoint', {record: `checkpoint size ${size}`, reason: `is not consistent with the signed tree head of size ${sth.tree_size} (the log was rewritten after this checkpoint)`})
    }
  }
  findings.pass('checkpoint')

  if (opts.previous !== undefined) {
    const prev = typeof opts.previous === 'string' ? (JSON.parse(opts.previous) as SignedTreeHead) : opts.previous
    if (!key || !verifyTreeHead(prev, key)) {
      findings.fail('previous', {record: `earlier tree head (size ${prev.tree_size})`, reason: 'its signature does not verify with this key'})
    } else if (prev.tree_size > sth.tree_size) {
      findings.fail('previous', {record: `earlier tree head (size ${prev.tree_size})`, reason: `is larger than this package's tree (size ${sth.tree_size}): the log shrank`})
    } else if (prev.tree_size === sth.tree_size ? prev.root_hash !== sth.root_hash : !consistent(prev.tree_size, prev.root_hash)) {
      findings.fail('previous', {
        record: `earlier tree head (size ${prev.tree_size})`,
        reason: proofs.has(prev.tree_size) || prev.tree_size === sth.tree_size ? 'is not consistent with this package: the log was rewritten since' : 'this package has no consistency proof from that size (export again from the gateway that signed it)',
      })
    } else findings.pass('previous')
  }

  // Manifest: every file listed and hashed, nothing extra, signature.
  const listed = new Set<string>()
  for (const f of manifest.files ?? []) {
    listed.add(f.path)
    const got = hashes.get(f.path)
    if (got === undefined) findings.fail('file', {file: f.path, record: `file ${f.path}`, reason: 'listed in the manifest but missing from the package'})
    else if (got !== f.sha256) findings.fail('file', {file: f.path, record: `file ${f.path}`, reason: 'SHA-256 does not match the manifest: edited after export'})
  }
  for (const p of hashes.keys()) {
    if (p !== FILES.manifest && p !== FILES.manifestSig && !listed.has(p)) findings.fail('file', {file: p, record: `file ${p}`, reason: 'not listed in the manifest: added after export'})
  }
  findings.pass('file')
  const sig = text(FILES.manifestSig)
  if (manifest.signed_by_exporter || sig !== undefined) {
    if (!sig || !key || !verifyManifest(small.get(FILES.manifest)!, sig, key)) {
      findings.fail('manifest', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: 'its signature (manifest.sig) does not verify: the manifest was changed after export'})
    } else findings.pass('manifest')
  } else notes.push('the manifest is not signed (exported without the signing key); file integrity rests on the events and tree head')
  if (manifest.tree_head?.root_hash !== sth.root_hash || manifest.tree_head?.tree_size !== sth.tree_size) {
    findings.fail('manifest', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: 'names a different tree head than tree-head.json'})
  }

  // Reports and summary must be exactly what the verified events say.
  if (checker && !checker.broken) {
    const derived = [
      ...checker.reports.files(),
      {
        path: FILES.summary,
        content: isoMappingMarkdown({createdAt: manifest.created_at, filters: manifest.filters, range: manifest.range, sth, fingerprint: sth.key_fingerprint, reports: checker.reports, treeSize: sth.tree_size}),
      },
    ]
    for (const d of derived) {
      const got = hashes.get(d.path)
      if (got !== undefined && got !== sha256(d.content)) {
        findings.fail('report', {file: d.path, record: `file ${d.path}`, reason: 'does not match what the signed events say: edited after export'})
      }
    }
    if (range && (checker.events !== range.events || checker.redacted !== range.redacted)) {
      findings.fail('manifest', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: `counts ${range.events} events and ${range.redacted} redacted, the package holds ${checker.events} and ${checker.redacted}`})
    }
    findings.pass('report')
  }
  return result(keyTrust, fingerprint, sth, cps.size)
}

/** Verifies the gateway's own store: chain, stored hashes and leaves, and every signed checkpoint. */
export function verifyLive(db: Database.Database, opts: {publicKey?: string | KeyObject} = {}): VerifyResult {
  ensureAuditSchema(db)
  const findings = new Findings()
  const notes: string[] = []
  const pinned = opts.publicKey ? asKey(opts.publicKey) : undefined
  const storeKeys = new Map((db.prepare('SELECT fingerprint, public_pem FROM audit_keys').all() as {fingerprint: string; public_pem: string}[]).map((r) => [r.fingerprint, r.public_pem]))
  const keyFor = (fp: string): KeyObject | undefined => {
    if (pinned) return fingerprintOf(pinned) === fp ? pinned : undefined
    const pem = storeKeys.get(fp)
    return pem ? publicKeyFromPem(pem) : undefined
  }
  if (!pinned) notes.push('no --public-key given: checkpoints were verified with the public keys recorded in the store')

  const checkpoints = (db.prepare('SELECT * FROM audit_checkpoints ORDER BY tree_size').all() as CheckpointRow[]).map((c) => ({v: 1 as const, ...c}))
  let ci = 0
  const frontier = new MerkleFrontier()
  let prev = GENESIS
  let count = 0
  let broken = false
  let firstSeq: number | undefined
  const checkCheckpoints = () => {
    while (ci < checkpoints.length && checkpoints[ci].tree_size === count) {
      const cp = checkpoints[ci++]
      const k = keyFor(cp.key_fingerprint)
      const root = count === 0 ? EMPTY_ROOT : frontier.root()
      if (!k) findings.fail('checkpoint', {record: `checkpoint size ${cp.tree_size}`, reason: `signed by key ${cp.key_fingerprint}, which is ${pinned ? 'not the pinned key' : 'not recorded in the store'}`})
      else if (!verifyTreeHead(cp, k)) findings.fail('checkpoint', {record: `checkpoint size ${cp.tree_size}`, reason: 'signature does not verify'})
      else if (!broken && root.toString('hex') !== cp.root_hash) findings.fail('root', {record: `checkpoint size ${cp.tree_size}`, reason: 'the stored events do not rebuild its signed root'})
      else if (!broken && cp.head_hash !== prev) findings.fail('root', {record: `checkpoint size ${cp.tree_size}`, reason: 'its chain head does not match the stored events'})
    }
  }
  checkCheckpoints()
  const rows = db.prepare('SELECT seq, hash, leaf, body FROM audit_events ORDER BY seq').raw().iterate() as IterableIterator<[number, string, Buffer, string]>
  for (const [seq, hash, leaf, body] of rows) {
    if (broken) break
    const expected = count + 1
    firstSeq ??= seq
    if (seq !== expected) {
      findings.fail('record', {seq: expected, record: `event seq ${expected}`, reason: `missing: the store goes from seq ${expected - 1} to ${seq} (an event was deleted)`})
      broken = true
      break
    }
    let e: StoredEvent
    try {
      e = JSON.parse(body) as StoredEvent
    } catch {
      findings.fail('record', {seq, record: `event seq ${seq}`, reason: 'its stored body is not valid JSON'})
      broken = true
      break
    }
    const h = sha256(body)
    if (e.seq !== seq) {
      findings.fail('record', {seq, record: `event seq ${seq}`, reason: `its content says seq ${e.seq}: records were swapped or moved`})
    } else if (h !== hash) {
      findings.fail('record', {seq, record: `event seq ${seq}`, reason: 'its content does not match its stored hash: it was changed after it was written'})
    } else if (e.prev_hash !== prev) {
      findings.fail('record', {seq: seq - 1, record: `event seq ${seq - 1}`, reason: `its content does not hash to the prev_hash recorded by seq ${seq}: it was changed after it was written`})
    } else if (!leafHash(body).equals(leaf)) {
      findings.fail('record', {seq, record: `event seq ${seq}`, reason: 'its stored Merkle leaf does not match its content'})
    } else {
      frontier.push(leaf)
      prev = h
      count++
      checkCheckpoints()
      continue
    }
    broken = true
  }
  if (!broken) {
    findings.pass('record')
    const beyond = checkpoints.slice(ci).filter((c) => c.tree_size > count)
    if (beyond.length > 0) {
      findings.fail('truncated', {seq: count + 1, record: `event seq ${count + 1}`, reason: `missing: the signed checkpoint of size ${beyond.at(-1)!.tree_size} covers it but the store ends at seq ${count} (log truncated)`})
    }
    const signed = checkpoints.length ? checkpoints[checkpoints.length - 1].tree_size : 0
    if (count > signed) notes.push(`${count - signed} event(s) after the last checkpoint (size ${signed}) are chained but not yet covered by a signed tree head`)
  }
  findings.pass('checkpoint')
  const failures = findings.sorted()
  const last = checkpoints.at(-1)
  return {
    ok: failures.length === 0,
    source: 'live',
    keyTrust: pinned ? 'pinned' : 'store',
    fingerprint: pinned ? fingerprintOf(pinned) : last?.key_fingerprint,
    treeSize: last?.tree_size,
    rootHash: last?.root_hash,
    firstSeq,
    lastSeq: count || undefined,
    events: count,
    redacted: 0,
    checkpoints: checkpoints.length,
    checks: [...findings.checks].map(([name, ok]) => ({name, ok})),
    first: failures[0],
    failures,
    notes,
  }
}

