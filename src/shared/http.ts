// Small HTTP helpers shared by the gateway API and the CLI's API client.
import type {IncomingMessage, ServerResponse} from 'node:http'
import {HoopError} from './errors.js'

const MAX_JSON_BODY = 1024 * 1024

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(data)})
  res.end(data)
}

const STATUS_BY_CODE: Partial<Record<HoopError['code'], number>> = {
  TOKEN_REJECTED: 401,
  NOT_LOGGED_IN: 401,
  ACCESS_DENIED: 403,
  POLICY_BLOCKED: 403,
  UNKNOWN_CONNECTION: 404,
  NOT_FOUND: 404,
  CONFLICT: 409,
  APPROVAL_REQUIRED: 409,
  INVALID_INPUT: 400,
  CONFIG_INVALID: 400,
  PROTOCOL_ERROR: 400,
  AGENT_OFFLINE: 503,
  TARGET_REFUSED: 502,
  GATEWAY_SHUTDOWN: 503,
  STORE_UNAVAILABLE: 503,
}

export function sendError(res: ServerResponse, err: HoopError): void {
  sendJson(res, STATUS_BY_CODE[err.code] ?? 500, {error: {code: err.code, message: err.message}})
}

export async function readJsonBody(req: IncomingMessage, limit = MAX_JSON_BODY): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw new HoopError('INVALID_INPUT', `request body of ${declared} bytes exceeds limit ${limit}`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new HoopError('INVALID_INPUT', `request body exceeds limit ${limit}`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HoopError('INVALID_INPUT', 'request body is not valid JSON')
  }
}

export function bearerFrom(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization
  if (!h) return undefined
  const m = /^Bearer\s+(\S+)$/i.exec(h)
  return m ? m[1] : undefined
}
