// The policy in force, for auditors and admins (auth.auditorGroups, default auditors and admins):
//
//   GET  /v1/policy        the rules with their ids, the policy version, the connections
//   POST /v1/policy/test   {user, groups, connection, sql?} -> the access and statement decisions,
//                          from the same analysers and policy functions as `hoop policy test`
import type {IncomingMessage, ServerResponse} from 'node:http'
import {policyVersion} from '../audit/index.js'
import type {Identity} from '../identity/types.js'
import {HoopError} from '../shared/errors.js'
import {readJsonBody, sendJson} from '../shared/http.js'
import type {ApiContext} from './api.js'
import {requireAuditor} from './audit-api.js'
import {judgePolicy} from './policy-test.js'

/** A statement to judge is bounded like one a client could send through an engine's policy test. */
const MAX_TEST_BODY = 64 * 1024

export async function handlePolicyApi(ctx: ApiContext, identity: Identity, method: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (path !== '/v1/policy' && path !== '/v1/policy/test') return false
  if (!ctx.policy) throw new HoopError('NOT_FOUND', 'this gateway has no policy')
  if (path === '/v1/policy' && method === 'GET') {
    requireAuditor(ctx, identity, 'reading the policy')
    const policy = ctx.policy()
    sendJson(res, 200, {version: policyVersion(policy), file: policy.file, defaults: policy.defaults, rules: policy.rules, connections: ctx.config.connections.map((c) => ({name: c.name, type: c.type}))})
    return true
  }
  if (path === '/v1/policy/test' && method === 'POST') {
    requireAuditor(ctx, identity, 'testing the policy')
    const body = (await readJsonBody(req, MAX_TEST_BODY)) as {user?: unknown; groups?: unknown; connection?: unknown; sql?: unknown}
    if (typeof body.user !== 'string' || !body.user || body.user.length > 256) throw new HoopError('INVALID_INPUT', 'user is required (an email or subject, at most 256 characters)')
    const groups = body.groups ?? []
    if (!Array.isArray(groups) || groups.length > 64 || !groups.every((g) => typeof g === 'string' && g.length <= 128)) throw new HoopError('INVALID_INPUT', 'groups must be a list of at most 64 names')
    if (body.sql !== undefined && typeof body.sql !== 'string') throw new HoopError('INVALID_INPUT', 'sql must be text')
    const conn = ctx.config.connections.find((c) => c.name === body.connection)
    if (!conn) throw new HoopError('UNKNOWN_CONNECTION', `unknown connection ${JSON.stringify(String(body.connection ?? '')).slice(0, 130)}`)
    const subject: Identity = {kind: 'user', subject: body.user, name: body.user, ...(body.user.includes('@') ? {email: body.user} : {}), groups: groups as string[]}
    sendJson(res, 200, await judgePolicy(ctx.policy(), {name: conn.name, type: conn.type}, subject, {sql: body.sql as string | undefined}))
    return true
  }
  throw new HoopError('NOT_FOUND', `no route for ${method} ${path}`)
}
