// Offline verification of an evidence package (`hoop audit verify PACKAGE`) and of the gateway's
// own store (`--live`). Every check runs; failures are ranked so the reported first failure is the
// most specific one (a named record beats "the root does not match", which beats "a file hash
// differs"). The package's own public key is only trusted when no key is pinned, and the result
// says so.
//
// A package is untrusted input, read strictly and within bounds (VerifyLimits): the archive holds
// exactly the regular files its manifest lists (manifest.json first), each read once and checked
// against its listed size before a byte of it is read; JSONL lines, file sizes, the whole archive
// and the time spent are capped; every malformed input is a named failure, never an exception.
import type Database from 'better-sqlite3'
import {createHash, type Hash, type KeyObject, type X509Certificate} from 'node:crypto'
import {type AnchorCheck, type AnchorSet, judgeAnchors, type SourcedAnchor} from './anchor-check.js'
import {anchorFromJson, treeHeadProblem} from './anchors.js'
import {readFileSync} from 'node:fs'
import type {StoredEvent} from './events.js'
import {FILES, FILES_V1, type Manifest, PACKAGE_FORMAT, type PackageAnchor, type RangeProofFile} from './export.js'
import {fingerprintOf, publicKeyFromPem, type SignedTreeHead, verifyManifest, verifyTreeHead} from './keys.js'
import {EMPTY_ROOT, leafHash, MerkleFrontier, MerkleTree, rootFromRange, verifyConsistency} from './merkle.js'
import {PAYLOAD_MEMBER, payloadHash, splitPackageLine, withPayload} from './payloads.js'
import {ReportBuilder} from './reports.js'
import {removalNotes, RemovalLedger, type RemovalGroup} from './retention.js'
import {type CheckpointRow, ensureAuditSchema, payloadColumn} from './schema.js'
import {isoMappingMarkdown} from './summary.js'
import {DeadlineError, quoteName, readTarGz, type TarEntryHandler, TarError} from './tar.js'
import {errorMessage} from '../shared/errors.js'
import {LineSplitter} from './lines.js'

export {LineSplitter}

const GENESIS = '0'.repeat(64)

export interface VerifyFailure {
  /** The first bad record: "event seq 42", "file reports/approvals.csv", "signed tree head", ... */
  record: string
  reason: string
  seq?: number
  file?: string
  /** 1-based line in `file`, for JSONL files and JSON documents. */
  line?: number
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
  /** With --anchor: the newest anchor of each source and every anchor that failed. */
  anchors?: AnchorCheck[]
  /** v2 events: payloads present, and those gone with the record that says why (retention, erasure). */
  payloads?: {present: number; expired: number; erased: number; removals: RemovalGroup[]}
}

/**
 * Bounds on what verifying one package may cost. The defaults allow about eight times the
 * benchmark's 1,000,000-event package (1.05 GB uncompressed: events.jsonl 470 MB, the session
 * log reports 576 MB; verified in about 13 s and 280 MB here).
 */
export interface VerifyLimits {
  /** Uncompressed bytes of the whole archive (and bytes of the .tar.gz file). */
  maxTotalBytes: number
  /** Bytes of one file in the package, checked from its tar header before it is read. */
  maxEntryBytes: number
  /** Bytes of a file verify keeps in memory (everything but events.jsonl, reports/ and summary.md). */
  maxMetadataBytes: number
  /** Bytes of one line of events.jsonl, checkpoints.jsonl or proofs/consistency.jsonl. */
  maxLineBytes: number
  /** Entries in the archive (a package has 16 or 17). */
  maxEntries: number
  /** The whole verification, in milliseconds. */
  timeoutMs: number
}

export const VERIFY_LIMITS: VerifyLimits = {
  maxTotalBytes: 8 * 2 ** 30,
  maxEntryBytes: 4 * 2 ** 30,
  maxMetadataBytes: 256 * 2 ** 20,
  maxLineBytes: 2 ** 20,
  maxEntries: 64,
  timeoutMs: 10 * 60_000,
}

export interface VerifyOptions extends Partial<VerifyLimits> {
  /** PEM text or a key: pins the gateway key instead of trusting the package's. */
  publicKey?: string | KeyObject
  /** An earlier signed tree head (JSON text or object): proves the log only grew since. */
  previous?: string | SignedTreeHead
  /** Heads the gateway published (--anchor): what is verified must be consistent with each. */
  anchors?: AnchorSet
  /** TSA CA certificates the anchors' timestamp tokens must chain to (--tsa-ca). */
  tsaCa?: X509Certificate[]
}

// Lower rank = reported first.
const RANK = {archive: 0, pin: 0, sth: 1, record: 2, truncated: 3, anchor: 3, root: 4, checkpoint: 5, previous: 6, file: 7, manifest: 8, report: 9} as const
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

type Json = {value: unknown} | {error: string; line?: number}

