// Test harness for the HTTP engine: a real node:http upstream on 127.0.0.1:0, and a TCP listener on
// 127.0.0.1:0 whose sockets are handed to runHttpSession (the upstream reached by net.connect, no
// gateway or agent in between). Clients (curl, fetch, raw sockets) talk to the listener.
import {createHash, randomBytes} from 'node:crypto'
import {execFile} from 'node:child_process'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import * as net from 'node:net'
import {gzipSync} from 'node:zlib'
import {StatementGate, type AuditMode, type Verdict as StatementVerdict} from '../../../src/engines/gate.js'
import type {HttpLimits} from '../../../src/engines/http/limits.js'
import type {HttpMaskPlan} from '../../../src/engines/http/response.js'
import {type HttpRequestView, type HttpSessionResult, runHttpSession} from '../../../src/engines/http/session.js'
import type {HttpTarget} from '../../../src/engines/http/upstream.js'
import {createLogger, silentLogger} from '../../../src/shared/log.js'
import {connect, serveEngine} from '../../helpers/engine-server.js'

export interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

export interface Upstream {
  port: number
  seen: Seen[]
  /** sha256 of every /big download body the server sent, in order. */
  bigHashes: string[]
  /** /stream waits for this before sending its last chunk. */
  release(): void
  /** Closes the upstream's idle keep-alive connections (as a server's keep-alive timeout would). */
  dropIdle(): void
  close(): Promise<void>
}

export const CUSTOMER = {
  customer: {name: 'Ann Lee', email: 'ann.lee@example.com', address: {city: 'Porto'}},
  items: [
    {sku: 'A-1', card: '4111 1111 1111 1111', qty: 1},
    {sku: 'B-2', card: '5500 0000 0000 0004', qty: 2},
  ],
  note: 'questions to support.team@example.org',
  bigId: 0,
}

function parseMaybe(body: string): unknown {
  if (!body) return null
  try {
    return JSON.parse(body) as unknown
  } catch {
    return body
  }
}

