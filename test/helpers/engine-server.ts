// A loopback TCP server whose every accepted socket is handed to a protocol engine session, for
// the engines' integration tests: results collected, running sessions awaited, clean shutdown.
import * as net from 'node:net'
import type {Duplex} from 'node:stream'

export interface EngineServer<R> {
  port: number
  results: R[]
  /** Waits until every session that started has finished. */
  settle(): Promise<void>
  close(): Promise<void>
}

export async function serveEngine<R>(run: (client: net.Socket) => Promise<R>): Promise<EngineServer<R>> {
  const results: R[] = []
  const running = new Set<Promise<unknown>>()
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    const p = run(client).then((r) => results.push(r))
    running.add(p)
    p.finally(() => running.delete(p))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const settle = async () => {
    while (running.size) await Promise.all([...running])
  }
  return {
    port,
    results,
    settle,
    close: async () => {
      // server.close() waits for every open connection to end: destroy them first.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
      await settle()
    },
  }
}

/** A TCP connection to 127.0.0.1:port, resolved once connected. */
export function connect(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}
