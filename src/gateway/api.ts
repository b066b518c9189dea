// The gateway's HTTP API: public settings, the caller's connections, and admin calls for agents
// and service accounts; audit and approvals routes are handed to audit-api.ts and approvals-api.ts
// (/healthz, /readyz and /metrics are ops.ts's). Every route but the well-known document and the
// audit public key needs a verified identity; admin routes need membership of an admin group.
// `GET /v1/replicas` also takes an agent's token, so agents can discover the replicas.
import type Database from 'better-sqlite3'
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {IdentityRuntime} from '../identity/runtime.js'
import type {Identity} from '../identity/types.js'
import type {ApprovalService} from '../approvals/index.js'
import type {Policy} from '../policy/index.js'
import {RELAY_VERSION} from '../relay/frame.js'
import type {GatewayConfig} from '../shared/config.js'
import {HoopError} from '../shared/errors.js'
import {authenticateServiceKey} from '../identity/service-keys.js'
import {bearerFrom, readJsonBody, sendJson} from '../shared/http.js'
import type {Logger} from '../shared/log.js'
import {events, type AuditWriter} from '../audit/index.js'
import type {Store} from '../store/types.js'
import type {AccessGuard} from './access.js'
import * as admin from './admin.js'
import {handleApprovalsApi} from './approvals-api.js'
import {handleAuditApi} from './audit-api.js'
import {handleEvidenceApi} from './evidence-api.js'
import {handlePolicyApi} from './policy-api.js'
import type {AgentRegistry} from './agents.js'

export interface ApiContext {
  config: GatewayConfig
  store: Store
  /** The data dir's SQLite file: the audit log, approvals and recordings. */
  db: Database.Database
  audit: AuditWriter
  /** Just-in-time approvals (src/approvals); the /v1/approvals routes answer 404 without it. */
  approvals?: ApprovalService
  /** The policy in force, for time-boxed access requests. */
  policy?: () => Policy
  agents: AgentRegistry
  access: AccessGuard
  identity: IdentityRuntime
  logger: Logger
  version: string
  url: string
  dataDir: string
  signingKeyFile?: string
  /** The live replicas' URLs (`GET /v1/replicas`): the store's `replicas` rows, or this gateway alone. */
  replicas: () => Promise<string[]>
}

export interface ConnectionView {
  name: string
  type: string
  agent: string
  online: boolean
  description?: string
  database?: string
  username?: string
}

const ADMIN_GROUPS_DEFAULT = ['admins']

export async function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://gateway')
  const path = url.pathname
  const method = req.method ?? 'GET'

  if (path === '/.well-known/hoop-configuration' && method === 'GET') {
    sendJson(res, 200, {gateway: ctx.url, version: ctx.version, relayVersion: RELAY_VERSION, auth: ctx.identity.publicSettings()})
    return
  }

  if (path === '/v1/audit/key' && method === 'GET') {
    // Public: anyone holding evidence must be able to fetch the key that signs it.
    sendJson(res, 200, ctx.audit.keyDocument())
    return
  }

  if (path === '/v1/replicas' && method === 'GET' && bearerFrom(req)?.startsWith('hoop_ag_')) {
    // Agents find the other replicas with their own token (docs/ha.md); it opens no other route.
    await routeApi(ctx, await authenticateServiceKey(ctx.store, bearerFrom(req)!, 'ag'), req, res)
    return
  }
  await routeApi(ctx, await authenticate(ctx, req), req, res)
}

/**
 * The routes that need an identity, for a caller already verified: a bearer token (handleApi) or
 * the web console's session (src/console), so both are authorised by the same code.
 */
export async function routeApi(ctx: ApiContext, identity: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://gateway')
  const path = url.pathname
  const method = req.method ?? 'GET'
  if (path === '/v1/whoami' && method === 'GET') {
    sendJson(res, 200, identity)
    return
  }
  if (path === '/v1/replicas' && method === 'GET') {
    sendJson(res, 200, {replicas: (await ctx.replicas()).map((u) => ({url: u}))})
    return
  }
  if (await handleAuditApi(ctx, identity, method, url, req, res)) return
  if (await handleEvidenceApi(ctx, identity, method, path, res)) return
  if (await handlePolicyApi(ctx, identity, method, path, req, res)) return
  if (ctx.approvals && (await handleApprovalsApi({...ctx, approvals: ctx.approvals}, identity, method, path, req, res))) return
  if (path === '/v1/connections' && method === 'GET') {
    sendJson(res, 200, {connections: visibleConnections(ctx, identity)})
    return
  }
  const conn = /^\/v1\/connections\/([^/]+)$/.exec(path)
  if (conn && method === 'GET') {
    const name = decodeURIComponent(conn[1])
    const found = visibleConnections(ctx, identity).find((c) => c.name === name)
    if (!found) {
      const exists = ctx.config.connections.some((c) => c.name === name)
      throw exists
        ? new HoopError('ACCESS_DENIED', `access to "${name}" denied for ${identity.name}`)
        : new HoopError('UNKNOWN_CONNECTION', `unknown connection "${name}"`)
    }
    sendJson(res, 200, found)
    return
  }

  if (path.startsWith('/v1/admin/')) {
    requireAdmin(ctx, identity)
    await handleAdmin(ctx, identity, method, path.slice('/v1/admin'.length), req, res)
    return
  }
  throw new HoopError('NOT_FOUND', `no route for ${method} ${path}`)
}