/** JSON.parse as a value or a printable reason, with the line of the fault when the parser says where. */
function parseJson(text: string): Json {
  try {
    return {value: JSON.parse(text)}
  } catch (err) {
    const msg = errorMessage(err)
    const at = /at position (\d+)/.exec(msg)
    const line = at ? text.slice(0, Number(at[1])).split('\n').length : undefined
    return {error: `not valid JSON${line ? ` (line ${line})` : ''}: ${msg.replace(/[^\x20-\x7e]+/g, ' ').slice(0, 120)}`, line}
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0
}

function isHashList(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((h) => typeof h === 'string' && HEX64.test(h))
}

// The files of a package besides manifest.json and manifest.sig: all of them, listed in the manifest.
const REPORT_FILES = new ReportBuilder().files().map((f) => f.path)
const LISTED_FILES = new Set<string>([...Object.values(FILES).filter((p) => p !== FILES.manifest && p !== FILES.manifestSig), ...REPORT_FILES])
/** Version 1 packages were written before anchors.jsonl. */
const LISTED_FILES_V1 = new Set<string>([...FILES_V1.filter((p) => p !== FILES.manifest && p !== FILES.manifestSig), ...REPORT_FILES])
// Files only hashed (the reports and summary are compared by hash with what the events produce).
const HASHED_ONLY = new Set<string>([...REPORT_FILES, FILES.summary])

/** Why the manifest is not one verify can work from, or undefined. */
function manifestProblem(m: unknown): string | undefined {
  if (!isObject(m)) return 'is not a JSON object'
  if (m.format !== PACKAGE_FORMAT) return `format is not ${PACKAGE_FORMAT}`
  if (m.version !== 1 && m.version !== 2 && m.version !== 3) return 'version is not 1, 2 or 3'
  const listed = m.version === 1 ? LISTED_FILES_V1 : LISTED_FILES
  if (typeof m.created_at !== 'string') return 'has no valid created_at'
  if (!isObject(m.filters) || Object.values(m.filters).some((v) => v !== undefined && typeof v !== 'string')) return 'has no valid filters'
  const r = m.range
  if (r !== null && !(isObject(r) && isCount(r.first_seq) && isCount(r.last_seq) && isCount(r.events) && isCount(r.redacted) && r.first_seq >= 1 && r.last_seq >= r.first_seq)) return 'has no valid range'
  const t = m.tree_head
  if (!isObject(t) || !isCount(t.tree_size) || typeof t.root_hash !== 'string' || typeof t.key_fingerprint !== 'string') return 'has no valid tree_head'
  if (typeof m.signed_by_exporter !== 'boolean') return 'has no valid signed_by_exporter'
  if (!Array.isArray(m.files)) return 'has no files list'
  const seen = new Set<string>()
  for (const f of m.files as unknown[]) {
    if (!isObject(f) || typeof f.path !== 'string' || typeof f.sha256 !== 'string' || !HEX64.test(f.sha256) || !isCount(f.bytes)) return 'has a malformed files entry'
    if (!listed.has(f.path)) return `lists ${quoteName(f.path)}, which is not a file of an evidence package${m.version === 1 && LISTED_FILES.has(f.path) ? ' of version 1' : ''}`
    if (seen.has(f.path)) return `lists ${f.path} twice`
    seen.add(f.path)
  }
  for (const p of listed) if (!seen.has(p)) return `does not list ${p}, which every evidence package of version ${m.version} holds`
  return undefined
}

/** Stops the package read with a named failure. */
class Refusal extends Error {
  constructor(readonly failure: VerifyFailure) {
    super(failure.reason)
  }
}

class Deadline {
  readonly at: number
  constructor(readonly ms: number) {
    this.at = Date.now() + ms
  }

  check(): void {
    if (Date.now() > this.at) throw new DeadlineError(this.at)
  }
}

/** Merkle leaves in one growing buffer: 32 bytes per event instead of a Buffer object each. */
class Leaves {
  private buf = Buffer.allocUnsafe(32 * 1024)
  length = 0
  push(leaf: Buffer): void {
    if ((this.length + 1) * 32 > this.buf.length) {
      const next = Buffer.allocUnsafe(this.buf.length * 2)
      this.buf.copy(next, 0, 0, this.length * 32)
      this.buf = next
    }
    leaf.copy(this.buf, this.length++ * 32)
  }

  list(): Buffer[] {
    return Array.from({length: this.length}, (_, i) => this.buf.subarray(i * 32, i * 32 + 32))
  }

  /** A Merkle tree over the leaves so far (shares their memory). */
  tree(): MerkleTree {
    return new MerkleTree(this.buf.subarray(0, this.length * 32))
  }
}

// The reports the verifier re-derives are hashed as they grow and drained past this many
// characters, so verify never holds a report of a million events.
const DRAIN_EVERY = 4 * 2 ** 20

/** Streams events.jsonl: seq continuity, chain links, leaf hashes, report rows. */
class EventChecker {
  expected: number | undefined
  prevHash: string | null = null
  lastHash: string | null = null
  readonly leaves = new Leaves()
  readonly reports: ReportBuilder
  /** Seqs whose chain hash is kept (anchored sizes), and the hashes. */
  readonly wanted = new Set<number>()
  readonly hashesAt = new Map<number, string>()
  events = 0
  redacted = 0
  firstSeq?: number
  lastSeq?: number
  broken = false
  private readonly lines: LineSplitter
  private readonly reportHashes = new Map<string, Hash>()

  /** `last` undefined: the manifest's range is empty, so no line may hold an event. */
  readonly ledger = new RemovalLedger()
  constructor(private readonly findings: Findings, first: number | undefined, private readonly last: number | undefined, maxLine: number, version: 1 | 2 | 3) {
    this.reports = new ReportBuilder(version)
    this.expected = first
    this.lines = new LineSplitter(maxLine, (bytes, line) => this.handle(bytes, line), (line) =>
      this.fail({file: FILES.events, line, record: `${FILES.events} line ${line}`, reason: `is longer than the limit of ${maxLine} bytes per line`}),
    )
  }

  data(chunk: Buffer): void {
    if (!this.broken) this.lines.push(chunk)
  }

  end(): void {
    if (!this.broken) this.lines.end()
  }

  /** SHA-256 of each report file as the verified events produce it. */
  derivedReports(): Map<string, string> {
    this.drain()
    const out = new Map<string, string>()
    for (const f of this.reports.files()) out.set(f.path, (this.reportHashes.get(f.path) ?? createHash('sha256')).update(f.content).digest('hex'))
    return out
  }

  private drain(): void {
    this.reports.drain((file, text) => {
      let h = this.reportHashes.get(file)
      if (!h) this.reportHashes.set(file, (h = createHash('sha256')))
      h.update(text)
    })
  }

  private fail(f: VerifyFailure): void {
    this.findings.fail('record', f)
    this.broken = true
  }

  /** The event with its payload's fields back (for the reports), or why its payload member is wrong. */
  private payloadOf(e: StoredEvent, member: string | undefined): {event: StoredEvent} | string {
    if (e.payload_hash === undefined) return member === undefined ? {event: e} : 'carries a payload but does not commit to one (no payload_hash)'
    if (e.v !== 2 || typeof e.payload_hash !== 'string' || !HEX64.test(e.payload_hash)) return 'has a malformed payload_hash'
    if (member === undefined) {
      this.ledger.gone(e, undefined)
      return {event: e}
    }
    const m = parseJson(member)
    if ('error' in m || !isObject(m.value)) return 'its payload member is not a JSON object'
    const v = m.value
    if (typeof v.nonce === 'string') {
      if (payloadHash(member) !== e.payload_hash) return 'its payload does not hash to its payload_hash: the payload was changed after it was written'
      this.ledger.kept()
      return {event: withPayload(e, member)}
    }
    if ((v.removed !== 'expired' && v.removed !== 'erased') || typeof v.at !== 'string' || (v.by_seq !== undefined && !isCount(v.by_seq))) return 'its payload member is neither a payload nor a removal record'
    this.ledger.gone(e, {removed: v.removed, at: v.at, by_seq: v.by_seq as number | undefined})
    return {event: e}
  }

  private handle(lineBytes: Buffer, line: number): void {
    let bytes = lineBytes
    if (this.broken) return
    const at = {file: FILES.events, line}
    let e: StoredEvent & {redacted?: boolean; leaf_hash?: string; [PAYLOAD_MEMBER]?: unknown}
    try {
      e = JSON.parse(bytes.toString('utf8'))
    } catch {
      return this.fail({...at, record: `${FILES.events} line ${line}`, reason: 'not valid JSON'})
    }
    const seq = e?.seq
    // A v2 event's payload (or why it is gone) follows the signed bytes as the member "~payload".
    let member: string | undefined
    if (isObject(e) && PAYLOAD_MEMBER in e) {
      const split = splitPackageLine(bytes, e)
      bytes = split.body
      member = split.member
      delete e[PAYLOAD_MEMBER]
    }
    if (!Number.isSafeInteger(seq) || seq < 1) return this.fail({...at, record: `${FILES.events} line ${line}`, reason: 'has no valid seq'})
    if (this.last === undefined) return this.fail({...at, seq, record: `event seq ${seq}`, reason: `line ${line} holds an event but the manifest's range is empty: an event was inserted`})
    this.expected ??= seq
    const expected = this.expected
    if (seq > this.last) {
      return this.fail({...at, seq, record: `event seq ${seq}`, reason: `line ${line} is beyond the range the package covers (seq ${this.last} is the last): an event was inserted`})
    }
    if (seq < expected) {
      return this.fail({...at, seq, record: `event seq ${seq}`, reason: `appears again at line ${line} after seq ${expected - 1}: an event was inserted or records were reordered`})
    }
    if (seq > expected) {
      return this.fail({...at, seq: expected, record: `event seq ${expected}`, reason: `missing from its place: line ${line} holds seq ${seq} where seq ${expected} belongs (an event was deleted or records were reordered)`})
    }
    this.firstSeq ??= seq
    if (e.redacted === true) {
      if (typeof e.leaf_hash !== 'string' || !HEX64.test(e.leaf_hash) || member !== undefined) return this.fail({...at, seq, record: `event seq ${seq}`, reason: 'redacted entry has no valid leaf_hash'})
      this.leaves.push(Buffer.from(e.leaf_hash, 'hex'))
      this.ledger.redacted(seq)
      this.prevHash = null
      this.lastHash = null
      this.redacted++
    } else {
      const hash = sha256(bytes)
      if (seq === 1 && e.prev_hash !== GENESIS) {
        return this.fail({...at, seq, record: 'event seq 1', reason: 'the first event must carry the genesis prev_hash (64 zeros)'})
      }
      if (this.prevHash !== null && e.prev_hash !== this.prevHash) {
        return this.fail({
          seq: seq - 1,
          file: FILES.events,
          line: line - 1,
          record: `event seq ${seq - 1}`,
          reason: `its content does not hash to the prev_hash recorded by seq ${seq}: it was changed after it was written`,
        })
      }
      if (typeof e.kind !== 'string' || typeof e.time !== 'string') return this.fail({...at, seq, record: `event seq ${seq}`, reason: 'is not an audit event (no kind or time)'})
      const p = this.payloadOf(e, member)
      if (typeof p === 'string') return this.fail({...at, seq, record: `event seq ${seq}`, reason: p})
      try {
        this.ledger.authority(e)
        this.reports.add(p.event)
      } catch (err) {
        return this.fail({...at, seq, record: `event seq ${seq}`, reason: `is not a well-formed audit event (${errorMessage(err).replace(/[^\x20-\x7e]+/g, ' ').slice(0, 120)})`})
      }
      this.leaves.push(leafHash(bytes))
      if (this.wanted.has(seq)) this.hashesAt.set(seq, hash)
      this.prevHash = hash
      this.lastHash = hash
      this.events++
      if (this.reports.pending > DRAIN_EVERY) this.drain()
    }
    this.lastSeq = seq
    this.expected = seq + 1
  }
}

/** A JSONL file of the package parsed line by line into `T`s; bad lines are named failures. */

class JsonlFile<T> {
  readonly items: {line: number; value: T}[] = []
  private readonly lines: LineSplitter

  constructor(findings: Findings, file: string, maxLine: number, problem: (x: unknown) => string | undefined, category: Category = 'checkpoint') {
    const fail = (line: number, reason: string) => findings.fail(category, {file, line, record: `${file} line ${line}`, reason})
    this.lines = new LineSplitter(
      maxLine,
      (bytes, line) => {
        const j = parseJson(bytes.toString('utf8'))
        if ('error' in j) return fail(line, 'not valid JSON')
        const p = problem(j.value)
        if (p) return fail(line, p)
        this.items.push({line, value: j.value as T})
      },
      (line) => fail(line, `is longer than the limit of ${maxLine} bytes per line`),
    )
  }

  handler(): TarEntryHandler {
    return {data: (c) => this.lines.push(c), end: () => this.lines.end()}
  }
}

interface ConsistencyLine {
  from_size: number
  to_size: number
  nodes: string[]
}

function consistencyProblem(x: unknown): string | undefined {
  if (!isObject(x)) return 'is not a JSON object'
  if (!isCount(x.from_size) || !isCount(x.to_size)) return 'has no valid from_size and to_size'
  if (!isHashList(x.nodes)) return 'has no valid nodes'
  return undefined
}

function rangeProofProblem(x: unknown): string | undefined {
  if (x === null) return undefined
  if (!isObject(x)) return 'is not a JSON object'
  if (!isCount(x.first_seq) || !isCount(x.last_seq) || !isCount(x.tree_size)) return 'has no valid first_seq, last_seq and tree_size'
  if (!isHashList(x.nodes)) return 'has no valid nodes'
  return undefined
}

/** Verifies an evidence package written by `exportEvidence`. Needs nothing but the file (and a key to pin). */
export async function verifyPackage(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const limits: VerifyLimits = {...VERIFY_LIMITS}
  for (const k of Object.keys(VERIFY_LIMITS) as (keyof VerifyLimits)[]) if (opts[k] !== undefined) limits[k] = opts[k]!
  // A pinned key that cannot be read is the caller's error (INVALID_INPUT), not the package's.
  const pinned = opts.publicKey ? asKey(opts.publicKey) : undefined
  const v = new PackageVerifier(opts, pinned, limits)
  try {
    await v.run(path)
  } catch (err) {
    if (err instanceof DeadlineError) {
      v.findings.fail('archive', {record: 'package', reason: `verification did not finish within the time limit of ${limits.timeoutMs / 1000} s (stopped while ${v.phase})`})
    } else {
      // A fault of the verifier itself on some input: still a failed verification, not a crash.
      v.findings.fail('archive', {record: 'package', reason: `verification stopped while ${v.phase}: ${errorMessage(err).replace(/[^\x20-\x7e]+/g, ' ')}`})
    }
  }
  return v.result()
}

class PackageVerifier {
  readonly findings = new Findings()
  phase = 'opening the package'
  private readonly notes: string[] = []
  private readonly deadline: Deadline
  /** Whole files kept for parsing: manifest, signature, tree head, keys, range proof. */
  private readonly whole = new Map<string, Buffer>()
  private readonly hashes = new Map<string, string>()
  private readonly seen = new Set<string>()
  private readonly sizes = new Map<string, number>()
  private root: string | undefined
  private manifest: Manifest | undefined
  private listed = new Map<string, {sha256: string; bytes: number}>()
  private checker: EventChecker | undefined
  private checkpoints: JsonlFile<SignedTreeHead> | undefined
  private consistency: JsonlFile<ConsistencyLine> | undefined
  private anchorsFile: JsonlFile<unknown> | undefined
  private anchorChecks: AnchorCheck[] | undefined
  private keyTrust: VerifyResult['keyTrust'] = 'package'
  private fingerprint: string | undefined
  private sth: SignedTreeHead | undefined
  private checkpointCount = 0
  private key: KeyObject | undefined
  private payloads: VerifyResult['payloads']

  constructor(private readonly opts: VerifyOptions, private readonly pinned: KeyObject | undefined, private readonly limits: VerifyLimits) {
    this.deadline = new Deadline(limits.timeoutMs)
    if (pinned) {
      this.keyTrust = 'pinned'
      this.fingerprint = fingerprintOf(pinned)
    }
  }

  result(): VerifyResult {
    const failures = this.findings.sorted()
    const checker = this.checker
    return {
      ok: failures.length === 0,
      source: 'package',
      keyTrust: this.keyTrust,
      fingerprint: this.fingerprint,
      treeSize: this.sth?.tree_size,
      rootHash: this.sth?.root_hash,
      firstSeq: checker?.firstSeq,
      lastSeq: checker?.lastSeq,
      events: checker?.events ?? 0,
      redacted: checker?.redacted ?? 0,
      checkpoints: this.checkpointCount,
      checks: [...this.findings.checks].map(([name, ok]) => ({name, ok})),
      first: failures[0],
      payloads: this.payloads,
      failures,
      notes: this.notes,
      anchors: this.anchorChecks,
    }
  }

  async run(path: string): Promise<void> {
    this.phase = 'reading the archive'
    try {
      await readTarGz(path, (name, size) => this.entry(name, size), {
        maxEntries: this.limits.maxEntries,
        maxEntryBytes: this.limits.maxEntryBytes,
        maxTotalBytes: this.limits.maxTotalBytes,
        deadline: this.deadline.at,
      })
    } catch (err) {
      if (err instanceof Refusal) return this.findings.fail('archive', err.failure)
      if (!(err instanceof TarError)) throw err
      const named = err.entry !== undefined ? `entry ${quoteName(err.entry)} ` : undefined
      const f: VerifyFailure =
        named && err.message.startsWith(named)
          ? {record: `tar entry ${quoteName(err.entry!)}`, reason: err.message.slice(named.length)}
          : {record: err.entry !== undefined ? `tar entry ${quoteName(err.entry)}` : 'package', reason: `the archive is refused: ${err.message}`}
      const rel = err.entry !== undefined && this.root !== undefined && err.entry.startsWith(this.prefix()) ? err.entry.slice(this.prefix().length) : undefined
      if (rel !== undefined && LISTED_FILES.has(rel)) f.file = rel
      return this.findings.fail('archive', f)
    }
    this.findings.pass('archive')
    if (!this.manifest) {
      return this.findings.fail('file', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: 'missing from the package'})
    }
    this.deadline.check()
    this.phase = 'checking the key and tree head'
    this.checkKeyAndTreeHead()
    if (!this.sth) return
    this.phase = 'rebuilding the Merkle root'
    this.checkEvents(this.sth)
    this.deadline.check()
    this.phase = 'checking checkpoints'
    const proofs = this.checkCheckpoints(this.sth)
    this.phase = 'checking --previous'
    this.checkPrevious(this.sth, proofs)
    this.phase = 'checking the anchors'
    this.checkAnchors(this.sth, proofs)
    this.phase = 'checking the manifest'
    this.checkManifest(this.manifest, this.sth)
    this.deadline.check()
    this.phase = 'comparing the reports with the events'
    this.checkReports(this.manifest, this.sth)
  }

  private prefix(): string {
    return this.root ? `${this.root}/` : ''
  }

  /** Decides on each tar entry from its header, before reading it. */
  private entry(name: string, size: number): TarEntryHandler {
    const q = quoteName(name)
    if (this.root === undefined) {
      const root = name === FILES.manifest ? '' : name.endsWith(`/${FILES.manifest}`) ? name.slice(0, -FILES.manifest.length - 1) : undefined
      if (root === undefined || root.includes('/')) throw new TarError(`entry ${q} comes first, but a package starts with ${FILES.manifest}`, name)
      this.root = root
    }
    if (!name.startsWith(this.prefix())) throw new TarError(`entry ${q} is outside the package directory ${quoteName(this.root)}`, name)
    const rel = name.slice(this.prefix().length)
    if (this.seen.has(rel)) throw new TarError(`entry ${q} appears twice in the archive`, name)
    this.seen.add(rel)
    if (rel !== FILES.manifest && rel !== FILES.manifestSig) {
      const listed = this.listed.get(rel)
      // A size other than the listed one is not refused here: the checks below name what changed.
      if (!listed) throw new TarError(`entry ${q} is not listed in the manifest`, name)
    }
    this.sizes.set(rel, size)
    const kept = rel !== FILES.events && !HASHED_ONLY.has(rel)
    if (kept && size > this.limits.maxMetadataBytes) throw new TarError(`entry ${q} declares ${size} bytes, more than the limit of ${this.limits.maxMetadataBytes} for a file verify reads whole`, name)
    this.phase = `reading ${rel}`

    const hash = createHash('sha256')
    let inner: TarEntryHandler | undefined
    if (rel === FILES.events) {
      const range = this.manifest!.range
      this.checker = new EventChecker(this.findings, range?.first_seq, range?.last_seq, this.limits.maxLineBytes, this.manifest!.version)
      // The chain hash at each anchored size, to compare with the anchor's head_hash.
      for (const a of this.opts.anchors?.anchors ?? []) this.checker.wanted.add(a.tree_head.tree_size)
      for (const {value} of this.anchorsFile?.items ?? []) {
        const a = anchorFromJson(value)
        if (typeof a !== 'string') this.checker.wanted.add(a.tree_head.tree_size)
      }
      inner = this.checker
    } else if (rel === FILES.anchors) {
      this.anchorsFile = new JsonlFile<unknown>(this.findings, rel, this.limits.maxLineBytes, (x) => {
        const a = anchorFromJson(x)
        return typeof a === 'string' ? a : undefined
      }, 'anchor')
      inner = this.anchorsFile.handler()
    } else if (rel === FILES.checkpoints) {
      this.checkpoints = new JsonlFile<SignedTreeHead>(this.findings, rel, this.limits.maxLineBytes, treeHeadProblem)
      inner = this.checkpoints.handler()
    } else if (rel === FILES.consistency) {
      this.consistency = new JsonlFile<ConsistencyLine>(this.findings, rel, this.limits.maxLineBytes, consistencyProblem)
      inner = this.consistency.handler()
    } else if (kept) {
      const parts: Buffer[] = []
      inner = {data: (c) => parts.push(c), end: () => this.whole.set(rel, Buffer.concat(parts, size))}
    }
    return {
      data(chunk) {
        hash.update(chunk)
        inner?.data(chunk)
      },
      end: () => {
        this.hashes.set(rel, hash.digest('hex'))
        inner?.end()
        if (rel === FILES.manifest) this.readManifest()
      },
    }
  }

  private readManifest(): void {
    const fail = (reason: string, line?: number) => {
      throw new Refusal({file: FILES.manifest, line, record: `file ${FILES.manifest}`, reason})
    }
    const j = parseJson(this.whole.get(FILES.manifest)!.toString('utf8'))
    if ('error' in j) return fail(j.error, j.line)
    const problem = manifestProblem(j.value)
    if (problem) return fail(problem)
    this.manifest = j.value as Manifest
    for (const f of this.manifest.files) this.listed.set(f.path, f)
    const total = this.manifest.files.reduce((s, f) => s + f.bytes, 0)
    if (total > this.limits.maxTotalBytes) fail(`lists ${total} bytes of files, more than the limit of ${this.limits.maxTotalBytes}`)
  }

  private text(p: string): string | undefined {
    return this.whole.get(p)?.toString('utf8')
  }

  private checkKeyAndTreeHead(): void {
    const {findings} = this
    // Key: pinned, or the package's own (said clearly).
    let packageKey: KeyObject | undefined
    try {
      if (this.text(FILES.publicKey)) packageKey = publicKeyFromPem(this.text(FILES.publicKey)!)
    } catch (err) {
      findings.fail('pin', {file: FILES.publicKey, record: `file ${FILES.publicKey}`, reason: errorMessage(err)})
    }
    let key: KeyObject | undefined
    if (this.pinned) {
      key = this.pinned
      this.keyTrust = 'pinned'
      if (packageKey && fingerprintOf(packageKey) !== fingerprintOf(key)) {
        findings.fail('pin', {
          file: FILES.publicKey,
          record: `file ${FILES.publicKey}`,
          reason: `the package's public key (fingerprint ${fingerprintOf(packageKey)}) is not the pinned key (fingerprint ${fingerprintOf(key)})`,
        })
      } else findings.pass('pin')
    } else {
      key = packageKey
      this.notes.push(`no --public-key given: verified against the public key included in the package (fingerprint ${packageKey ? fingerprintOf(packageKey) : 'none'}); compare it with the gateway's published fingerprint, or pin it with --public-key`)
    }
    this.key = key
    this.fingerprint = key ? fingerprintOf(key) : undefined
    const declaredFp = this.text(FILES.fingerprint)?.trim()
    if (packageKey && declaredFp !== undefined && declaredFp !== fingerprintOf(packageKey)) {
      findings.fail('pin', {file: FILES.fingerprint, record: `file ${FILES.fingerprint}`, reason: `says ${quoteName(declaredFp)} but the included key's fingerprint is ${fingerprintOf(packageKey)}`})
    }

    // Signed tree head.
    const text = this.text(FILES.treeHead)
    const j = text === undefined ? {error: 'missing from the package'} : parseJson(text)
    const problem = 'error' in j ? j.error : treeHeadProblem(j.value)
    if (problem || !('value' in j)) {
      findings.fail('sth', {file: FILES.treeHead, line: 'line' in j ? j.line : undefined, record: 'signed tree head', reason: `${FILES.treeHead} ${problem}`})
      return
    }
    const sth = j.value as SignedTreeHead
    this.sth = sth
    if (!key || !verifyTreeHead(sth, key)) {
      findings.fail('sth', {file: FILES.treeHead, record: `signed tree head (size ${sth.tree_size})`, reason: `signature does not verify with the ${this.keyTrust === 'pinned' ? 'pinned' : "package's"} public key (fingerprint ${this.fingerprint ?? 'none'})`})
    } else if (sth.key_fingerprint !== this.fingerprint) {
      findings.fail('sth', {file: FILES.treeHead, record: `signed tree head (size ${sth.tree_size})`, reason: `names key ${quoteName(sth.key_fingerprint)} but was verified with ${this.fingerprint}`})
    } else findings.pass('sth')
  }

  /** Events: completeness of the range and the signed root. */
  private checkEvents(sth: SignedTreeHead): void {
    const {findings, checker} = this
    const range = this.manifest!.range
    let proof: RangeProofFile | null = null
    const text = this.text(FILES.rangeProof)
    if (text !== undefined) {
      const j = parseJson(text)
      const problem = 'error' in j ? j.error : rangeProofProblem(j.value)
      if (problem || !('value' in j)) findings.fail('root', {file: FILES.rangeProof, line: 'line' in j ? j.line : undefined, record: `file ${FILES.rangeProof}`, reason: problem!})
      else proof = j.value as RangeProofFile | null
    }
    if (!checker) return
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
        const root = rootFromRange(range.first_seq - 1, checker.leaves.list(), sth.tree_size, proof.nodes.map((h) => Buffer.from(h, 'hex')))
        if (!root || root.toString('hex') !== sth.root_hash) {
          findings.fail('root', {record: `events seq ${range.first_seq}..${range.last_seq}`, reason: `do not rebuild the signed Merkle root ${sth.root_hash} (an event was changed, added or removed)`})
        } else findings.pass('root')
      }
    } else if (range && !proof) {
      findings.fail('root', {file: FILES.rangeProof, record: `file ${FILES.rangeProof}`, reason: 'has no proof for the exported range'})
    }
  }

  /** Earlier checkpoints: signed by the same key and consistent with the tree head. Returns the consistency proofs by size. */
  private checkCheckpoints(sth: SignedTreeHead): Map<number, string[]> {
    const {findings, key} = this
    const cps = new Map<number, SignedTreeHead>()
    for (const {value} of this.checkpoints?.items ?? []) cps.set(value.tree_size, value)
    const proofs = new Map<number, string[]>()
    for (const {value: p} of this.consistency?.items ?? []) if (p.to_size === sth.tree_size) proofs.set(p.from_size, p.nodes)
    let n = 0
    for (const [size, cp] of [...cps].sort((a, b) => a[0] - b[0])) {
      if (++n % 1024 === 0) this.deadline.check()
      if (!key || !verifyTreeHead(cp, key)) {
        findings.fail('checkpoint', {record: `checkpoint size ${size}`, reason: 'signature does not verify'})
      } else if (!this.consistent(proofs, sth, size, cp.root_hash)) {
        findings.fail('checkpoint', {record: `checkpoint size ${size}`, reason: `is not consistent with the signed tree head of size ${sth.tree_size} (the log was rewritten after this checkpoint)`})
      }
    }
    this.checkpointCount = cps.size
    findings.pass('checkpoint')
    return proofs
  }

  private consistent(proofs: Map<number, string[]>, sth: SignedTreeHead, size: number, root: string): boolean {
    const nodes = proofs.get(size)
    return nodes !== undefined && verifyConsistency(size, sth.tree_size, Buffer.from(root, 'hex'), Buffer.from(sth.root_hash, 'hex'), nodes.map((h) => Buffer.from(h, 'hex')))
  }

  private checkPrevious(sth: SignedTreeHead, proofs: Map<number, string[]>): void {
    const {findings, key} = this
    const given = this.opts.previous
    if (given === undefined) return
    const bad = (reason: string, line?: number) => findings.fail('previous', {record: 'earlier tree head (--previous)', line, reason})
    let prev: unknown = given
    if (typeof given === 'string') {
      if (Buffer.byteLength(given) > this.limits.maxMetadataBytes) return bad(`is larger than the limit of ${this.limits.maxMetadataBytes} bytes`)
      const j = parseJson(given)
      if ('error' in j) return bad(`${j.error} (expected the tree-head.json of an earlier package)`, j.line)
      prev = j.value
    }
    const problem = treeHeadProblem(prev)
    if (problem) return bad(`${problem} (expected the tree-head.json of an earlier package)`)
    const p = prev as SignedTreeHead
    if (!key || !verifyTreeHead(p, key)) {
      findings.fail('previous', {record: `earlier tree head (size ${p.tree_size})`, reason: 'its signature does not verify with this key'})
    } else if (p.tree_size > sth.tree_size) {
      findings.fail('previous', {record: `earlier tree head (size ${p.tree_size})`, reason: `is larger than this package's tree (size ${sth.tree_size}): the log shrank`})
    } else if (p.tree_size === sth.tree_size ? p.root_hash !== sth.root_hash : !this.consistent(proofs, sth, p.tree_size, p.root_hash)) {
      findings.fail('previous', {
        record: `earlier tree head (size ${p.tree_size})`,
        reason: proofs.has(p.tree_size) || p.tree_size === sth.tree_size ? 'is not consistent with this package: the log was rewritten since' : 'this package has no consistency proof from that size (export again from the gateway that signed it)',
      })
    } else findings.pass('previous')
  }

  /**
   * Anchors: the heads the package says the gateway published (anchors.jsonl) and the auditor's
   * own (--anchor), each signed by the key, its timestamp token checked, and consistent with this
   * package's head: by the package's own leaves when it covers the whole log, else by the
   * consistency proof the export wrote for it.
   */
  private checkAnchors(sth: SignedTreeHead, proofs: Map<number, string[]>): void {
    const {findings, checker} = this
    const own: SourcedAnchor[] = []
    for (const {line, value} of this.anchorsFile?.items ?? []) {
      const a = anchorFromJson(value)
      if (typeof a !== 'string') own.push({...a, source: `${FILES.anchors} line ${line}`})
    }
    const given = this.opts.anchors
    if (own.length === 0 && !given) return
    for (const p of given?.problems ?? []) findings.fail('anchor', p)
    const range = this.manifest!.range
    const whole = Boolean(range && range.first_seq === 1 && range.last_seq === sth.tree_size && checker && !checker.broken && checker.leaves.length === sth.tree_size)
    let tree: MerkleTree | undefined
    const key = this.key
    // The package speaks for the log as of its export when its manifest is signed (created_at),
    // else as of its tree head: a larger head published before then means published events are missing.
    const sig = this.text(FILES.manifestSig)
    const manifest = this.manifest!
    const asOf = key && sig && verifyManifest(this.whole.get(FILES.manifest)!, sig, key) && Date.parse(manifest.created_at) > Date.parse(sth.timestamp) ? manifest.created_at : sth.timestamp
    const j = judgeAnchors({
      anchors: [...own, ...(given?.anchors ?? [])],
      keyFor: (fp) => (key && fp === this.fingerprint ? key : undefined),
      keyName: this.keyTrust === 'pinned' ? 'the pinned key' : "the package's key",
      tsaCa: this.opts.tsaCa,
      target: {kind: 'package', size: sth.tree_size, root: sth.root_hash, timestamp: asOf},
      rootAt: (m) => {
        if (!whole || m > sth.tree_size || m === 0) return undefined
        tree ??= checker!.leaves.tree()
        return {root: tree.root(m).toString('hex'), headHash: checker!.hashesAt.get(m)}
      },
      proofFrom: (m) => proofs.get(m),
    })
    for (const f of j.failures) findings.fail('anchor', f)
    this.notes.push(...j.notes)
    this.anchorChecks = j.checks
    findings.pass('anchor')
  }

  /** Manifest: every file listed is present with its hash (nothing unlisted got this far), signature. */
  private checkManifest(manifest: Manifest, sth: SignedTreeHead): void {
    const {findings, key} = this
    for (const f of manifest.files) {
      const got = this.hashes.get(f.path)
      if (got === undefined) findings.fail('file', {file: f.path, record: `file ${f.path}`, reason: 'listed in the manifest but missing from the package'})
      else if (this.sizes.get(f.path) !== f.bytes) findings.fail('file', {file: f.path, record: `file ${f.path}`, reason: `is ${this.sizes.get(f.path)} bytes, the manifest lists ${f.bytes}: edited after export`})
      else if (got !== f.sha256) findings.fail('file', {file: f.path, record: `file ${f.path}`, reason: 'SHA-256 does not match the manifest: edited after export'})
    }
    findings.pass('file')
    const sig = this.text(FILES.manifestSig)
    if (manifest.signed_by_exporter || sig !== undefined) {
      if (!sig || !key || !verifyManifest(this.whole.get(FILES.manifest)!, sig, key)) {
        findings.fail('manifest', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: 'its signature (manifest.sig) does not verify: the manifest was changed after export'})
      } else findings.pass('manifest')
    } else this.notes.push('the manifest is not signed (exported without the signing key); file integrity rests on the events and tree head')
    if (manifest.tree_head.root_hash !== sth.root_hash || manifest.tree_head.tree_size !== sth.tree_size) {
      findings.fail('manifest', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: 'names a different tree head than tree-head.json'})
    }
  }

  /** Every missing payload has a removal record its retention or erasure event covers. */
  private checkRemovals(checker: EventChecker): RemovalGroup[] {
    const {groups, notes} = checker.ledger.finish(checker.lastSeq ?? 0)
    for (const f of checker.ledger.failures) failRecord(this.findings, f)
    this.notes.push(...removalNotes(groups), ...notes)
    this.payloads = payloadCounts(checker.ledger.present, groups)
    return groups
  }

  /** Reports and summary must be exactly what the verified events say. */
  private checkReports(manifest: Manifest, sth: SignedTreeHead): void {
    const {findings, checker} = this
    if (!checker || checker.broken) return
    const removals = this.checkRemovals(checker)
    const derived = checker.derivedReports()
    const anchors = (this.anchorsFile?.items ?? []).map((i) => i.value as PackageAnchor)
    derived.set(
      FILES.summary,
      sha256(
        isoMappingMarkdown({
          createdAt: manifest.created_at,
          filters: manifest.filters,
          range: manifest.range,
          sth,
          fingerprint: sth.key_fingerprint,
          reports: checker.reports,
          treeSize: sth.tree_size,
          retention: manifest.version >= 3 ? {anchors, removals} : undefined,
        }),
      ),
    )
    for (const [path, hash] of derived) {
      const got = this.hashes.get(path)
      if (got !== undefined && got !== hash) {
        findings.fail('report', {file: path, record: `file ${path}`, reason: 'does not match what the signed events say: edited after export'})
      }
    }
    const range = manifest.range
    if (range && (checker.events !== range.events || checker.redacted !== range.redacted)) {
      findings.fail('manifest', {file: FILES.manifest, record: `file ${FILES.manifest}`, reason: `counts ${range.events} events and ${range.redacted} redacted, the package holds ${checker.events} and ${checker.redacted}`})
    }
    findings.pass('report')
  }
}

