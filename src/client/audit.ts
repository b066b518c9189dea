// Audit evidence through the gateway, for auditors who are not on the gateway host: the package
// is built from the live store, streamed, and written atomically to --out.
import {createHash} from 'node:crypto'
import {createWriteStream, renameSync, rmSync} from 'node:fs'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type {ExportSummary} from '../audit/export.js'
import type {SessionDetail, SessionListItem} from '../audit/sessions.js'
import type {VerifyResult} from '../audit/verify.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import {openGatewayApi} from './api.js'

interface RemoteExportOptions {
  gateway?: string
  token?: string
  out: string
  from?: string
  to?: string
  connection?: string
  user?: string
}

/**
 * Downloads the package from the first replica of the list that answers (docs/ha.md). `replica`
 * says which one built it: until the audit log moves to the store, each replica exports its own.
 */
export async function exportFromGateway(o: RemoteExportOptions): Promise<ExportSummary & {replica: string}> {
  if (!/\.(tar\.gz|tgz)$/.test(o.out)) throw new HoopError('INVALID_INPUT', `--out must end in .tar.gz or .tgz (got ${o.out})`)
  const q = new URLSearchParams()
  for (const k of ['from', 'to', 'connection', 'user'] as const) if (o[k]) q.set(k, o[k]!)
  const {gateway: replica, res} = await (await openGatewayApi(o)).download(`/v1/audit/export?${q}`)
  const summary = JSON.parse(decodeURIComponent(res.headers.get('x-hoop-export-summary') ?? '%7B%7D')) as ExportSummary
  const tmp = `${o.out}.part`
  const hash = createHash('sha256')
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)
  body.on('data', (d: Buffer) => hash.update(d))
  try {
    await pipeline(body, createWriteStream(tmp, {mode: 0o600}))
  } catch (err) {
    rmSync(tmp, {force: true})
    throw new HoopError('GATEWAY_UNREACHABLE', `export download failed: ${errorMessage(err)}`)
  }
  const sha256 = hash.digest('hex')
  if (summary.sha256 && summary.sha256 !== sha256) {
    rmSync(tmp, {force: true})
    throw new HoopError('AUDIT_VERIFY_FAILED', `downloaded package sha256 ${sha256} differs from the gateway's ${summary.sha256}`)
  }
  renameSync(tmp, o.out)
  return {...summary, out: o.out, sha256, replica}
}

export async function verifyLiveOnGateway(o: {gateway?: string; token?: string}): Promise<VerifyResult> {
  return (await openGatewayApi(o)).get<VerifyResult>('/v1/audit/verify')
}

export async function auditKeyFromGateway(gatewayFlag?: string): Promise<{algorithm: 'Ed25519'; publicKey: string; fingerprint: string; source: string}> {
  const api = await openGatewayApi({gateway: gatewayFlag, anonymous: true})
  const k = await api.get<{algorithm: 'Ed25519'; publicKey: string; fingerprint: string}>('/v1/audit/key')
  return {...k, source: `${api.answered}/v1/audit/key`}
}

export async function sessionsFromGateway(o: {gateway?: string; token?: string; limit?: number; connection?: string; user?: string}): Promise<SessionListItem[]> {
  const q = new URLSearchParams()
  if (o.limit) q.set('limit', String(o.limit))
  if (o.connection) q.set('connection', o.connection)
  if (o.user) q.set('user', o.user)
  const api = await openGatewayApi(o)
  return (await api.get<{sessions: SessionListItem[]}>(`/v1/sessions?${q}`)).sessions
}

export async function sessionFromGateway(o: {gateway?: string; token?: string; id: string}): Promise<SessionDetail & {replay: string}> {
  const api = await openGatewayApi(o)
  return api.get<SessionDetail & {replay: string}>(`/v1/sessions/${encodeURIComponent(o.id)}`)
}
