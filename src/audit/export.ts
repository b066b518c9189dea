// `hoop audit export`: an evidence package (tar.gz) for an auditor. The events of the chosen range
// are included as stored (the signed bytes); events of the range that do not match the
// --connection/--user filter are replaced by their Merkle leaf hash, so the range stays complete
// and verifiable without disclosing other people's activity. See docs/audit.md for the layout.
import type Database from 'better-sqlite3'
import {createHash, type KeyObject} from 'node:crypto'
import {closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync, renameSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {HoopError} from '../shared/errors.js'
import {canonicalize} from './canonical.js'
import type {StoredEvent} from './events.js'
import {loadSigningKey, type SignedTreeHead, signManifest, signTreeHead, type SigningKey, publicKeyFromPem, fingerprintOf} from './keys.js'
import {MerkleTree} from './merkle.js'
import {ReportBuilder} from './reports.js'
import {type CheckpointRow, ensureAuditSchema} from './schema.js'
import {isoMappingMarkdown} from './summary.js'
import {TarGzWriter} from './tar.js'

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
} as const

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
  generator?: string
  onProgress?: (p: {phase: string; done: number; total: number}) => void
}

interface ManifestFile {
  path: string
  sha256: string
  bytes: number
}

export interface Manifest {
  format: typeof PACKAGE_FORMAT
  version: 1
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

function redactedStub(seq: number, leaf: Buffer): string {
  return canonicalize({leaf_hash: leaf.toString('hex'), redacted: true, seq})
}

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

  // One read transaction: everything below sees the same snapshot while the gateway appends.
  const key = loadSigningKey({dataDir: opts.dataDir, key: opts.signingKey, keyFile: opts.signingKeyFile, create: false})
  const snapshot = db.transaction(() => {
    const size = (db.prepare('SELECT count(*) AS n FROM audit_events').get() as {n: number}).n
    const checkpoints = db.prepare('SELECT * FROM audit_checkpoints ORDER BY tree_size').all() as CheckpointRow[]
    return {size, checkpoints}
  })()
  const keys = new Map((db.prepare('SELECT fingerprint, public_pem FROM audit_keys').all() as {fingerprint: string; public_pem: string}[]).map((r) => [r.fingerprint, r.public_pem]))

  const treeSize = key ? snapshot.size : (snapshot.checkpoints.at(-1)?.tree_size ?? 0)
  if (!key && snapshot.checkpoints.length === 0) {
    throw new HoopError('NOT_FOUND', 'no signed checkpoint in the audit store and no signing key to make one (set HOOP_AUDIT_SIGNING_KEY or run on the gateway host)')
  }
  progress({phase: 'tree', done: 0, total: treeSize})
  const leaves = Buffer.allocUnsafe(treeSize * 32)
  let n = 0
  for (const [seq, leaf] of db.prepare('SELECT seq, leaf FROM audit_events WHERE seq <= ? ORDER BY seq').raw().iterate(treeSize) as IterableIterator<[number, Buffer]>) {
    if (seq !== n + 1) throw new HoopError('AUDIT_VERIFY_FAILED', `audit store: event seq ${n + 1} is missing; run \`hoop audit verify --live\``)
    leaf.copy(leaves, n * 32)
    n++
  }
  if (n !== treeSize) throw new HoopError('AUDIT_VERIFY_FAILED', `audit store: event seq ${n + 1} is missing (checkpoint covers ${treeSize}); run \`hoop audit verify --live\``)
  const tree = new MerkleTree(leaves)