function failRecord(f: Findings, x: {seq: number; reason: string}): void {
  f.fail('record', {seq: x.seq, record: `event seq ${x.seq}`, reason: x.reason})
}

function payloadCounts(present: number, groups: RemovalGroup[]): NonNullable<VerifyResult['payloads']> {
  const n = (how: string) => groups.filter((g) => g.how === how).reduce((a, g) => a + g.count, 0)
  return {present, expired: n('expired'), erased: n('erased'), removals: groups}
}

/** Verifies the gateway's own store: chain, stored hashes and leaves, and every signed checkpoint. */
export function verifyLive(db: Database.Database, opts: {publicKey?: string | KeyObject; anchors?: AnchorSet; tsaCa?: X509Certificate[]} = {}): VerifyResult {
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
  // With anchors: the root and chain head at each anchored size, and every leaf for the proofs.
  const anchorSizes = new Set((opts.anchors?.anchors ?? []).map((a) => a.tree_head.tree_size))
  const rootsAt = new Map<number, {root: string; headHash: string}>()
  const leaves = opts.anchors ? new Leaves() : undefined
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
  const pendingRefs = new Set<string>()
  for (const [body] of db.prepare('SELECT body FROM audit_pending').raw().all() as [string][]) {
    try {
      const ref = (JSON.parse(body) as {data?: {ref?: unknown}}).data?.ref
      if (typeof ref === 'string') pendingRefs.add(ref)
    } catch {
      // not ours to judge here: the gateway logs a pending event it cannot read
    }
  }
  const ledger = new RemovalLedger(pendingRefs)
  const rows = db
    .prepare(`SELECT e.seq, e.hash, e.leaf, e.body, ${payloadColumn(db)}, r.how, r.at, r.ref FROM audit_events e LEFT JOIN audit_payload_removals r ON r.seq = e.seq ORDER BY e.seq`)
    .raw()
    .iterate() as IterableIterator<[number, string, Buffer, string, string | null, 'expired' | 'erased' | null, string | null, string | null]>
  for (const [seq, hash, leaf, body, payload, how, removedAt, ref] of rows) {
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
      if (e.payload_hash !== undefined) {
        if (payload !== null) {
          if (payloadHash(payload) !== e.payload_hash) findings.fail('record', {seq, record: `event seq ${seq}`, reason: 'its stored payload does not hash to its payload_hash: the payload was changed after it was written'})
          else ledger.kept()
        } else ledger.gone(e, how && removedAt && ref ? {removed: how, at: removedAt, ref} : undefined)
      } else if (payload !== null) {
        findings.fail('record', {seq, record: `event seq ${seq}`, reason: 'a payload is stored for it, but it commits to none (no payload_hash)'})
      }
      ledger.authority(e)
      frontier.push(leaf)
      leaves?.push(leaf)
      prev = h
      count++
      if (anchorSizes.has(count)) rootsAt.set(count, {root: frontier.root().toString('hex'), headHash: prev})
      checkCheckpoints()
      continue
    }
    broken = true
  }
  const removals = ledger.finish(count)
  for (const f of ledger.failures) failRecord(findings, f)
  notes.push(...removalNotes(removals.groups), ...removals.notes)
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
  let anchorChecks: AnchorCheck[] | undefined
  if (opts.anchors) {
    for (const p of opts.anchors.problems) findings.fail('anchor', p)
    if (broken) notes.push('anchors were not compared: the store breaks before its end (the first bad record above)')
    else {
      const tree = leaves!.tree()
      const root = count === 0 ? EMPTY_ROOT.toString('hex') : frontier.root().toString('hex')
      const j = judgeAnchors({
        anchors: opts.anchors.anchors,
        keyFor,
        keyName: pinned ? 'the pinned key' : 'a key recorded in the store',
        tsaCa: opts.tsaCa,
        target: {kind: 'live', size: count, root},
        rootAt: (m) => rootsAt.get(m),
        proofFrom: (m) => (m > 0 && m <= count ? tree.consistencyProof(m, count).map((b) => b.toString('hex')) : undefined),
      })
      for (const f of j.failures) findings.fail('anchor', f)
      notes.push(...j.notes)
      anchorChecks = j.checks
      if (opts.anchors.anchors.length > 0) findings.pass('anchor')
    }
  }
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
    anchors: anchorChecks,
    payloads: payloadCounts(ledger.present, removals.groups),
  }
}

/** Reads a PEM public key file for --public-key. */
export function readPublicKeyFile(file: string): KeyObject {
  return publicKeyFromPem(readFileSync(file, 'utf8'))
}

