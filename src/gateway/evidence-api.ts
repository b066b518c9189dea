// What the console's evidence page shows auditors besides the export itself (audit-api.ts):
//
//   GET /v1/audit/head      the latest signed tree head, the last anchor published outside the
//                           store (the witness file, with its timestamp authority if any), the key
//   GET /v1/audit/exports   who exported which evidence and when (the audit.access export events)
import {join} from 'node:path'
import {lastWitnessAnchor, WITNESS_FILE} from '../audit/index.js'
import type {Identity} from '../identity/types.js'
import {sendJson} from '../shared/http.js'
import type {ApiContext} from './api.js'
import {requireAuditor} from './audit-api.js'
import {parseAuditSettings} from './audit-config.js'

const EXPORTS_SHOWN = 100
/** audit.access events scanned for exports: listings and replays are access events too. */
const ACCESS_SCANNED = 2000

export async function handleEvidenceApi(ctx: ApiContext, identity: Identity, method: string, path: string, res: Parameters<typeof sendJson>[0]): Promise<boolean> {
  if (method !== 'GET' || (path !== '/v1/audit/head' && path !== '/v1/audit/exports')) return false
  requireAuditor(ctx, identity)
  if (path === '/v1/audit/head') {
    const sth = await ctx.audit.latestHead()
    const tail = lastWitnessAnchor(witnessFile(ctx))
    const anchor =
      tail.state === 'ok'
        ? {state: 'ok', tree_size: tail.anchor.tree_head.tree_size, timestamp: tail.anchor.tree_head.timestamp, tsa: tail.anchor.timestamp?.tsa, torn: tail.torn}
        : tail.state === 'bad'
          ? {state: 'bad', reason: tail.reason}
          : {state: tail.state}
    sendJson(res, 200, {head: sth, anchor, fingerprint: ctx.audit.fingerprint()})
    return true
  }
  // From the log wherever it is: the data dir's file, or the one log on the PostgreSQL store.
  const rows = await ctx.audit.recentAccess(ACCESS_SCANNED)
  const exports = []
  for (const r of rows) {
    const e = JSON.parse(r.body) as {actor?: {name?: string}; connection?: string; data?: Record<string, unknown>}
    const d = e.data ?? {}
    if (d.action !== 'export') continue
    exports.push({seq: r.seq, time: r.time, who: e.actor?.name ?? 'unknown', via: d.via, from: d.from, to: d.to, connection: e.connection, user: d.user, events: d.events, sha256: d.sha256})
    if (exports.length >= EXPORTS_SHOWN) break
  }
  sendJson(res, 200, {exports})
  return true
}

function witnessFile(ctx: ApiContext): string {
  return parseAuditSettings(ctx.config).witness ?? join(ctx.dataDir, WITNESS_FILE)
}