async function authenticate(ctx: ApiContext, req: IncomingMessage): Promise<Identity> {
  const bearer = bearerFrom(req)
  if (!bearer) throw new HoopError('TOKEN_REJECTED', 'missing Authorization: Bearer token')
  return ctx.identity.authenticator.authenticate(bearer)
}

function adminGroups(config: GatewayConfig): string[] {
  const a = (config.auth as {adminGroups?: unknown} | undefined)?.adminGroups
  return Array.isArray(a) && a.every((g) => typeof g === 'string') ? (a as string[]) : ADMIN_GROUPS_DEFAULT
}

function requireAdmin(ctx: ApiContext, identity: Identity): void {
  const groups = adminGroups(ctx.config)
  if (!identity.groups.some((g) => groups.includes(g))) {
    throw new HoopError('ACCESS_DENIED', `admin calls need membership of ${groups.join(' or ')}; ${identity.name} has none`)
  }
}

function visibleConnections(ctx: ApiContext, identity: Identity): ConnectionView[] {
  return ctx.config.connections
    .filter((c) => ctx.access.check(identity, c).allowed)
    .map((c) => ({
      name: c.name,
      type: c.type,
      agent: c.agent,
      online: ctx.agents.isOnline(c.agent),
      description: c.description,
      database: c.database,
      username: c.username,
    }))
}

async function handleAdmin(ctx: ApiContext, who: Identity, method: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const log = ctx.logger.child({admin: who.subject})
  const audited = (action: string, targetType: string, target: string) =>
    ctx.audit.append(events.adminChange({identity: who, action, targetType, target}))
  if (path === '/agents' && method === 'GET') return sendJson(res, 200, {agents: withOnline(ctx, await ctx.store.listAgents())})
  if (path === '/agents' && method === 'POST') {
    const body = (await readJsonBody(req)) as {name?: unknown}
    const created = await admin.createAgent(ctx.store, body.name)
    log.info('agent created', {name: created.name})
    await audited('create', 'agent', created.name)
    return sendJson(res, 201, created)
  }
  const agent = /^\/agents\/([^/]+)$/.exec(path)
  if (agent && method === 'DELETE') {
    const name = decodeURIComponent(agent[1])
    const rec = await admin.revokeAgent(ctx.store, name)
    ctx.agents.disconnect(name, 'TOKEN_REJECTED', 'agent token was revoked')
    log.info('agent revoked', {name})
    await audited('revoke', 'agent', name)
    return sendJson(res, 200, rec)
  }
  if (path === '/service-accounts' && method === 'GET') return sendJson(res, 200, {serviceAccounts: await ctx.store.listServiceAccounts()})
  if (path === '/service-accounts' && method === 'POST') {
    const body = (await readJsonBody(req)) as {name?: unknown; groups?: unknown}
    const created = await admin.createServiceAccount(ctx.store, body.name, body.groups)
    log.info('service account created', {name: created.name, groups: created.groups})
    await audited('create', 'service-account', created.name)
    return sendJson(res, 201, created)
  }
  const sa = /^\/service-accounts\/([^/]+)$/.exec(path)
  if (sa && method === 'DELETE') {
    const name = decodeURIComponent(sa[1])
    const rec = await admin.revokeServiceAccount(ctx.store, name)
    log.info('service account revoked', {name})
    await audited('revoke', 'service-account', name)
    return sendJson(res, 200, rec)
  }
  throw new HoopError('NOT_FOUND', `no admin route for ${method} ${path}`)
}

function withOnline<T extends {name: string; revokedAt?: string}>(ctx: ApiContext, list: T[]): Array<T & {online: boolean}> {
  return list.map((a) => ({...a, online: !a.revokedAt && ctx.agents.isOnline(a.name)}))
}
