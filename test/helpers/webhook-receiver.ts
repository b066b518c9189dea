// A webhook receiver on loopback for notification tests: a real HTTP server on 127.0.0.1, port 0,
// that keeps every request (headers and raw body) and answers as the test says.
import {createServer, type IncomingHttpHeaders, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

export interface Received {
  path: string
  headers: IncomingHttpHeaders
  /** The raw body, exactly as it arrived (what the signature covers). */
  body: string
}

/** Answers one request: a status (and headers), or a function that may hold the response. */
export type Answer = number | {status: number; headers?: Record<string, string>} | ((res: ServerResponse) => void)

export interface Receiver {
  url: string
  received: Received[]
  /** Resolves once `n` requests have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>
  close(): Promise<void>
}

/** `answers[i]` answers the i-th request; after the list runs out, 200. */
export async function startReceiver(answers: Answer[] = []): Promise<Receiver> {
  const received: Received[] = []
  let wake: (() => void)[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const answer = answers[received.length] ?? 200
      received.push({path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8')})
      for (const w of wake.splice(0)) w()
      if (typeof answer === 'function') return answer(res)
      const {status, headers} = typeof answer === 'number' ? {status: answer, headers: {}} : answer
      res.writeHead(status, headers).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/hooks/hoop`,
    received,
    async waitFor(n, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`receiver got ${received.length} of ${n} requests`)
        await new Promise<void>((resolve) => {
          wake.push(resolve)
          setTimeout(resolve, 100).unref()
        })
      }
      return received.slice(0, n)
    },
    async close() {
      wake = []
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
