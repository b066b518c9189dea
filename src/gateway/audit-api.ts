// Audit routes for auditors (groups in auth.auditorGroups, default auditors and admins): an
// evidence package streamed from the live store, a live verification, and the session
// recordings (list and replay). Exports are audited.
import {createReadStream, mkdtempSync, rmSync} from 'node:fs'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {events, exportEvidence, listSessions, renderReplay, showSession, verifyLive} from '../audit/index.js'
import type {Identity} from '../identity/types.js'
import {HoopError} from '../shared/errors.js'
import {sendJson} from '../shared/http.js'
import type {ApiContext} from './api.js'

const AUDITOR_GROUPS_DEFAULT = ['auditors', 'admins']

function auditorGroups(ctx: ApiContext): string[] {
  const a = (ctx.config.auth as {auditorGroups?: unknown} | undefined)?.auditorGroups
  return Array.isArray(a) && a.every((g) => typeof g === 'string') ? (a as string[]) : AUDITOR_GROUPS_DEFAULT
}

export async function handleAuditApi(ctx: ApiContext, identity: Identity, method: string, url: URL, _req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (method !== 'GET') return false
  const session = /^\/v1\/sessions\/([^/]+)$/.exec(url.pathname)
  if (url.pathname !== '/v1/audit/export' && url.pathname !== '/v1/audit/verify' && url.pathname !== '/v1/sessions' && !session) return false
  const groups = auditorGroups(ctx)
  if (!identity.groups.some((g) => groups.includes(g))) {
    throw new HoopError('ACCESS_DENIED', `audit evidence needs membership of ${groups.join(' or ')}; ${identity.name} has none`)
  }
  if (url.pathname === '/v1/sessions') {
    const q = url.searchParams
    const limit = Math.min(1000, Math.max(1, Number(q.get('limit') ?? 50) || 50))
    sendJson(res, 200, {sessions: listSessions(ctx.store.db, {limit, connection: q.get('connection') ?? undefined, user: q.get('user') ?? undefined})})
    return true
  }
  if (session) {
    const detail = showSession(ctx.store.db, decodeURIComponent(session[1]))
    sendJson(res, 200, {...detail, replay: renderReplay(detail)})
    return true
  }
  // Everything acknowledged is in the store and covered by a fresh signed tree head.
  await ctx.audit.flush()
  ctx.audit.checkpoint()
  if (url.pathname === '/v1/audit/verify') {
    sendJson(res, 200, verifyLive(ctx.store.db, {publicKey: ctx.audit.publicKeyPem()}))
    return true
  }
  const q = url.searchParams
  const filters = {from: q.get('from') ?? undefined, to: q.get('to') ?? undefined, connection: q.get('connection') ?? undefined, user: q.get('user') ?? undefined}
  const dir = mkdtempSync(join(tmpdir(), 'hoop-export-'))
  try {
    const out = join(dir, 'evidence.tar.gz')
    const summary = await exportEvidence({db: ctx.store.db, dataDir: ctx.dataDir, signingKeyFile: ctx.signingKeyFile, out, generator: `hoop gateway ${ctx.version}`, ...filters})
    await ctx.audit.append(
      events.adminChange({identity, action: 'export', targetType: 'audit', target: `${filters.from ?? 'start'}..${filters.to ?? 'now'}`, detail: {events: summary.events, sha256: summary.sha256}}),
    )
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