export async function startUpstream(): Promise<Upstream> {
  const seen: Seen[] = []
  const bigHashes: string[] = []
  let releaseStream: () => void = () => {}
  let streamGate = new Promise<void>((r) => (releaseStream = r))
  const block = randomBytes(1024 * 1024)

  const handle = async (req: IncomingMessage, res: ServerResponse, body: string, raw: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const json = (status: number, v: unknown) => {
      const data = JSON.stringify(v)
      res.writeHead(status, {'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data)})
      res.end(data)
    }
    switch (url.pathname) {
      case '/echo':
        return json(200, {method: req.method, url: req.url, headers: req.headers, body})
      case '/upload':
        return json(200, {bytes: raw.length, sha256: createHash('sha256').update(raw).digest('hex')})
      case '/customer': {
        // Written as text: an integer beyond 2^53 must come back with every digit.
        const data = JSON.stringify(CUSTOMER).replace('"bigId":0', '"bigId":12345678901234567890')
        res.writeHead(200, {'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data)})
        return res.end(data)
      }
      case '/set-cookie':
        res.writeHead(200, {'content-type': 'application/json', 'set-cookie': 'session=upstream-cookie-value; HttpOnly', 'x-upstream-secret': 'hdr-secret-42'})
        return res.end('{"ok":true}')
      case '/stream': {
        // Chunked text: the last line is sent only after the test saw the first ones.
        res.writeHead(200, {'content-type': 'text/plain; charset=utf-8'})
        res.write('line 1: contact bob@example.com\n')
        res.write('line 2: nothing here\n')
        await streamGate
        res.end('line 3: done, mail eve@example.net\n')
        streamGate = new Promise<void>((r) => (releaseStream = r))
        return
      }
      case '/big': {
        const size = Number(url.searchParams.get('mb') ?? '1')
        res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': size * block.length})
        const h = createHash('sha256')
        for (let i = 0; i < size; i++) {
          const chunk = Buffer.from(block)
          chunk.writeUInt32BE(i, 0)
          h.update(chunk)
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r))
        }
        bigHashes.push(h.digest('hex'))
        return res.end()
      }
      case '/gzip': {
        const data = gzipSync(JSON.stringify(CUSTOMER))
        res.writeHead(200, {'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': data.length})
        return res.end(data)
      }
      case '/large-json':
        return json(200, {rows: Array.from({length: 2000}, (_, i) => ({id: i, email: `u${i}@example.com`}))})
      case '/no-type':
        res.writeHead(200, {'content-length': 24})
        return res.end('reach me at a@example.io')
      default:
        if (url.pathname.startsWith('/items') || url.pathname.startsWith('/payments') || url.pathname.startsWith('/admin')) {
          return json(req.method === 'POST' ? 201 : 200, {method: req.method, path: url.pathname, body: parseMaybe(body)})
        }
        return json(404, {error: 'not found'})
    }
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      const body = req.url?.startsWith('/upload') ? '' : raw.toString('utf8')
      seen.push({method: req.method ?? '', url: req.url ?? '', headers: req.headers, body})
      handle(req, res, body, raw).catch((e: Error) => res.destroy(e))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    bigHashes,
    release: () => releaseStream(),
    dropIdle: () => server.closeIdleConnections(),
    close: async () => {
      releaseStream()
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

export interface HookEvent {
  hook: 'beforeForward' | 'afterStatement' | 'refused'
  /** The request as judged and audited (method and redacted target). */
  text: string
  effect: string
  ruleId: string
  bytes?: number
  error?: string
  masked?: Record<string, number>
}

export interface Harness {
  port: number
  url: string
  judged: HttpRequestView[]
  events: HookEvent[]
  records: {direction: 'client' | 'server'; text: string}[]
  results: HttpSessionResult[]
  settle(): Promise<void>
  /** Waits (without a clock) until `pred` holds; fails after 10 s. */
  waitFor(pred: () => boolean, what?: string): Promise<void>
  close(): Promise<void>
}

export interface HarnessOptions {
  upstreamPort: number
  judge?: (view: HttpRequestView) => StatementVerdict | Promise<StatementVerdict>
  target?: Partial<HttpTarget>
  limits?: Partial<HttpLimits>
  redactHeaders?: string[]
  beforeForward?: () => Promise<void>
  /** The gate's audit mode (default hold). */
  audit?: AuditMode
}

export const noMask: HttpMaskPlan = {columns: [], entities: [], ruleIds: []}
export const allow = (mask: HttpMaskPlan = noMask, ruleId = 'r-allow'): StatementVerdict => ({effect: 'allow', ruleId, mask})

export async function startHarness(o: HarnessOptions): Promise<Harness> {
  const judged: HttpRequestView[] = []
  const events: HookEvent[] = []
  const records: Harness['records'] = []
  const judge = o.judge ?? (() => allow())
  const srv = await serveEngine<HttpSessionResult>((client) =>
    runHttpSession({
      client,
      openUpstream: () => connect(o.upstreamPort),
      target: {host: '127.0.0.1', port: o.upstreamPort, token: 'upstream-token-xyz', tls: {mode: 'disable'}, ...o.target},
      logger: process.env.HTTP_DEBUG ? createLogger({level: "debug", json: true}) : silentLogger,
      limits: o.limits,
      redactHeaders: o.redactHeaders,
      gate: new StatementGate(
        {
        judge: async (op) => {
          const view = op as HttpRequestView
          judged.push(view)
          return judge(view)
        },
        beforeForward: async (i) => {
          events.push({hook: 'beforeForward', text: i.text, effect: i.verdict.effect, ruleId: i.verdict.ruleId})
          await o.beforeForward?.()
        },
        afterStatement: (i) => void events.push({hook: 'afterStatement', text: i.text, effect: i.verdict.effect, ruleId: i.verdict.ruleId, bytes: i.bytes, error: i.error, masked: i.masked}),
        refused: (i) => void events.push({hook: 'refused', text: i.text, effect: i.verdict.effect, ruleId: i.verdict.ruleId}),
        record: (direction, text) => void records.push({direction, text}),
        },
        silentLogger,
        o.audit,
      ),
    }),
  )
  const {port, results, settle} = srv
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    judged,
    events,
    records,
    results,
    settle,
    waitFor: async (pred, what = 'condition') => {
      const limit = Date.now() + 10_000
      while (!pred()) {
        if (Date.now() > limit) throw new Error(`timed out waiting for ${what}`)
        await new Promise((r) => setTimeout(r, 5))
      }
    },
    close: srv.close,
  }
}

export {connect}

export interface CurlResult {
  code: number
  status: number
  headers: string
  body: string
}

/** Runs the real curl: -i output split into status, headers and body. */
export function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-s', '-S', '-i', '--max-time', '20', ...args], {maxBuffer: 16 * 1024 * 1024}, (err, stdout) => {
      const code = err ? ((err as {code?: number}).code ?? 1) : 0
      // Skip interim responses (100 Continue) in -i output.
      let text = stdout
      while (/^HTTP\/1\.1 1\d\d/.test(text)) text = text.slice(text.indexOf('\r\n\r\n') + 4)
      const split = text.indexOf('\r\n\r\n')
      const headers = split < 0 ? text : text.slice(0, split)
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(headers)
      resolve({code, status: m ? Number(m[1]) : 0, headers, body: split < 0 ? '' : text.slice(split + 4)})
    })
  })
}

/** Writes raw bytes on one connection and collects everything until the server closes or `until` matches. */
export function rawExchange(port: number, data: Buffer | string, until?: (text: string) => boolean): Promise<{text: string; closed: boolean}> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let text = ''
    const done = (closed: boolean) => {
      s.destroy()
      resolve({text, closed})
    }
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      if (until?.(text)) done(false)
    })
    s.on('end', () => done(true))
    s.on('error', reject)
    s.write(data)
  })
}
