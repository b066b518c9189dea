// `hoop connect`: a local TCP listener whose every accepted socket becomes one relay stream
// (client -> gateway -> agent -> target). One WebSocket to the gateway carries all streams; it
// is dialed on first use and redialed after the gateway restarts. Given several replicas of one
// gateway, a new link goes to the first that accepts (gateways.ts says in which order); sessions
// open on a replica that dies end (their sockets are closed, the error names the replica) and the
// next session links to a live one. When a stream cannot be opened
// (gateway unreachable, token rejected, stream refused) and the local client speaks PostgreSQL,
// it is answered with a FATAL ErrorResponse naming the reason, as a server refusing a login would.
import {EventEmitter} from 'node:events'
import {createServer, type Server, type Socket} from 'node:net'
import {encodeHoopFatal, StartupRefusal} from '../protocol/pg/refusal.js'
import {Mux} from '../relay/mux.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {RELAY_PATHS} from '../shared/routes.js'
import {ReplicaDialer} from './gateways.js'

interface ConnectOptions {
  /** The replicas of one gateway (one URL is a list of one). */
  gateways: string[]
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
  /** `gateway`: the replica the session went through, when it got that far. */
  'session-error': [{id: number; error: HoopError; gateway?: string}]
  'session-end': [{id: number; bytesUp: number; bytesDown: number}]
  /** The link to replica `gateway` closed; the next session dials a replica again. */
  'link-lost': [HoopError | undefined, string]
}

/** What a local client sent before the gateway answered, kept to answer it ourselves if the stream fails; bounded. */
const MAX_REPLAYED_BYTES = 16 * 1024
/** A local client whose failed session is being answered is closed after this, answered or not. */
const LOCAL_ANSWER_DEADLINE_MS = 5_000
/** ...and after this if it has sent nothing at all (a MySQL client waits for the server to speak first). */
const LOCAL_FIRST_BYTE_MS = 1_000

export class ConnectClient extends EventEmitter<ConnectEvents> {
  private link?: {mux: Mux; gateway: string}
  private dialing?: Promise<{mux: Mux; gateway: string}>
  private readonly dialer: ReplicaDialer
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
    this.dialer = new ReplicaDialer(opts.gateways)
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
    await client.linked()
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

  private linked(): Promise<{mux: Mux; gateway: string}> {
    if (this.link && !this.link.mux.closed) return Promise.resolve(this.link)
    this.dialing ??= (async () => {
      try {
        const {ws, gateway} = await this.dialer.dial(RELAY_PATHS.connect, await this.opts.bearer(), 'hoop-connect')
        // Named in the error every open session gets when this replica goes away.
        const mux = new Mux(ws, {side: 'dialer', logger: this.opts.logger, lostMessage: `lost the link to gateway ${gateway}`})
        const link = {mux, gateway}
        mux.once('close', (err: HoopError) => {
          if (this.link === link) this.link = undefined
          this.dialer.lost(gateway)
          if (!this.closing) this.emit('link-lost', err, gateway)
        })
        this.link = link
        return link
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
    // A client that hung up is no longer live, whether it closed (FIN: 'end') or reset (RST:
    // 'error'); its 'close' only comes in a later turn of the event loop.
    const gone = () => this.live.delete(socket)
    socket.on('error', gone)
    socket.once('end', gone)
    socket.once('close', () => {
      this.sockets.delete(socket)
      this.live.delete(socket)
    })
    this.emit('session', {id, remote: `${socket.remoteAddress}:${socket.remotePort}`})
    // The client's first bytes, until the gateway answers: a PostgreSQL startup tells us how to fail.
    let sent: Buffer[] | undefined = []
    let sentBytes = 0
    const keep = (chunk: Buffer) => {
      if (sent === undefined) return
      sentBytes += chunk.length
      if (sentBytes <= MAX_REPLAYED_BYTES) sent.push(chunk)
      else sent = undefined
    }
    this.linked().then(
      ({mux, gateway}) => {
        if (socket.destroyed) return
        const stream = mux.open({connection: this.opts.connection})
        socket.on('data', keep)
        stream.once('data', () => {
          socket.off('data', keep)
          sent = undefined
        })
        socket.pipe(stream)
        stream.pipe(socket)
        socket.resume()
        stream.on('error', (err) => {
          const error = asHoopError(err)
          if (!this.closing) this.emit('session-error', {id, error, gateway})
          socket.off('data', keep)
          // Nothing came back from the gateway yet: the local client may be told why, in its protocol.
          if (sent && stream.bytesIn === 0 && !this.closing) this.answerLocally(socket, sent, error)
          else socket.destroy()
        })
        socket.once('close', () => {
          if (!stream.destroyed) stream.destroy()
          this.emit('session-end', {id, bytesUp: stream.bytesOut, bytesDown: stream.bytesIn})
        })
      },
      (err) => {
        const error = asHoopError(err)
        this.emit('session-error', {id, error})
        this.answerLocally(socket, [], error)
      },
    )
  }

  /**
   * A stream that could not be opened, to a local client that got nothing from the gateway: a
   * PostgreSQL client gets a FATAL ErrorResponse with the reason in answer to its startup (`sent`
   * holds what it sent so far); anything else is closed as before.
   */
  private answerLocally(socket: Socket, sent: Buffer[], error: HoopError): void {
    if (socket.destroyed) return
    const refusal = new StartupRefusal(encodeHoopFatal(error.code, error.message))
    const onData = (chunk: Buffer) => {
      const step = refusal.push(chunk)
      if (step.state === 'foreign') {
        socket.destroy()
        return
      }
      for (const w of step.write) socket.write(w)
      if (step.state === 'answered') {
        socket.off('data', onData)
        socket.end()
      }
    }
    socket.unpipe()
    for (const c of sent) onData(c)
    if (socket.destroyed || socket.writableEnded) return
    socket.on('data', onData)
    socket.resume()
    setTimeout(() => socket.destroy(), sent.length ? LOCAL_ANSWER_DEADLINE_MS : LOCAL_FIRST_BYTE_MS).unref()
  }

  async close(): Promise<void> {
    this.closing = true
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of this.sockets) s.destroy()
    this.link?.mux.goAway('GATEWAY_SHUTDOWN', 'client is closing')
    await closed
  }
}
