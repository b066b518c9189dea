// `hoop connect`: a local TCP listener whose every accepted socket becomes one relay stream
// (client -> gateway -> agent -> target). One WebSocket to the gateway carries all streams; it
// is dialed on first use and redialed after the gateway restarts.
import {EventEmitter} from 'node:events'
import {createServer, type Server, type Socket} from 'node:net'
import {Mux} from '../relay/mux.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {RELAY_PATHS} from '../shared/routes.js'
import {dialRelay} from './dial.js'

interface ConnectOptions {
  gateway: string
  connection: string
  /** Called for every new link, so expiring tokens are refreshed. */
  bearer: () => Promise<string>
  host?: string
  port: number
  logger: Logger
}

/** What a ConnectClient emits, with its arguments. */
interface ConnectEvents {
  session: [{id: number; remote: string}]
  'session-error': [{id: number; error: HoopError}]
  'session-end': [{id: number; bytesUp: number; bytesDown: number}]
  /** The gateway link closed; the next session redials it. */
  'link-lost': [HoopError | undefined]
}

export class ConnectClient extends EventEmitter<ConnectEvents> {
  private mux?: Mux
  private dialing?: Promise<Mux>
  private readonly sockets = new Set<Socket>()
  /** Sockets whose client has not hung up yet (a socket lingers until the gateway side ends too). */
  private readonly live = new Set<Socket>()
  private nextId = 1
  private closing = false

  private constructor(
    private readonly opts: ConnectOptions,
    private readonly server: Server,
  ) {
    super()
  }

  static async start(opts: ConnectOptions): Promise<ConnectClient> {
    const server = createServer({noDelay: true, allowHalfOpen: true})
    const client = new ConnectClient(opts, server)
    server.on('connection', (s) => client.onSocket(s))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new HoopError(
            'INVALID_INPUT',
            err.code === 'EADDRINUSE' ? `port ${opts.port} is already in use; pick another with --port (or --port 0)` : `cannot listen: ${err.message}`,
          ),
        ),
      )
      server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve())
    })
    // Dial eagerly so a bad token or unreachable gateway fails now, not on the first client.
    await client.link()
    return client
  }

  address(): {host: string; port: number} {
    const a = this.server.address()
    if (!a || typeof a === 'string') throw new Error('not listening')
    return {host: a.address, port: a.port}
  }

  /** Sessions whose client is still connected: what closing now would cut. */
  get activeSessions(): number {
    return this.live.size
  }

  private link(): Promise<Mux> {
    if (this.mux && !this.mux.closed) return Promise.resolve(this.mux)
    this.dialing ??= (async () => {
      try {
        const ws = await dialRelay(this.opts.gateway, RELAY_PATHS.connect, await this.opts.bearer(), {userAgent: 'hoop-connect'})
        const mux = new Mux(ws, {side: 'dialer', logger: this.opts.logger})
        mux.once('close', (err: HoopError) => {
          if (this.mux === mux) this.mux = undefined
          if (!this.closing) this.emit('link-lost', err)
        })
        this.mux = mux
        return mux
      } finally {
        this.dialing = undefined
      }
    })()
    return this.dialing
  }

  private onSocket(socket: Socket): void {
    const id = this.nextId++
    this.sockets.add(socket)
    this.live.add(socket)
    socket.setNoDelay(true)
    socket.pause()
    socket.on('error', () => {})
    socket.once('end', () => this.live.delete(socket))
    socket.once('close', () => {
      this.sockets.delete(socket)
      this.live.delete(socket)
    })
    this.emit('session', {id, remote: `${socket.remoteAddress}:${socket.remotePort}`})
    this.link().then(
      (mux) => {
        if (socket.destroyed) return
        const stream = mux.open({connection: this.opts.connection})
        socket.pipe(stream)
        stream.pipe(socket)
        socket.resume()
        stream.on('error', (err) => {
          if (!this.closing) this.emit('session-error', {id, error: asHoopError(err)})
          socket.destroy()
        })
        socket.once('close', () => {
          if (!stream.destroyed) stream.destroy()
          this.emit('session-end', {id, bytesUp: stream.bytesOut, bytesDown: stream.bytesIn})
        })
      },
      (err) => {
        this.emit('session-error', {id, error: asHoopError(err)})
        socket.destroy()
      },
    )
  }

  async close(): Promise<void> {
    this.closing = true
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of this.sockets) s.destroy()
    this.mux?.goAway('GATEWAY_SHUTDOWN', 'client is closing')
    await closed
  }
}
