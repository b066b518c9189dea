// Audit routes for auditors (groups in auth.auditorGroups, default auditors and admins): an
// evidence package streamed from the live store, a live verification, and the session
// recordings (list and replay). Every one of them is an audit.access event: who, what (the range,
// filters and package hash of an export; the session replayed), and when.
import {createReadStream, mkdtempSync, rmSync} from 'node:fs'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type Database from 'better-sqlite3'
import {events, exportEvidence, listSessions, PgAuditLog, renderReplay, showSession, verifyLive} from '../audit/index.js'
import {listPgSessions, showPgSession} from '../audit/pg-recordings.js'
import {withAuditSnapshot} from '../audit/pg-snapshot.js'
import type {Identity} from '../identity/types.js'
import {HoopError} from '../shared/errors.js'
import {sendJson} from '../shared/http.js'
import type {ApiContext} from './api.js'

const AUDITOR_GROUPS_DEFAULT = ['auditors', 'admins']

function auditorGroups(ctx: ApiContext): string[] {
  const a = (ctx.config.auth as {auditorGroups?: unknown} | undefined)?.auditorGroups
  return Array.isArray(a) && a.every((g) => typeof g === 'string') ? (a as string[]) : AUDITOR_GROUPS_DEFAULT
}

/** Audit evidence, and what else auditors see (evidence-api.ts, policy-api.ts), needs an auditor group. */
export function requireAuditor(ctx: ApiContext, identity: Identity, what = 'audit evidence'): void {
  const groups = auditorGroups(ctx)
  if (!identity.groups.some((g) => groups.includes(g))) {
    throw new HoopError('ACCESS_DENIED', `${what} needs membership of ${groups.join(' or ')}; ${identity.name} has none`)
  }
}

export async function handleAuditApi(ctx: ApiContext, identity: Identity, method: string, url: URL, _req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (method !== 'GET') return false
  const session = /^\/v1\/sessions\/([^/]+)$/.exec(url.pathname)
  if (url.pathname !== '/v1/audit/export' && url.pathname !== '/v1/audit/verify' && url.pathname !== '/v1/sessions' && !session) return false
  requireAuditor(ctx, identity)
  // The access is recorded before the evidence is handed over: no record, no evidence.
  const access = (o: Omit<Parameters<typeof events.auditAccess>[0], 'identity' | 'via'>) => ctx.audit.append(events.auditAccess({identity, via: 'gateway', ...o}))
  if (url.pathname === '/v1/sessions') {
    const q = url.searchParams
    const limit = Math.min(1000, Math.max(1, Number(q.get('limit') ?? 50) || 50))
    const filters = {connection: q.get('connection') ?? undefined, user: q.get('user') ?? undefined}
    const sessions = ctx.audit instanceof PgAuditLog ? await listPgSessions(ctx.audit.pgStore, {limit, ...filters}) : listSessions(ctx.db, {limit, ...filters})
    await access({action: 'sessions.list', ...filters, results: sessions.length})
    sendJson(res, 200, {sessions})
    return true
  }
  if (session) {
    const id = decodeURIComponent(session[1])
    const detail = ctx.audit instanceof PgAuditLog ? await showPgSession(ctx.audit.pgStore, id) : showSession(ctx.db, id)
    await access({action: 'sessions.show', session: detail.id, connection: detail.connection})
    sendJson(res, 200, {...detail, replay: renderReplay(detail)})
    return true
  }
  // Everything acknowledged is in the store and covered by a fresh signed tree head.
  await ctx.audit.signHead()
  const pg = ctx.audit instanceof PgAuditLog ? ctx.audit : undefined
  if (url.pathname === '/v1/audit/verify') {
    // One log signed by several replicas (PostgreSQL): each head is checked with the key its
    // replica recorded in the store, not with this replica's key alone.
    const result = await onAuditDb(ctx, (db) => verifyLive(db, {publicKey: pg ? undefined : ctx.audit.publicKeyPem()}))
    await access({action: 'verify', treeSize: result.events, firstSeq: result.firstSeq, lastSeq: result.lastSeq})
    sendJson(res, 200, result)
    return true
  }
  const q = url.searchParams
  const filters = {from: q.get('from') ?? undefined, to: q.get('to') ?? undefined, connection: q.get('connection') ?? undefined, user: q.get('user') ?? undefined}
  const dir = mkdtempSync(join(tmpdir(), 'hoop-export-'))
  try {
    const out = join(dir, 'evidence.tar.gz')
    const summary = await onAuditDb(ctx, (db) =>
      exportEvidence({db, dataDir: ctx.dataDir, signingKeyFile: ctx.signingKeyFile, out, generator: `hoop gateway ${ctx.version}`, onlySignerHeads: Boolean(pg), ...filters}),
    )
    await access({action: 'export', ...filters, firstSeq: summary.firstSeq, lastSeq: summary.lastSeq, treeSize: summary.treeSize, events: summary.events, sha256: summary.sha256})
    res.writeHead(200, {
      'content-type': 'application/gzip',
      'content-length': summary.bytes,
      'content-disposition': 'attachment; filename="evidence.tar.gz"',
      'x-hoop-export-summary': encodeURIComponent(JSON.stringify({...summary, out: undefined})),
    })
    await new Promise<void>((resolve, reject) => {
      const file = createReadStream(out)
      file.once('error', reject)
      res.once('close', () => resolve())
      file.pipe(res)
    })
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
  return true
}

/**
 * Runs `fn` on the audit log's SQLite database: the data dir's file, or for the log on PostgreSQL
 * a private snapshot of it (pg-snapshot.ts), so export and verify are the same code on both.
 */
function onAuditDb<T>(ctx: ApiContext, fn: (db: Database.Database) => T | Promise<T>): Promise<T> {
  const audit = ctx.audit
  if (audit instanceof PgAuditLog) return withAuditSnapshot(audit.pgStore, {witness: audit.witnessPath}, fn)
  return Promise.resolve().then(() => fn(ctx.db))
}
