// What the audit and sessions commands do, so the commands stay one call: open the data dir,
// run the library function, render. Works offline on the gateway host (`--data-dir`); erase and
// hold also on the store a gateway config names (`--config`: its PostgreSQL store).
import type Database from 'better-sqlite3'
import type {X509Certificate} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {defaultDataDir} from '../shared/config.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import {configuredStore} from '../store/open.js'
import {PostgresStore} from '../store/postgres.js'
import {SqliteStore} from '../store/sqlite.js'
import {exportEvidence, type ExportSummary} from './export.js'
import {loadSigningKey, publicKeyFromPem, fingerprintOf} from './keys.js'
import {events} from './events.js'
import {ensureAuditSchema, notePending, refuseIfAuditOnPostgres} from './schema.js'
import {listSessions, renderReplay, type SessionDetail, type SessionListItem, showSession} from './sessions.js'
import {readAnchorFiles} from './anchor-check.js'
import {erasePayloadsPg, setHoldPg} from './pg-retention.js'
import {erasePayloads, type ErasureRequest, type ErasureResult, type HoldResult, type HoldTarget, setHold} from './retention.js'
import {certificatesFromPem} from './tsa.js'
import {VERIFY_LIMITS, verifyLive, verifyPackage, type VerifyResult} from './verify.js'

function withStore<T>(dataDir: string | undefined, fn: (db: Database.Database, dir: string) => T | Promise<T>): Promise<T> {
  const dir = dataDir ?? defaultDataDir()
  if (!existsSync(join(dir, 'hoop.db'))) throw new HoopError('NOT_FOUND', `no hoop store in ${dir}; pass the gateway's --data-dir`)
  const store = new SqliteStore(dir)
  ensureAuditSchema(store.db)
  return Promise.resolve()
    .then(() => refuseIfAuditOnPostgres(store.db, dir))
    .then(() => fn(store.db, dir))
    .finally(() => store.close())
}

/** A one-line progress bar on stderr, redrawn in place; only when stderr is a terminal. */
function progressBar(enabled = Boolean(process.stderr.isTTY)): ((p: {phase: string; done: number; total: number}) => void) & {end(): void} {
  let drawn = false
  const f = ((p: {phase: string; done: number; total: number}) => {
    if (!enabled) return
    const width = 30
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.')
    process.stderr.write(`\r${p.phase.padEnd(8)} [${bar}] ${Math.round(frac * 100)
      .toString()
      .padStart(3)}% ${p.done}/${p.total}   `)
    drawn = true
  }) as ((p: {phase: string; done: number; total: number}) => void) & {end(): void}
  f.end = () => {
    if (drawn) process.stderr.write('\n')
  }
  return f
}

export async function runExport(opts: {dataDir?: string; out: string; from?: string; to?: string; connection?: string; user?: string; generator?: string; progress?: boolean}): Promise<ExportSummary> {
  const bar = progressBar(opts.progress)
  try {
    return await withStore(opts.dataDir, async (db, dataDir) => {
      const s = await exportEvidence({db, dataDir, out: opts.out, from: opts.from, to: opts.to, connection: opts.connection, user: opts.user, generator: opts.generator, onProgress: bar})
      accessed(db, {action: 'export', from: opts.from, to: opts.to, connection: opts.connection, user: opts.user, firstSeq: s.firstSeq, lastSeq: s.lastSeq, treeSize: s.treeSize, events: s.events, sha256: s.sha256})
      return s
    })
  } finally {
    bar.end()
  }
}

export async function runVerify(opts: {pkg?: string; live?: boolean; dataDir?: string; publicKey?: string; previous?: string; anchors?: string[]; tsaCa?: string}): Promise<VerifyResult> {
  const pem = opts.publicKey ? readText(opts.publicKey, '--public-key') : undefined
  const tsaCa = opts.tsaCa ? tsaCertificates(opts.tsaCa) : undefined
  if (tsaCa && !opts.anchors?.length) throw new HoopError('INVALID_INPUT', '--tsa-ca checks the timestamp tokens of --anchor files; give an --anchor too')
  const anchors = opts.anchors?.length ? await readAnchorFiles(opts.anchors, VERIFY_LIMITS) : undefined
  if (opts.live) {
    if (opts.pkg) throw new HoopError('INVALID_INPUT', 'give either PACKAGE or --live, not both')
    return withStore(opts.dataDir, (db) => {
      const r = verifyLive(db, {publicKey: pem, anchors, tsaCa})
      accessed(db, {action: 'verify', treeSize: r.events, firstSeq: r.firstSeq, lastSeq: r.lastSeq})
      return r
    })
  }
  if (!opts.pkg) throw new HoopError('INVALID_INPUT', 'give a PACKAGE file to verify, or --live for the gateway store')
  if (!existsSync(opts.pkg)) throw new HoopError('NOT_FOUND', `no such package: ${opts.pkg}`)
  return verifyPackage(opts.pkg, {publicKey: pem, previous: opts.previous ? readText(opts.previous, '--previous') : undefined, anchors, tsaCa})
}

