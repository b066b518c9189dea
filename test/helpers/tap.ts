// A recording TCP tap for adversarial tests: listens on 127.0.0.1:0, forwards every connection to
// `targetPort`, and keeps every byte sent back towards the client. Any driver (mysql2, pg, the
// mysql CLI) can then run through it while the test searches what really reached the client.
import {createServer, connect, type Server, type Socket} from 'node:net'

export interface Tap {
  port: number
  /** Everything the target side sent to clients so far, all connections in order of arrival. */
  received(): Buffer
  /** Forgets what was received (between cases). */
  reset(): void
  close(): Promise<void>
}

export async function startTap(targetPort: number): Promise<Tap> {
  let chunks: Buffer[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(client).add(upstream)
    upstream.on('data', (d: Buffer) => chunks.push(Buffer.from(d)))
    client.pipe(upstream)
    upstream.pipe(client)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as {port: number}).port
  return {
    port,
    received: () => Buffer.concat(chunks),
    reset: () => {
      chunks = []
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