  // Every stored checkpoint up to the tree size must match the stored leaves before we sign more.
  const earlier = snapshot.checkpoints.filter((c) => c.tree_size <= treeSize)
  for (const c of earlier) {
    if (!tree.root(c.tree_size).equals(Buffer.from(c.root_hash, 'hex'))) {
      throw new HoopError('AUDIT_VERIFY_FAILED', `audit store does not match its signed checkpoint of size ${c.tree_size}; refusing to export; run \`hoop audit verify --live\``)
    }
  }
  let sth: SignedTreeHead
  let signer: {publicPem: string; fingerprint: string}
  let signedNow = false
  const existing = earlier.at(-1)
  if (key && !(existing && existing.tree_size === treeSize && existing.key_fingerprint === key.fingerprint)) {
    const headHash = treeSize === 0 ? '0'.repeat(64) : (db.prepare('SELECT hash FROM audit_events WHERE seq = ?').get(treeSize) as {hash: string}).hash
    sth = signTreeHead({tree_size: treeSize, root_hash: tree.root().toString('hex'), head_hash: headHash, timestamp: new Date().toISOString()}, key)
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
    const eventsFile = new HashedFile(join(dir, 'events.jsonl'))
    let events = 0
    let redacted = 0
    let range: Manifest['range'] = null
    if (bounds.a !== null && bounds.b !== null) {
      const total = bounds.b - bounds.a + 1
      const rows = db.prepare('SELECT seq, body FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq').raw().iterate(bounds.a, bounds.b) as IterableIterator<[number, string]>
      let done = 0
      for (const [seq, body] of rows) {
        const e = JSON.parse(body) as StoredEvent
        if (matchesFilter(e, filters)) {
          eventsFile.write(body + '\n')
          reports.add(e)
          events++
        } else {
          eventsFile.write(redactedStub(seq, tree.leaf(seq - 1)) + '\n')
          redacted++
        }
        if (++done % 5000 === 0) progress({phase: 'events', done, total})
      }
      progress({phase: 'events', done: total, total})
      range = {first_seq: bounds.a, last_seq: bounds.b, events, redacted}
    }
    const eventsSha = eventsFile.close()
    files.push({path: FILES.events, sha256: eventsSha, bytes: eventsFile.bytes})

    const small: {path: string; content: Buffer}[] = []
    small.push(addText(FILES.treeHead, JSON.stringify(sth, null, 2) + '\n'))
    small.push(addText(FILES.publicKey, signer.publicPem))
    small.push(addText(FILES.fingerprint, signer.fingerprint + '\n'))
    const rangeProof: RangeProofFile | null = range
      ? {first_seq: range.first_seq, last_seq: range.last_seq, tree_size: treeSize, nodes: tree.rangeProof(range.first_seq - 1, range.last_seq, treeSize).map((b) => b.toString('hex'))}
      : null
    small.push(addText(FILES.rangeProof, JSON.stringify(rangeProof) + '\n'))
    const prior = earlier.filter((c) => c.tree_size > 0 && c.tree_size < treeSize)
    small.push(addText(FILES.checkpoints, prior.map((c) => JSON.stringify({v: 1, ...c})).join('\n') + (prior.length ? '\n' : '')))
    small.push(
      addText(
        FILES.consistency,
        prior.map((c) => JSON.stringify({from_size: c.tree_size, to_size: treeSize, nodes: tree.consistencyProof(c.tree_size, treeSize).map((b) => b.toString('hex'))})).join('\n') +
          (prior.length ? '\n' : ''),
      ),
    )
    for (const r of reports.files()) small.push(addText(r.path, r.content))
    const createdAt = new Date().toISOString()
    small.push(
      addText(
        FILES.summary,
        isoMappingMarkdown({createdAt, filters, range, sth, fingerprint: signer.fingerprint, reports, treeSize}),
      ),
    )

    const manifest: Manifest = {
      format: PACKAGE_FORMAT,
      version: 1,
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
    const order = [FILES.treeHead, FILES.publicKey, FILES.fingerprint, FILES.checkpoints, FILES.consistency, FILES.rangeProof]
    for (const p of order) await tar.addBuffer(`${root}/${p}`, small.find((s) => s.path === p)!.content)
    progress({phase: 'archive', done: 0, total: 1})
    await tar.addFile(`${root}/${FILES.events}`, join(dir, 'events.jsonl'), eventsFile.bytes)
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
    }
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}