function tsaCertificates(file: string): X509Certificate[] {
  try {
    return certificatesFromPem(readText(file, '--tsa-ca'))
  } catch (err) {
    if (err instanceof HoopError) throw new HoopError('INVALID_INPUT', `--tsa-ca ${file}: ${err.message}`)
    throw new HoopError('INVALID_INPUT', `--tsa-ca ${file}: not a PEM certificate (${errorMessage(err)})`)
  }
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new HoopError('INVALID_INPUT', `${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}

/** Human rendering of a verification result (stdout); the caller turns failure into exit 19. */
export function renderVerify(r: VerifyResult, what: string): string {
  const out: string[] = []
  const range = r.firstSeq !== undefined ? ` seq ${r.firstSeq}..${r.lastSeq}` : ''
  const trust = r.keyTrust === 'pinned' ? 'pinned key' : r.keyTrust === 'package' ? "the package's own key (not pinned)" : 'keys recorded in the store'
  if (r.ok) {
    out.push(`OK ${what} verifies: ${r.events} events${r.redacted ? ` (+${r.redacted} redacted to leaf hashes)` : ''}${range}, ` +
      `${r.checkpoints} checkpoint(s), tree size ${r.treeSize ?? 0}, root ${r.rootHash ?? '-'}`)
    out.push(`   signed by ${r.fingerprint ?? '-'} (checked with ${trust})`)
  } else {
    out.push(`FAILED ${what} does not verify`)
    out.push(`   first bad record: ${r.first!.record}: ${r.first!.reason}`)
    for (const f of r.failures.slice(1, 10)) out.push(`   also: ${f.record}: ${f.reason}`)
    if (r.failures.length > 10) out.push(`   ... ${r.failures.length - 10} more`)
  }
  for (const a of r.anchors ?? []) {
    const stamped = a.timestamped_at ? `, timestamped ${a.timestamped_at}` : ''
    const detail = a.result === 'consistent' ? `consistent${a.proof ? ` (RFC 6962 proof ${a.proof.from_size} -> ${a.proof.to_size}, ${a.proof.nodes.length} nodes)` : ''}` : `${a.result}: ${a.reason ?? ''}`
    out.push(`   anchor ${a.source}: size ${a.tree_size} signed ${a.signed_at}${stamped}: ${detail}`)
  }
  for (const n of r.notes) out.push(`note: ${n}`)
  return out.join('\n')
}

export function verifyError(r: VerifyResult): HoopError {
  return new HoopError('AUDIT_VERIFY_FAILED', `first bad record: ${r.first?.record}: ${r.first?.reason}`, {failures: r.failures})
}

export interface KeyInfo {
  algorithm: 'Ed25519'
  fingerprint: string
  publicKey: string
  source: string
}

/** The gateway's audit public key and fingerprint, from the data dir (or HOOP_AUDIT_SIGNING_KEY). */
export async function auditKey(opts: {dataDir?: string}): Promise<KeyInfo> {
  const dir = opts.dataDir ?? defaultDataDir()
  const key = loadSigningKey({dataDir: dir, create: false})
  if (key) return {algorithm: 'Ed25519', fingerprint: key.fingerprint, publicKey: key.publicPem, source: key.source}
  if (existsSync(join(dir, 'hoop.db'))) {
    const row = await withStore(dir, (db) => db.prepare('SELECT public_pem FROM audit_keys ORDER BY first_used_at DESC LIMIT 1').get() as {public_pem: string} | undefined)
    if (row) return {algorithm: 'Ed25519', fingerprint: fingerprintOf(publicKeyFromPem(row.public_pem)), publicKey: row.public_pem, source: `${dir}/hoop.db`}
  }
  throw new HoopError('NOT_FOUND', `no audit signing key in ${dir}; the gateway creates it on first start (or set HOOP_AUDIT_SIGNING_KEY)`)
}

export function sessionsList(opts: {dataDir?: string; limit?: number; connection?: string; user?: string}): Promise<SessionListItem[]> {
  return withStore(opts.dataDir, (db) => {
    const list = listSessions(db, opts)
    accessed(db, {action: 'sessions.list', connection: opts.connection, user: opts.user, results: list.length})
    return list
  })
}

export function sessionsShow(opts: {dataDir?: string; id: string}): Promise<SessionDetail & {replay: string}> {
  return withStore(opts.dataDir, (db) => {
    const s = showSession(db, opts.id)
    accessed(db, {action: 'sessions.show', session: s.id, connection: s.connection})
    return {...s, replay: renderReplay(s)}
  })
}

/**
 * Evidence read on the gateway host is audited too: who (the local user), what, when. The gateway
 * is the log's only writer, so the event waits in audit_pending until it appends it.
 */
function operatorName(): string {
  try {
    return userInfo().username
  } catch {
    return 'unknown'
  }
}

/**
 * Runs a retention command where the gateway keeps its audit log: the data dir's SQLite file, or
 * (with `config`) the store that config names, PostgreSQL included. On PostgreSQL the command's
 * audit event is appended to the shared log in the same transaction as its change (pg-retention.ts).
 */
async function onAuditStore<T>(o: {dataDir?: string; config?: string}, sqlite: (db: Database.Database, holds: HoldTarget[]) => T, pg: (store: PostgresStore, holds: HoldTarget[]) => Promise<T>): Promise<T> {
  if (!o.config) return withStore(o.dataDir, (db) => sqlite(db, []))
  const target = configuredStore(o.config, o.dataDir)
  const holds = configHolds(target.audit)
  if (target.kind === 'sqlite') return withStore(target.dataDir, (db) => sqlite(db, holds))
  const store = await PostgresStore.open({url: target.url, poolSize: 1})
  try {
    return await pg(store, holds)
  } finally {
    await store.close()
  }
}

/** The legal holds a gateway config places (audit.retention.holds; the gateway validates them on start). */
function configHolds(audit: unknown): HoldTarget[] {
  const holds = (audit as {retention?: {holds?: unknown}} | undefined)?.retention?.holds
  if (!Array.isArray(holds)) return []
  return holds.flatMap((h: {connection?: unknown; user?: unknown}): HoldTarget[] => (typeof h?.connection === 'string' ? [{connection: h.connection}] : typeof h?.user === 'string' ? [{user: h.user}] : []))
}

/** `hoop audit erase`: the payloads of a session or a user's events, with an audit.erasure event. */
export async function runErase(opts: {dataDir?: string; config?: string; session?: string; user?: string; reason: string}): Promise<ErasureResult> {
  if (Boolean(opts.session) === Boolean(opts.user)) throw new HoopError('INVALID_INPUT', 'give exactly one of --session ID or --user SUBJECT')
  const req = (holds: HoldTarget[]): ErasureRequest => ({scope: opts.session ? 'session' : 'user', target: (opts.session ?? opts.user)!, reason: opts.reason, operator: operatorName(), holds})
  return onAuditStore(opts, (db, holds) => erasePayloads(db, req(holds)), (store, holds) => erasePayloadsPg(store, req(holds)))
}

/** `hoop audit hold`: place or release a legal hold on a connection or a user, with an audit.hold event. */
export async function runHold(opts: {dataDir?: string; config?: string; connection?: string; user?: string; reason: string; release?: boolean}): Promise<HoldResult> {
  if (Boolean(opts.connection) === Boolean(opts.user)) throw new HoopError('INVALID_INPUT', 'give exactly one of --connection NAME or --user SUBJECT')
  const req = {action: opts.release ? 'release' : 'place', scope: opts.connection ? 'connection' : 'user', target: (opts.connection ?? opts.user)!, reason: opts.reason, operator: operatorName()} as const
  return onAuditStore(opts, (db) => setHold(db, req), (store) => setHoldPg(store, req))
}

function accessed(db: Database.Database, o: Omit<Parameters<typeof events.auditAccess>[0], 'via' | 'operator' | 'identity'>): void {
  let operator = 'unknown'
  try {
    operator = userInfo().username
  } catch {
    // no passwd entry for this uid
  }
  try {
    notePending(db, events.auditAccess({...o, operator, via: 'data-dir'}))
  } catch (err) {
    // A read-only copy of a data dir (an auditor's) cannot take the note; the reading goes on.
    process.stderr.write(`note: this access could not be recorded for the audit log (${errorMessage(err)})\n`)
  }
}
