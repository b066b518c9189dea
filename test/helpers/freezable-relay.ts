// A TCP relay to the machine's PostgreSQL whose connections can be frozen, as a network cut or a
// stopped peer would leave them: no byte passes and nothing closes.
import {connect, createServer, type Socket} from 'node:net'

export interface FreezableRelay {
  port: number
  /** How many connections it has relayed so far. */
  connections(): number
  freeze(): void
  /** Destroys every relayed connection. */
  cut(): void
  close(): void
}

export async function freezableRelay(target = 5432): Promise<FreezableRelay> {
  const pairs: Array<[Socket, Socket]> = []
  const server = createServer((down) => {
    const up = connect(target, '127.0.0.1')
    for (const s of [down, up]) s.on('error', () => undefined)
    down.pipe(up).pipe(down)
    pairs.push([down, up])
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const cut = () => {
    for (const pair of pairs) for (const s of pair) s.destroy()
  }
  return {
    port: (server.address() as {port: number}).port,
    connections: () => pairs.length,
    freeze() {
      for (const [down, up] of pairs) {
        down.unpipe(up)
        up.unpipe(down)
        down.pause()
        up.pause()
      }
    },
    cut,
    close() {
      cut()
      server.close()
    },
  }
}
