// `hoop audit export`: an evidence package (tar.gz) for an auditor. The events of the chosen range
// are included as stored (the signed bytes); events of the range that do not match the
// --connection/--user filter are replaced by their Merkle leaf hash, so the range stays complete
// and verifiable without disclosing other people's activity. See docs/audit.md for the layout.
//
// Export never signs past a gap: before it signs a head it checks the store against every stored
// checkpoint and every head the gateway published (the witness file), and the chain of the events
// no head covers yet; a store that is behind, forked or broken is refused. The package carries the
// published heads (anchors.jsonl, with their timestamp tokens) and a consistency proof from each.
import type Database from 'better-sqlite3'
import {createHash, type KeyObject} from 'node:crypto'
import {closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, writeSync, renameSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {HoopError} from '../shared/errors.js'
import {readAnchorFiles} from './anchor-check.js'
import {type Anchor, WITNESS_FILE} from './anchors.js'
import {canonicalize} from './canonical.js'
import type {StoredEvent} from './events.js'
import {loadSigningKey, type SignedTreeHead, signManifest, signTreeHead, type SigningKey, publicKeyFromPem, fingerprintOf} from './keys.js'
import {leafHash, MerkleTree} from './merkle.js'
import {packageLine, type PayloadRemoval, withPayload} from './payloads.js'
import {RemovalLedger} from './retention.js'
import {ReportBuilder} from './reports.js'
import {type AnchorRow, type CheckpointRow, ensureAuditSchema, payloadColumn, witnessPathOf} from './schema.js'
import {isoMappingMarkdown} from './summary.js'
import {TarGzWriter} from './tar.js'
import {vouch} from './vouch.js'

/**
 * Format of the package: 1 without anchors; 2 adds anchors.jsonl; 3 carries v2 events' payloads
 * (or why they are gone) as a "~payload" member after each event's signed bytes, and a summary
 * with the anchors and the retention applied. Verify reads all three.
 */
export const PACKAGE_VERSION = 3

export const PACKAGE_FORMAT = 'hoop-audit-evidence'
export const FILES = {
  manifest: 'manifest.json',
  manifestSig: 'manifest.sig',
  treeHead: 'tree-head.json',
  publicKey: 'keys/audit-public.pem',
  fingerprint: 'keys/fingerprint.txt',
  rangeProof: 'proofs/range.json',
  consistency: 'proofs/consistency.jsonl',
  checkpoints: 'checkpoints.jsonl',
  events: 'events.jsonl',
  summary: 'summary.md',
  anchors: 'anchors.jsonl',
} as const

/** Files of a version-1 package (before anchors.jsonl). */
export const FILES_V1: readonly string[] = Object.values(FILES).filter((p) => p !== FILES.anchors)

/** One line of anchors.jsonl: a head the gateway published, where, and its timestamp token. */
export interface PackageAnchor extends Anchor {
  published: {kind: string; target: string; at: string}[]
}

export interface ExportFilters {
  from?: string
  to?: string
  connection?: string
  user?: string
}

interface ExportOptions extends ExportFilters {
  db: Database.Database
  dataDir: string
  out: string
  signingKey?: KeyObject | string
  signingKeyFile?: string
  /** The witness file to check the store against (default: where the gateway recorded it, or <dataDir>/audit-witness.jsonl). */
  witness?: string
  generator?: string
  /**
   * Put in the package only the earlier heads the package's key signed. A log several replicas
   * sign (PostgreSQL, pg-log.ts) has heads under several keys, and a package names one key; the
   * others' heads stay in the store, where `verify --live` checks them.
   */
  onlySignerHeads?: boolean
  onProgress?: (p: {phase: string; done: number; total: number}) => void
}

interface ManifestFile {
  path: string
  sha256: string
  bytes: number
}

export interface Manifest {
  format: typeof PACKAGE_FORMAT
  /** 1: no anchors.jsonl; 2: with it; 3: with payloads apart from the signed events. */
  version: 1 | 2 | 3
  created_at: string
  generator: string
  filters: ExportFilters
  range: {first_seq: number; last_seq: number; events: number; redacted: number} | null
  tree_head: {tree_size: number; root_hash: string; key_fingerprint: string}
  signed_by_exporter: boolean
  files: ManifestFile[]
}

export interface ExportSummary {
  out: string
  bytes: number
  sha256: string
  treeSize: number
  rootHash: string
  fingerprint: string
  firstSeq?: number
  lastSeq?: number
  events: number
  redacted: number
  sessions: number
  approvals: number
  maskingRows: number
  signedNow: boolean
  /** Published heads included (anchors.jsonl). */
  anchors: number
}

export interface RangeProofFile {
  first_seq: number
  last_seq: number
  tree_size: number
  nodes: string[]
}

function iso(v: string | undefined, what: string): string | undefined {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new HoopError('INVALID_INPUT', `--${what} must be a date or ISO 8601 time, got "${v}"`)
  return new Date(t).toISOString()
}

/** Does this event belong to the export's connection/user filter? */
function matchesFilter(e: StoredEvent, f: ExportFilters): boolean {
  if (f.connection && e.connection !== f.connection) return false
  if (f.user) {
    const u = f.user.toLowerCase()
    const actors = [e.actor, (e.data as Record<string, unknown>).requester as StoredEvent['actor']]
    if (!actors.some((a) => a && [a.subject, a.name, a.email].some((x) => x?.toLowerCase() === u))) return false
  }
  return true
}

/** The seq of each audit.retention / audit.erasure event, by the ref its removal records carry. */
function authoritySeqs(db: Database.Database): Map<string, number> {
  const out = new Map<string, number>()
  for (const [seq, body] of db.prepare("SELECT seq, body FROM audit_events WHERE kind IN ('audit.retention', 'audit.erasure')").raw().iterate() as IterableIterator<[number, string]>) {
    const ref = (JSON.parse(body) as StoredEvent).data.ref
    if (typeof ref === 'string') out.set(ref, seq)
  }
  return out
}

function redactedStub(seq: number, leaf: Buffer): string {
  return canonicalize({leaf_hash: leaf.toString('hex'), redacted: true, seq})
}

/** Report text held before it is written out (characters). */
const REPORT_DRAIN_CHARS = 4 * 2 ** 20

class HashedFile {
  private readonly fd: number
  private readonly hash = createHash('sha256')
  private buf: string[] = []
  private pending = 0
  bytes = 0
  constructor(readonly path: string) {
    this.fd = openSync(path, 'w', 0o600)
  }

  write(s: string): void {
    this.buf.push(s)
    this.pending += s.length
    if (this.pending > 1 << 20) this.drain()
  }

  private drain(): void {
    const b = Buffer.from(this.buf.join(''), 'utf8')
    this.buf = []
    this.pending = 0
    this.hash.update(b)
    this.bytes += b.length
    writeSync(this.fd, b)
  }

  close(): string {
    this.drain()
    closeSync(this.fd)
    return this.hash.digest('hex')
  }
}

export async function exportEvidence(opts: ExportOptions): Promise<ExportSummary> {
  const {db} = opts
  ensureAuditSchema(db)
  if (!/\.(tar\.gz|tgz)$/.test(opts.out)) throw new HoopError('INVALID_INPUT', `--out must end in .tar.gz or .tgz (got ${opts.out})`)
  const filters: ExportFilters = {from: iso(opts.from, 'from'), to: iso(opts.to, 'to'), connection: opts.connection, user: opts.user}
  const progress = opts.onProgress ?? (() => {})

  const key = loadSigningKey({dataDir: opts.dataDir, key: opts.signingKey, keyFile: opts.signingKeyFile, create: false})
  // The heads the gateway published, read before the snapshot: each was published after its events
  // were committed, so a store that is whole holds them all.
  const witnessFile = opts.witness ?? witnessPathOf(db) ?? join(opts.dataDir, WITNESS_FILE)
  const witnessLines = existsSync(witnessFile) ? (await readAnchorFiles([witnessFile], VERIFY_BOUNDS)).anchors : []
  // After an accepted store rollback (`hoop gateway --accept-store-rollback`, an audit event), the
  // heads before it describe the log as it was before: the store is held to the heads since.
  const lastAccepted = witnessLines.map((a) => Boolean(a.accepted)).lastIndexOf(true)
  const witnessed = witnessLines.slice(Math.max(0, lastAccepted))
  // One read transaction: everything below sees the same snapshot while the gateway appends.
  const snapshot = db.transaction(() => {
    const size = (db.prepare('SELECT count(*) AS n FROM audit_events').get() as {n: number}).n
    const checkpoints = db.prepare('SELECT * FROM audit_checkpoints ORDER BY tree_size').all() as CheckpointRow[]
    const published = db.prepare('SELECT * FROM audit_anchors ORDER BY tree_size, id').all() as AnchorRow[]
    return {size, checkpoints, published}
  })()
  const keys = new Map((db.prepare('SELECT fingerprint, public_pem FROM audit_keys').all() as {fingerprint: string; public_pem: string}[]).map((r) => [r.fingerprint, r.public_pem]))
  if (key) keys.set(key.fingerprint, key.publicPem)
  const keyFor = (fp: string) => (keys.has(fp) ? publicKeyFromPem(keys.get(fp)!) : undefined)

  const treeSize = key ? snapshot.size : (snapshot.checkpoints.at(-1)?.tree_size ?? 0)
  if (!key && snapshot.checkpoints.length === 0) {
    throw new HoopError('NOT_FOUND', 'no signed checkpoint in the audit store and no signing key to make one (set HOOP_AUDIT_SIGNING_KEY or run on the gateway host)')
  }
  progress({phase: 'tree', done: 0, total: treeSize})
  // Leaves of every stored event up to the first gap: the tree to sign is a prefix of them (without
  // the key, the newest checkpoint's), and a published head beyond it is checked on the rest.
  const leaves = Buffer.allocUnsafe(snapshot.size * 32)
  let n = 0
  for (const [seq, leaf] of db.prepare('SELECT seq, leaf FROM audit_events WHERE seq <= ? ORDER BY seq').raw().iterate(snapshot.size) as IterableIterator<[number, Buffer]>) {
    if (seq !== n + 1) break
    leaf.copy(leaves, n * 32)
    n++
  }
  if (n < treeSize) throw new HoopError('AUDIT_VERIFY_FAILED', `audit store: event seq ${n + 1} is missing${key ? '' : ` (checkpoint covers ${treeSize})`}; refusing to export; run \`hoop audit verify --live\``)
  const tree = new MerkleTree(leaves.subarray(0, n * 32))

  // Every stored checkpoint up to the tree size must match the stored leaves before we sign more.
  const earlier = snapshot.checkpoints.filter((c) => c.tree_size <= treeSize)
  for (const c of earlier) {
    if (!tree.root(c.tree_size).equals(Buffer.from(c.root_hash, 'hex'))) {
      throw new HoopError('AUDIT_VERIFY_FAILED', `audit store does not match its signed checkpoint of size ${c.tree_size}; refusing to export; run \`hoop audit verify --live\``)
    }
  }
  // And every head the gateway published: a store behind or forked from one is not signed for.
  const hashAt = db.prepare('SELECT hash FROM audit_events WHERE seq = ?')
  const view = {
    size: n,
    rootAt: (m: number) => (m <= n ? tree.root(m).toString('hex') : undefined),
    hashAt: (m: number) => (hashAt.get(m) as {hash: string} | undefined)?.hash,
  }
  const published = new Map<number, PackageAnchor>()
  for (const a of [...witnessed].sort((x, y) => y.tree_head.tree_size - x.tree_head.tree_size)) {
    const h = a.tree_head
    const where = a.source
    // A line the gateway's keys did not sign proves nothing either way (verify --anchor names it).
    const verdict = vouch(view, h, keyFor, where)
    if (!verdict.ok && verdict.kind !== 'unverifiable' && verdict.kind !== 'replaced') {
      throw new HoopError('AUDIT_STORE_REFUSED', `refusing to export: ${verdict.message}; run \`hoop audit verify --live --anchor ${witnessFile}\``)
    }
    if (verdict.ok && h.tree_size > 0 && h.tree_size <= treeSize) addPublished(published, h, {kind: 'witness', target: witnessFile, at: h.timestamp}, a.timestamp)
  }
  const byCheckpoint = new Map(snapshot.checkpoints.map((c) => [c.tree_size, c]))
  for (const p of snapshot.published) {
    const c = byCheckpoint.get(p.tree_size)
    if (!c || c.root_hash !== p.root_hash || p.tree_size > treeSize || p.tree_size === 0) continue
    const ts = p.kind === 'tsa' && p.token ? {tsa: p.target, token: Buffer.from(p.token).toString('base64'), gen_time: p.gen_time ?? ''} : undefined
    addPublished(published, {v: 1, ...c}, {kind: p.kind, target: p.target, at: p.published_at}, ts)
  }
  // The events no verified head covers yet must be chained before a head is signed over them.
  const covered = Math.max(0, ...earlier.map((c) => c.tree_size), ...[...published.keys()])
  checkTail(db, covered, treeSize)
  let sth: SignedTreeHead
  let signer: {publicPem: string; fingerprint: string}
  let signedNow = false
  const existing = earlier.at(-1)
  if (key && !(existing && existing.tree_size === treeSize && existing.key_fingerprint === key.fingerprint)) {
    const headHash = treeSize === 0 ? '0'.repeat(64) : (db.prepare('SELECT hash FROM audit_events WHERE seq = ?').get(treeSize) as {hash: string}).hash
    sth = signTreeHead({tree_size: treeSize, root_hash: tree.root(treeSize).toString('hex'), head_hash: headHash, timestamp: new Date().toISOString()}, key)
    const {v: _v, ...row} = sth
    db.prepare('INSERT OR IGNORE INTO audit_checkpoints (tree_size, root_hash, head_hash, timestamp, key_fingerprint, signature) VALUES (@tree_size, @root_hash, @head_hash, @timestamp, @key_fingerprint, @signature)').run(row)
    db.prepare('INSERT OR IGNORE INTO audit_keys (fingerprint, public_pem, first_used_at) VALUES (?, ?, ?)').run(key.fingerprint, key.publicPem, new Date().toISOString())
    signer = key
    signedNow = true
  } else {
    sth = {v: 1, ...existing!}
    const pem = key && key.fingerprint === sth.key_fingerprint ? key.publicPem : keys.get(sth.key_fingerprint)
    if (!pem) throw new HoopError('NOT_FOUND', `public key ${sth.key_fingerprint} of the latest checkpoint is not in the audit store`)
    signer = {publicPem: pem, fingerprint: fingerprintOf(publicKeyFromPem(pem))}
  }

  // The seq range covered by the time window (the whole log when no window is given).
  const bounds = db
    .prepare('SELECT min(seq) AS a, max(seq) AS b FROM audit_events WHERE seq <= ? AND time >= ? AND time <= ?')
    .get(treeSize, filters.from ?? '', filters.to ?? '\uffff') as {a: number | null; b: number | null}

  const dir = mkdtempSync(join(tmpdir(), 'hoop-export-'))
  try {
    const files: ManifestFile[] = []
    const addText = (path: string, content: string | Buffer): {path: string; content: Buffer} => {
      const buf = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8')
      files.push({path, sha256: createHash('sha256').update(buf).digest('hex'), bytes: buf.length})
      return {path, content: buf}
    }
    const reports = new ReportBuilder()
    // Reports are streamed to files beside events.jsonl as they grow, never held whole.
    const reportFiles = new Map(reports.files().map((f) => [f.path, new HashedFile(join(dir, f.path.replace('/', '-')))]))
    const drainReports = () => reports.drain((path, text) => reportFiles.get(path)?.write(text))
    const ledger = new RemovalLedger()
    const eventsFile = new HashedFile(join(dir, 'events.jsonl'))
    let events = 0
    let redacted = 0
    let range: Manifest['range'] = null
    if (bounds.a !== null && bounds.b !== null) {
      const total = bounds.b - bounds.a + 1
      const rows = db
        .prepare(`SELECT e.seq, e.body, ${payloadColumn(db)}, r.how, r.at, r.ref FROM audit_events e LEFT JOIN audit_payload_removals r ON r.seq = e.seq WHERE e.seq >= ? AND e.seq <= ? ORDER BY e.seq`)
        .raw()
        .iterate(bounds.a, bounds.b) as IterableIterator<[number, string, string | null, 'expired' | 'erased' | null, string | null, string | null]>
      const authorities = authoritySeqs(db)
      let done = 0
      for (const [seq, body, payload, how, at, ref] of rows) {
        const e = JSON.parse(body) as StoredEvent
        if (matchesFilter(e, filters)) {
          // A v2 event's payload, or why it is gone, follows its signed bytes (payloads.ts).
          let entry: string | PayloadRemoval | undefined
          if (e.payload_hash !== undefined) {
            if (payload !== null) {
              entry = payload
              ledger.kept()
            } else if (how && at) {
              entry = {removed: how, at, by_seq: ref ? authorities.get(ref) : undefined}
              ledger.gone(e, entry)
            } else ledger.gone(e, undefined)
          }
          ledger.authority(e)
          eventsFile.write(packageLine(body, entry) + '\n')
          reports.add(withPayload(e, typeof entry === 'string' ? entry : undefined))
          if (reports.pending > REPORT_DRAIN_CHARS) drainReports()
          events++
        } else {
          eventsFile.write(redactedStub(seq, tree.leaf(seq - 1)) + '\n')
          ledger.redacted(seq)
          redacted++
        }
        if (++done % 5000 === 0) progress({phase: 'events', done, total})
      }
      progress({phase: 'events', done: total, total})
      range = {first_seq: bounds.a, last_seq: bounds.b, events, redacted}
    }
    const eventsSha = eventsFile.close()
    files.push({path: FILES.events, sha256: eventsSha, bytes: eventsFile.bytes})
    drainReports()
    for (const [path, f] of reportFiles) files.push({path, sha256: f.close(), bytes: f.bytes})

    const small: {path: string; content: Buffer}[] = []
    small.push(addText(FILES.treeHead, JSON.stringify(sth, null, 2) + '\n'))
    small.push(addText(FILES.publicKey, signer.publicPem))
    small.push(addText(FILES.fingerprint, signer.fingerprint + '\n'))
    const rangeProof: RangeProofFile | null = range
      ? {first_seq: range.first_seq, last_seq: range.last_seq, tree_size: treeSize, nodes: tree.rangeProof(range.first_seq - 1, range.last_seq, treeSize).map((b) => b.toString('hex'))}
      : null
    small.push(addText(FILES.rangeProof, JSON.stringify(rangeProof) + '\n'))
    const mine = (fingerprint: string) => !opts.onlySignerHeads || fingerprint === signer.fingerprint
    const prior = earlier.filter((c) => c.tree_size > 0 && c.tree_size < treeSize && mine(c.key_fingerprint))
    const heads = [...published.values()].filter((a) => mine(a.tree_head.key_fingerprint))
    small.push(addText(FILES.checkpoints, prior.map((c) => JSON.stringify({v: 1, ...c})).join('\n') + (prior.length ? '\n' : '')))
    // A proof from every earlier checkpoint and every published head (they are checkpoints too,
    // unless the store lost them: then the witness's copy is proven here).
    const proofSizes = [...new Set([...prior.map((c) => c.tree_size), ...heads.map((a) => a.tree_head.tree_size).filter((m) => m < treeSize)])].sort((a, b) => a - b)
    small.push(
      addText(
        FILES.consistency,
        proofSizes.map((m) => JSON.stringify({from_size: m, to_size: treeSize, nodes: tree.consistencyProof(m, treeSize).map((b) => b.toString('hex'))})).join('\n') + (proofSizes.length ? '\n' : ''),
      ),
    )
    const anchorLines = heads.sort((a, b) => a.tree_head.tree_size - b.tree_head.tree_size)
    small.push(addText(FILES.anchors, anchorLines.map((a) => canonicalize(a)).join('\n') + (anchorLines.length ? '\n' : '')))
    const createdAt = new Date().toISOString()
    small.push(
      addText(
        FILES.summary,
        isoMappingMarkdown({createdAt, filters, range, sth, fingerprint: signer.fingerprint, reports, treeSize, retention: {anchors: anchorLines, removals: ledger.finish(range?.last_seq ?? 0).groups}}),
      ),
    )

    const manifest: Manifest = {
      format: PACKAGE_FORMAT,
      version: PACKAGE_VERSION,
      created_at: createdAt,
      generator: opts.generator ?? 'hoop',
      filters,
      range,
      tree_head: {tree_size: sth.tree_size, root_hash: sth.root_hash, key_fingerprint: sth.key_fingerprint},
      signed_by_exporter: Boolean(key && key.fingerprint === signer.fingerprint),
      files: [...files].sort((a, b) => (a.path < b.path ? -1 : 1)),
    }
    const manifestBuf = Buffer.from(JSON.stringify(manifest, null, 2) + '\n')
    const root = `hoop-audit-${createdAt.replace(/[:.]/g, '').replace('T', '-').slice(0, 17)}`
    const tmpOut = `${opts.out}.partial`
    const tar = new TarGzWriter(tmpOut, new Date(createdAt))
    await tar.addBuffer(`${root}/${FILES.manifest}`, manifestBuf)
    if (manifest.signed_by_exporter) await tar.addBuffer(`${root}/${FILES.manifestSig}`, Buffer.from(signManifest(manifestBuf, key as SigningKey) + '\n'))
    const order = [FILES.treeHead, FILES.publicKey, FILES.fingerprint, FILES.checkpoints, FILES.consistency, FILES.rangeProof, FILES.anchors]
    for (const p of order) await tar.addBuffer(`${root}/${p}`, small.find((s) => s.path === p)!.content)
    progress({phase: 'archive', done: 0, total: 1})
    await tar.addFile(`${root}/${FILES.events}`, join(dir, 'events.jsonl'), eventsFile.bytes)
    for (const [path, f] of reportFiles) await tar.addFile(`${root}/${path}`, f.path, f.bytes)
    for (const s of small) if (!(order as string[]).includes(s.path)) await tar.addBuffer(`${root}/${s.path}`, s.content)
    await tar.finish()
    renameSync(tmpOut, opts.out)
    progress({phase: 'archive', done: 1, total: 1})

    const pkgHash = createHash('sha256')
    const {createReadStream} = await import('node:fs')
    for await (const chunk of createReadStream(opts.out)) pkgHash.update(chunk as Buffer)
    return {
      out: opts.out,
      bytes: statSync(opts.out).size,
      sha256: pkgHash.digest('hex'),
      treeSize,
      rootHash: sth.root_hash,
      fingerprint: signer.fingerprint,
      firstSeq: range?.first_seq,
      lastSeq: range?.last_seq,
      events,
      redacted,
      sessions: reports.sessions.size,
      approvals: reports.approvals.rows,
      maskingRows: reports.masking.rows,
      signedNow,
      anchors: published.size,
    }
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

/** Bounds for reading the witness file (export trusts no more of it than verify would). */
const VERIFY_BOUNDS = {maxTotalBytes: 8 * 2 ** 30, maxEntryBytes: 4 * 2 ** 30, maxMetadataBytes: 256 * 2 ** 20, maxLineBytes: 2 ** 20, maxEntries: 64, timeoutMs: 10 * 60_000}

function addPublished(into: Map<number, PackageAnchor>, h: SignedTreeHead, where: PackageAnchor['published'][number], ts?: PackageAnchor['timestamp']): void {
  let a = into.get(h.tree_size)
  if (!a) {
    a = {tree_head: h, published: []}
    into.set(h.tree_size, a)
  }
  if (!a.published.some((p) => p.kind === where.kind && p.target === where.target)) a.published.push(where)
  if (ts && !a.timestamp) a.timestamp = ts
}

/** Events after `from` up to `to`: each body hashes to its stored hash and leaf and links to its predecessor. */
function checkTail(db: Database.Database, from: number, to: number): void {
  if (to <= from) return
  let prev = from === 0 ? '0'.repeat(64) : (db.prepare('SELECT hash FROM audit_events WHERE seq = ?').get(from) as {hash: string}).hash
  let expected = from + 1
  for (const [seq, hash, prevHash, leaf, body] of db.prepare('SELECT seq, hash, prev_hash, leaf, body FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq').raw().iterate(from, to) as IterableIterator<[number, string, string, Buffer, string]>) {
    const bad = (why: string) => new HoopError('AUDIT_VERIFY_FAILED', `refusing to export: event seq ${seq} ${why}; run \`hoop audit verify --live\``)
    if (seq !== expected) throw new HoopError('AUDIT_VERIFY_FAILED', `refusing to export: event seq ${expected} is missing; run \`hoop audit verify --live\``)
    if (createHash('sha256').update(body).digest('hex') !== hash) throw bad('does not match its stored hash')
    if (prevHash !== prev || (JSON.parse(body) as StoredEvent).prev_hash !== prev) throw bad('does not link to its predecessor')
    if (!leafHash(body).equals(leaf)) throw bad('does not match its stored Merkle leaf')
    prev = hash
    expected++
  }
}
