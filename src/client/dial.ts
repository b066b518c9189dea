// Dials the gateway's relay WebSocket with a bearer token in the header, mapping refusals to
// errors a user can act on (unreachable, token rejected, shutting down).
import WebSocket from 'ws'
import {MAX_FRAME_SIZE} from '../relay/frame.js'
import {HoopError, isErrorCode} from '../shared/errors.js'

function relayUrl(gateway: string, path: string): string {
  const u = new URL(gateway)
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:'
  u.pathname = u.pathname.replace(/\/+$/, '') + path
  return u.toString()
}

/**
 * RFC 6455 client masking defends transparent proxies against script-chosen bytes; on TLS or
 * loopback no intermediary reads the frames, so a zero key lets ws skip the per-byte XOR on both
 * ends (ws skips an all-zero mask) instead of running it over every relayed byte.
 */
function maskFor(url: string): ((mask: Buffer) => void) | undefined {
  const u = new URL(url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const trusted = u.protocol === 'wss:' || host === 'localhost' || host === '::1' || /^127\./.test(host)
  return trusted ? (mask) => mask.fill(0) : undefined
}

export function dialRelay(gateway: string, path: string, bearer: string, opts: {timeoutMs?: number; userAgent?: string} = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const url = relayUrl(gateway, path)
    const ws = new WebSocket(url, {
      headers: {authorization: `Bearer ${bearer}`, 'user-agent': opts.userAgent ?? 'hoop'},
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_SIZE,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
      generateMask: maskFor(url),
    })
    const fail = (err: HoopError) => {
      ws.removeAllListeners()
      ws.on('error', () => {})
      ws.terminate()
      reject(err)
    }
    ws.once('open', () => {
      ws.removeAllListeners('error')
      ws.removeAllListeners('unexpected-response')
      resolve(ws)
    })
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.length < 16 && chunks.push(c))
      res.on('end', () => fail(errorFromResponse(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), gateway)))
      res.on('error', () => fail(new HoopError('GATEWAY_UNREACHABLE', `gateway ${gateway} answered ${res.statusCode}`)))
    })
    ws.once('error', (err: NodeJS.ErrnoException) => {
      fail(new HoopError('GATEWAY_UNREACHABLE', `cannot reach gateway ${gateway}: ${err.code ?? err.message}`))
    })
  })
}

export function errorFromResponse(status: number, body: string, gateway: string): HoopError {
  try {
    const parsed = JSON.parse(body) as {error?: {code?: unknown; message?: unknown}}
    const code = parsed.error?.code
    if (isErrorCode(code) && typeof parsed.error?.message === 'string') return new HoopError(code, parsed.error.message)
  } catch {
    // not our JSON; fall through
  }
  if (status === 401) return new HoopError('TOKEN_REJECTED', 'the gateway rejected the token')
  return new HoopError('GATEWAY_UNREACHABLE', `gateway ${gateway} answered HTTP ${status}`)
}
