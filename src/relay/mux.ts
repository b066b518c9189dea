// The stream multiplexer: many Node Duplex streams over one WebSocket, with per-stream credit-based
// flow control (a slow reader slows its writer), link-level backpressure on ws.bufferedAmount, a
// ping/pong heartbeat, and an error boundary so a rogue peer can only hurt its own link.
// Wire format: ./frame.ts; rules and numbers: docs/relay-protocol.md.
//
// Callers create the WebSocket with `perMessageDeflate: false, maxPayload: MAX_FRAME_SIZE` (frame.ts).
import {EventEmitter} from 'node:events'
import {Duplex} from 'node:stream'
import type WebSocket from 'ws'
import {errorMessage, HoopError, isErrorCode, type ErrorCode} from '../shared/errors.js'
import {silentLogger, type Logger} from '../shared/log.js'
import {
  FrameType,
  HEADER_SIZE,
  INITIAL_WINDOW,
  MAX_DATA_PAYLOAD,
  MAX_STREAM_ID,
  MAX_WINDOW,
  decodeFrame,
  encodeFrame,
  writeHeader,
  type Frame,
} from './frame.js'

export const DEFAULT_WINDOW = INITIAL_WINDOW
const DEFAULT_MAX_STREAMS = 4096
/** Peer-opened streams waiting for accept()/reject() at once; beyond => RESET that OPEN. */
const DEFAULT_MAX_PENDING = 256
const DEFAULT_HEARTBEAT_MS = 15_000
/** Above this many bytes queued on the WebSocket, stream writes wait for the socket to drain. */
export const LINK_HIGH_WATER = 4 * 1024 * 1024
/**
 * Most bytes a link may hold queued on its WebSocket, control frames included. DATA stops at
 * LINK_HIGH_WATER, so only a peer that stops reading while it keeps sending (its OPENs and DATA
 * make us answer with RESET, OPEN_OK and WINDOW) can get here: the link is then closed, never grown.
 */
export const LINK_MAX_QUEUED = 16 * 1024 * 1024
/** Readable and writable highWaterMark of every RelayStream. */
export const STREAM_HIGH_WATER = 64 * 1024

// ws readyState values (avoid a runtime import of ws: the caller owns the socket).
const WS_CONNECTING = 0
const WS_OPEN = 1
const WS_CLOSED = 3
const SEND_OPTS = {binary: true, compress: false} as const
const MAX_REASON_CHARS = 1000
/** Warnings about one link's bad frames logged in full; the rest are counted and summed up at close. */
const WARN_BUDGET = 10

export interface MuxOptions {
  /** dialer (the side that opened the WebSocket) uses odd stream ids, acceptor even. */
  side: 'dialer' | 'acceptor'
  /** A peer opened a stream; call stream.accept() or stream.reject(code, msg). No handler => reject. */
  onOpen?: (stream: RelayStream) => void
  /** Receive window this side grants per stream, default 256 KiB. */
  initialWindow?: number
  /** Concurrent streams the peer may open, default 4096; beyond => RESET that OPEN. */
  maxStreams?: number
  /** Peer-opened streams not yet accepted or rejected, default 256; beyond => RESET that OPEN. */
  maxPending?: number
  /** Bytes the link may hold queued on the socket, default LINK_MAX_QUEUED; beyond => the link is closed. */
  maxQueuedBytes?: number
  /** Ping interval, default 15000; the link is terminated when a ping got no pong by the next one. 0 disables. */
  heartbeatMs?: number
  /** Message of the GATEWAY_UNREACHABLE error when the link drops without GOAWAY (default "relay link lost"). */
  lostMessage?: string
  logger?: Logger
}

function clip(text: string): string {
  return text.length > MAX_REASON_CHARS ? text.slice(0, MAX_REASON_CHARS) + '…' : text
}

function peerError(code: string, message: string): HoopError {
  return isErrorCode(code) ? new HoopError(code, message) : new HoopError('PROTOCOL_ERROR', message, {peerCode: code})
}

/** The part of the net.Socket under a ws WebSocket that coalescing needs (ws keeps it in `_socket`). */
interface CorkableSocket {
  cork(): void
  uncork(): void
  readonly destroyed: boolean
}

function socketOf(ws: WebSocket): CorkableSocket | null {
  const s = (ws as unknown as {_socket?: Partial<CorkableSocket> | null})._socket
  return s && typeof s.cork === 'function' && typeof s.uncork === 'function' ? (s as CorkableSocket) : null
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

/** What a RelayStream needs from its Mux. */
interface StreamLink {
  readonly initialWindow: number
  readonly grantThreshold: number
  readonly congested: boolean
  readonly log: Logger
  sendControl(frame: Buffer): void
  sendData(frame: Buffer): void
  park(stream: RelayStream): void
  /** A peer-opened stream left the pending state (accepted). */
  answered(stream: RelayStream): void
  forget(stream: RelayStream): void
}

type StreamState = 'opening' | 'pending' | 'open'

/**
 * One relay stream. Writing sends DATA, end() sends END, a received END pushes null. Made by
 * Mux.open() (opener side) or handed to MuxOptions.onOpen (acceptor side); never constructed directly.
 * Emits 'ready' when the peer answered OPEN_OK.
 */
export class RelayStream extends Duplex {
  bytesIn = 0
  bytesOut = 0
  private state: StreamState
  /** Bytes we may still send (peer's grant). */
  private sendCredit_ = INITIAL_WINDOW
  /** Bytes the peer may still send us. */
  private recvCredit_ = INITIAL_WINDOW
  /** Bytes pushed to the reader since the last WINDOW we sent. */
  private unacked = 0
  /** Credit the peer holds beyond our initialWindow (when initialWindow < INITIAL_WINDOW); repaid before granting. */
  private debt: number
  private localEnded = false
  private remoteEnded = false
  /** The stream no longer exists on the wire (both ENDs exchanged, RESET sent or received, link gone). */
  private wireClosed = false
  private wChunks: Buffer[] | null = null
  private wIndex = 0
  private wOffset = 0
  private wRemaining = 0
  private wCb: ((err?: Error | null) => void) | null = null
  private finalCb: ((err?: Error | null) => void) | null = null

  /** @internal */
  constructor(
    private readonly link: StreamLink,
    readonly id: number,
    readonly meta: Record<string, unknown>,
    /** true when this side opened the stream */
    readonly opener: boolean,
  ) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: STREAM_HIGH_WATER,
      writableHighWaterMark: STREAM_HIGH_WATER,
    })
    this.state = opener ? 'opening' : 'pending'
    this.debt = Math.max(0, INITIAL_WINDOW - link.initialWindow)
    // A peer's RESET must never become an uncaught 'error' in a process that forgot a listener.
    this.on('error', (err: Error) => link.log.debug('relay stream error', {stream: id, error: err.message}))
  }

  /** Bytes this side may still send before the peer grants more. */
  get sendCredit(): number {
    return this.sendCredit_
  }

  /** Bytes the peer may still send before this side grants more. */
  get recvCredit(): number {
    return this.recvCredit_
  }

  /** true while a peer-opened stream waits for accept() or reject(). */
  get pending(): boolean {
    return this.state === 'pending'
  }

  /** Acceptor side: answer the peer's OPEN with OPEN_OK (idempotent; no-op once the stream is gone). */
  accept(): void {
    if (this.opener) throw new HoopError('INVALID_INPUT', `relay stream ${this.id} was opened by this side; only the peer's streams can be accepted`)
    if (this.wireClosed || this.destroyed || this.state !== 'pending') return
    this.state = 'open'
    this.link.answered(this)
    this.link.sendControl(encodeFrame({type: 'open-ok', streamId: this.id}))
    this.grantExtraWindow()
    // Grants were held while pending; if the reader already has room, _read may not be called again.
    if (this.readableLength < this.readableHighWaterMark) this.maybeGrant()
    this.flushWrites()
    if (this.finalCb) this.doFinal()
  }

  /**
   * Acceptor side: refuse the peer's OPEN; the opener's stream fails with HoopError(code, message).
   * After accept() this acts as reset(). The local stream closes without an 'error'.
   */
  reject(code: ErrorCode, message: string): void {
    if (this.opener) throw new HoopError('INVALID_INPUT', `relay stream ${this.id} was opened by this side; only the peer's streams can be rejected`)
    if (this.wireClosed || this.destroyed) return
    this.sendReset(code, message)
    this.destroy()
  }

  /** Aborts the stream both ways and tells the peer why. */
  reset(code: ErrorCode, message: string): void {
    if (this.wireClosed || this.destroyed) return
    this.sendReset(code, message)
    this.destroy(new HoopError(code, message))
  }

  // --- Duplex implementation -------------------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.startWrite([chunk], chunk.length, cb)
  }

  override _writev(chunks: Array<{chunk: Buffer}>, cb: (err?: Error | null) => void): void {
    const list = new Array<Buffer>(chunks.length)
    let total = 0
    for (let i = 0; i < chunks.length; i++) {
      list[i] = chunks[i].chunk
      total += list[i].length
    }
    this.startWrite(list, total, cb)
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finalCb = cb
    if (this.canSend()) this.doFinal()
  }

  override _read(): void {
    this.maybeGrant()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.wireClosed) {
      if (err instanceof HoopError) this.sendReset(err.code, err.message)
      else this.sendReset('INTERNAL', 'stream aborted by peer')
    }
    const wcb = this.wCb
    this.wChunks = null
    this.wCb = null
    this.finalCb = null
    cb(err)
    // Release a write held for credit; the stream is already destroyed so this only frees the caller.
    if (wcb) wcb(err ?? new HoopError('PROTOCOL_ERROR', `relay stream ${this.id} was destroyed`))
  }

  // --- sending ---------------------------------------------------------------------------------

  private canSend(): boolean {
    return !this.wireClosed && this.state !== 'pending'
  }

  private startWrite(chunks: Buffer[], total: number, cb: (err?: Error | null) => void): void {
    this.wChunks = chunks
    this.wIndex = 0
    this.wOffset = 0
    this.wRemaining = total
    this.wCb = cb
    this.flushWrites()
  }

  /** Sends as much held data as credit and the link allow; the write callback fires when all is sent. */
  flushWrites(): void {
    while (this.wChunks !== null) {
      if (this.wRemaining > 0) {
        if (!this.canSend() || this.sendCredit_ === 0) return
        if (this.link.congested) {
          this.link.park(this)
          return
        }
        const n = Math.min(this.sendCredit_, MAX_DATA_PAYLOAD, this.wRemaining)
        const frame = Buffer.allocUnsafe(HEADER_SIZE + n)
        writeHeader(frame, FrameType.DATA, this.id)
        let pos = HEADER_SIZE
        const chunks = this.wChunks
        while (pos < frame.length) {
          const c = chunks[this.wIndex]
          const take = Math.min(c.length - this.wOffset, frame.length - pos)
          c.copy(frame, pos, this.wOffset, this.wOffset + take)
          pos += take
          this.wOffset += take
          if (this.wOffset === c.length) {
            this.wIndex++
            this.wOffset = 0
          }
        }
        this.wRemaining -= n
        this.sendCredit_ -= n
        this.bytesOut += n
        this.link.sendData(frame)
      }
      if (this.wRemaining === 0) {
        const cb = this.wCb
        this.wChunks = null
        this.wCb = null
        cb?.()
      }
    }
  }

  private doFinal(): void {
    const cb = this.finalCb
    this.finalCb = null
    if (!cb) return
    this.localEnded = true
    this.link.sendControl(encodeFrame({type: 'end', streamId: this.id}))
    if (this.remoteEnded) this.closeWire()
    cb()
  }

  /** @internal The peer assumes INITIAL_WINDOW; a bigger window is granted right after OPEN / OPEN_OK. */
  grantExtraWindow(): void {
    const extra = this.link.initialWindow - INITIAL_WINDOW
    if (extra > 0) this.sendWindow(extra)
  }

  private sendWindow(increment: number): void {
    this.recvCredit_ += increment
    this.link.sendControl(encodeFrame({type: 'window', streamId: this.id, increment}))
  }

  private sendReset(code: string, message: string): void {
    if (this.wireClosed) return
    this.link.sendControl(encodeFrame({type: 'reset', streamId: this.id, code, message: clip(message)}))
    this.closeWire()
  }

  private closeWire(): void {
    if (this.wireClosed) return
    this.wireClosed = true
    this.link.forget(this)
  }

  /** Grants the peer what the reader consumed since the last grant, in batches. */
  private maybeGrant(): void {
    if (this.state === 'pending' || this.remoteEnded || this.wireClosed) return
    if (this.unacked === 0 || this.unacked < this.link.grantThreshold) return
    let grant = this.unacked
    this.unacked = 0
    if (this.debt > 0) {
      const repay = Math.min(this.debt, grant)
      this.debt -= repay
      grant -= repay
    }
    if (grant > 0) this.sendWindow(grant)
  }

  // --- frames from the peer (called by Mux) ----------------------------------------------------

  /** @internal */
  onOpenOk(): void {
    if (!this.opener || this.state !== 'opening') {
      this.reset('PROTOCOL_ERROR', `relay stream ${this.id} got an unexpected OPEN_OK`)
      return
    }
    this.state = 'open'
    this.emit('ready')
  }

  /** @internal */
  onData(data: Buffer): void {
    if (this.remoteEnded) {
      this.reset('PROTOCOL_ERROR', `relay stream ${this.id} received DATA after END`)
      return
    }
    if (data.length > this.recvCredit_) {
      this.reset('PROTOCOL_ERROR', `relay stream ${this.id} received ${data.length} bytes of DATA with only ${this.recvCredit_} bytes of window left`)
      return
    }
    this.recvCredit_ -= data.length
    this.bytesIn += data.length
    this.unacked += data.length
    this.push(data)
  }

  /** @internal */
  onWindow(increment: number): void {
    if (this.sendCredit_ + increment > MAX_WINDOW) {
      this.reset('PROTOCOL_ERROR', `relay stream ${this.id} window would exceed ${MAX_WINDOW} bytes`)
      return
    }
    this.sendCredit_ += increment
    this.flushWrites()
  }

  /** @internal */
  onEnd(): void {
    if (this.remoteEnded) {
      this.reset('PROTOCOL_ERROR', `relay stream ${this.id} received END twice`)
      return
    }
    this.remoteEnded = true
    if (this.localEnded) this.closeWire()
    this.push(null)
  }

  /** @internal the peer reset the stream, or the link is gone: no RESET goes back. */
  onAbort(err: HoopError): void {
    this.closeWire()
    this.destroy(err)
  }
}

/**
 * Multiplexes RelayStreams over one WebSocket. Emits 'close' (err: HoopError) once, when the link
 * is gone: the peer's GOAWAY reason, ours, or GATEWAY_UNREACHABLE 'relay link lost'.
 */
export class Mux extends EventEmitter {
  readonly initialWindow: number
  readonly grantThreshold: number
  readonly log: Logger
  private readonly ws: WebSocket
  private readonly side: 'dialer' | 'acceptor'
  private readonly onOpen: ((stream: RelayStream) => void) | undefined
  private readonly maxStreams: number
  private readonly maxPending: number
  private readonly maxQueued: number
  private readonly heartbeatMs: number
  private readonly lostMessage: string
  private readonly streams = new Map<number, RelayStream>()
  private nextId: number
  private highestPeerId = 0
  private peerStreams = 0
  /** Peer-opened streams not yet accepted or rejected. */
  private peerPending = 0
  /** Highest socket queue seen (bytes), for tests and diagnostics. */
  private peakQueued_ = 0
  /** Bad-frame warnings beyond WARN_BUDGET, summed up when the link closes. */
  private suppressedWarnings = 0
  private loggedWarnings = 0
  private closeReason: HoopError | undefined
  /** An error seen on the socket before it closed (ws protocol violations, missed heartbeat). */
  private linkError: HoopError | undefined
  private closeEmitted = false
  private probes = 0
  private readonly parked = new Set<RelayStream>()
  private heartbeat: NodeJS.Timeout | undefined
  private alive = true
  private connectQueue: Buffer[] | null = null
  private connectQueueBytes = 0
  /** The socket under the WebSocket, corked from the first frame of a tick until setImmediate. */
  private corked: CorkableSocket | null = null

  constructor(ws: WebSocket, opts: MuxOptions) {
    super()
    this.ws = ws
    this.side = opts.side
    this.onOpen = opts.onOpen
    this.initialWindow = opts.initialWindow ?? DEFAULT_WINDOW
    this.maxStreams = opts.maxStreams ?? DEFAULT_MAX_STREAMS
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING
    this.maxQueued = opts.maxQueuedBytes ?? LINK_MAX_QUEUED
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS
    this.lostMessage = opts.lostMessage ?? 'relay link lost'
    this.log = (opts.logger ?? silentLogger).child({component: 'relay', side: opts.side})
    if (!Number.isInteger(this.initialWindow) || this.initialWindow < 1 || this.initialWindow > MAX_WINDOW) {
      throw new HoopError('INVALID_INPUT', `relay initialWindow ${this.initialWindow} is not an integer in 1..${MAX_WINDOW}`)
    }
    if (!Number.isInteger(this.maxStreams) || this.maxStreams < 0) {
      throw new HoopError('INVALID_INPUT', `relay maxStreams ${this.maxStreams} is not a non-negative integer`)
    }
    if (!Number.isInteger(this.maxPending) || this.maxPending < 0) {
      throw new HoopError('INVALID_INPUT', `relay maxPending ${this.maxPending} is not a non-negative integer`)
    }
    if (!Number.isInteger(this.maxQueued) || this.maxQueued < LINK_HIGH_WATER) {
      throw new HoopError('INVALID_INPUT', `relay maxQueuedBytes ${this.maxQueued} is not an integer of at least ${LINK_HIGH_WATER} (LINK_HIGH_WATER)`)
    }
    this.grantThreshold = Math.max(1, Math.floor(this.initialWindow / 4))
    this.nextId = opts.side === 'dialer' ? 1 : 2

    ws.binaryType = 'nodebuffer'
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary))
    ws.on('error', (err) => this.onSocketError(err))
    ws.on('close', (code, reason) => this.onSocketClose(code, reason))
    ws.on('pong', () => {
      this.alive = true
    })
    if (ws.readyState === WS_CONNECTING) {
      this.connectQueue = []
      ws.once('open', () => {
        const queued = this.connectQueue ?? []
        this.connectQueue = null
        this.connectQueueBytes = 0
        for (const frame of queued) ws.send(frame, SEND_OPTS)
        this.startHeartbeat()
      })
    } else if (ws.readyState === WS_OPEN) {
      this.startHeartbeat()
    } else {
      // Already closing: nothing will ever flow. A closed socket will not emit 'close' again.
      this.closeReason = new HoopError('GATEWAY_UNREACHABLE', this.lostMessage)
      if (ws.readyState === WS_CLOSED) process.nextTick(() => this.onSocketClose(1006, Buffer.alloc(0)))
    }
  }

  get streamCount(): number {
    return this.streams.size
  }

  /** true once GOAWAY was sent or received or the link is gone: open() throws. */
  get closed(): boolean {
    return this.closeReason !== undefined
  }

  /** true while stream writes are held because the socket has too much queued. */
  get congested(): boolean {
    return this.probes > 0
  }

  /** Bytes queued on the link now (frames not yet handed to the kernel, or waiting for the socket to open). */
  get queuedBytes(): number {
    return this.connectQueue ? this.connectQueueBytes : this.ws.bufferedAmount
  }

  /** The most bytes the link has had queued at once; never above maxQueuedBytes. */
  get peakQueuedBytes(): number {
    return this.peakQueued_
  }

  /** Peer-opened streams waiting for accept() or reject(). */
  get pendingCount(): number {
    return this.peerPending
  }

  /** Opens a stream: sends OPEN at once; writes before OPEN_OK may use the initial window. */
  open(meta: Record<string, unknown>): RelayStream {
    if (this.closeReason) throw new HoopError(this.closeReason.code, this.closeReason.message)
    if (this.nextId > MAX_STREAM_ID) throw new HoopError('INTERNAL', 'relay link used up its stream ids; reconnect')
    const id = this.nextId
    let frame: Buffer
    try {
      frame = encodeFrame({type: 'open', streamId: id, meta})
    } catch (err) {
      if (err instanceof HoopError) throw err
      throw new HoopError('INVALID_INPUT', 'relay OPEN meta is not serializable as JSON')
    }
    this.nextId += 2
    const stream = new RelayStream(this, id, meta, true)
    this.streams.set(id, stream)
    this.sendControl(frame)
    stream.grantExtraWindow()
    return stream
  }

  /** Sends GOAWAY, ends every stream with HoopError(code, message), closes the socket once flushed. */
  goAway(code: ErrorCode, message: string): void {
    if (this.closeReason) return
    this.closeReason = new HoopError(code, message)
    this.log.info('relay link going away', {code, message})
    this.sendControl(encodeFrame({type: 'goaway', code, message: clip(message)}))
    this.failAll(this.closeReason)
    this.closeSocket()
  }

  // --- used by RelayStream ---------------------------------------------------------------------

  /** @internal */
  sendControl(frame: Buffer): void {
    this.send(frame, false)
  }

  /** @internal */
  sendData(frame: Buffer): void {
    this.send(frame, true)
  }

  /**
   * Every frame goes out here. Stream DATA waits at LINK_HIGH_WATER (the frame that crosses it
   * carries a send callback that releases the parked streams); no frame may take the queue past
   * maxQueued: that means the peer stopped reading, and the link is closed instead.
   */
  private send(frame: Buffer, data: boolean): void {
    if (this.connectQueue) {
      if (this.connectQueueBytes + frame.length > this.maxQueued) {
        this.overflow(this.connectQueueBytes, 'before the WebSocket opened')
        return
      }
      this.connectQueue.push(frame)
      this.connectQueueBytes += frame.length
      this.peakQueued_ = Math.max(this.peakQueued_, this.connectQueueBytes)
      return
    }
    if (this.ws.readyState !== WS_OPEN) return
    const queued = this.ws.bufferedAmount
    if (queued + frame.length > this.maxQueued) {
      this.overflow(queued, 'the peer is not reading')
      return
    }
    this.peakQueued_ = Math.max(this.peakQueued_, queued + frame.length)
    if (data) this.corkUntilImmediate()
    if (data && queued + frame.length >= LINK_HIGH_WATER) {
      // This frame fills the socket: its send callback tells us when everything before it is flushed.
      this.probes++
      this.ws.send(frame, SEND_OPTS, this.onProbe)
    } else {
      this.ws.send(frame, SEND_OPTS)
    }
  }

  /**
   * Coalesces the frames sent during this turn of the event loop (all the I/O callbacks of one
   * poll phase: several streams' reads, several messages of one WebSocket read) into one writev,
   * from the first DATA frame on (a flood of control frames is not held back):
   * ws writes each message as header + payload under its own cork/uncork, which nests inside ours.
   * The bytes held meanwhile sit in the socket's writable buffer, so ws.bufferedAmount (and with it
   * LINK_HIGH_WATER and maxQueuedBytes) still counts them; send callbacks fire once they are written.
   */
  private corkUntilImmediate(): void {
    if (this.corked) return
    const sock = socketOf(this.ws)
    if (!sock || sock.destroyed) return
    sock.cork()
    this.corked = sock
    setImmediate(this.uncork)
  }

  private readonly uncork = (): void => {
    const sock = this.corked
    this.corked = null
    sock?.uncork()
  }

  /**
   * The queue bound was hit. A GOAWAY would only queue behind what the peer does not read, so the
   * socket is dropped at once: its buffers are freed now, and every stream ends with the reason.
   */
  private overflow(queued: number, why: string): void {
    const message = `relay link closed: ${queued} bytes queued for the peer, limit ${this.maxQueued} (${why})`
    this.log.warn('relay peer is not reading; closing the link', {queuedBytes: queued, limit: this.maxQueued, why})
    this.closeReason ??= new HoopError('PROTOCOL_ERROR', message)
    this.linkError ??= this.closeReason
    this.connectQueue = null
    this.connectQueueBytes = 0
    this.failAll(this.closeReason)
    this.parked.clear()
    this.ws.terminate()
  }

  /** @internal */
  park(stream: RelayStream): void {
    this.parked.add(stream)
  }

  /** @internal */
  answered(stream: RelayStream): void {
    if (!stream.opener && this.streams.get(stream.id) === stream) this.peerPending--
  }

  /** @internal */
  forget(stream: RelayStream): void {
    if (this.streams.get(stream.id) === stream) {
      this.streams.delete(stream.id)
      if (!stream.opener) {
        this.peerStreams--
        if (stream.pending) this.peerPending--
      }
    }
    this.parked.delete(stream)
  }

  private readonly onProbe = (): void => {
    if (--this.probes > 0) return
    const waiting = [...this.parked]
    this.parked.clear()
    for (const s of waiting) {
      if (this.probes > 0) {
        this.parked.add(s)
        continue
      }
      try {
        s.flushWrites()
      } catch (err) {
        this.handlerFailed(s.id, err)
      }
    }
  }

  // --- receiving -------------------------------------------------------------------------------

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.closeReason) return
    if (!isBinary) {
      this.protocolError('relay link received a text message; relay frames are binary messages')
      return
    }
    let frame: Frame
    try {
      frame = decodeFrame(toBuffer(data))
    } catch (err) {
      this.protocolError(err instanceof Error ? err.message : 'relay frame does not decode')
      return
    }
    try {
      this.dispatch(frame)
    } catch (err) {
      this.handlerFailed(frame.type === 'goaway' ? 0 : frame.streamId, err)
    }
  }

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case 'open':
        this.onPeerOpen(frame.streamId, frame.meta)
        return
      case 'goaway':
        this.onGoAway(frame.code, frame.message)
        return
      case 'reset': {
        // A RESET for a stream we no longer know needs no answer (and answering could loop).
        const s = this.streams.get(frame.streamId)
        if (s) s.onAbort(peerError(frame.code, frame.message))
        return
      }
      default: {
        const s = this.streams.get(frame.streamId)
        if (!s) {
          this.unknownStream(frame.streamId, frame.type)
          return
        }
        if (frame.type === 'data') s.onData(frame.data)
        else if (frame.type === 'window') s.onWindow(frame.increment)
        else if (frame.type === 'end') s.onEnd()
        else if (frame.type === 'open-ok') s.onOpenOk()
        else {
          const never: never = frame
          throw new Error(`unhandled relay frame ${JSON.stringify(never)}`)
        }
      }
    }
  }

  private isPeerId(id: number): boolean {
    // The dialer opens odd ids; the peer of a dialer is the acceptor.
    return (id % 2 === 1) === (this.side === 'acceptor')
  }

  private unknownStream(id: number, type: string): void {
    const used = this.isPeerId(id) ? id <= this.highestPeerId : id < this.nextId
    // Frames racing a close of a stream we knew are normal; only never-opened ids are an error.
    if (used) return
    this.warnPeer('relay frame for a stream that was never opened', {stream: id, type})
    this.resetId(id, 'PROTOCOL_ERROR', `relay stream ${id} is not open`)
  }

  private onPeerOpen(id: number, meta: Record<string, unknown>): void {
    if (!this.isPeerId(id)) {
      this.resetId(id, 'PROTOCOL_ERROR', `relay stream id ${id} has the wrong parity: the ${this.side === 'acceptor' ? 'dialer opens odd' : 'acceptor opens even'} ids`)
      return
    }
    if (this.streams.has(id) || id <= this.highestPeerId) {
      this.resetId(id, 'PROTOCOL_ERROR', `relay stream id ${id} is already in use (stream ids must increase)`)
      return
    }
    this.highestPeerId = id
    if (this.peerStreams >= this.maxStreams) {
      this.resetId(id, 'PROTOCOL_ERROR', `relay peer already has ${this.peerStreams} streams open, limit ${this.maxStreams}`)
      return
    }
    if (this.peerPending >= this.maxPending) {
      this.warnPeer('relay peer opens streams faster than they are answered; refusing the OPEN', {stream: id, pending: this.peerPending})
      this.resetId(id, 'PROTOCOL_ERROR', `relay peer already has ${this.peerPending} stream opens waiting for an answer, limit ${this.maxPending}`)
      return
    }
    const stream = new RelayStream(this, id, meta, false)
    this.streams.set(id, stream)
    this.peerStreams++
    this.peerPending++
    if (!this.onOpen) {
      stream.reject('PROTOCOL_ERROR', 'this side of the relay link does not accept streams')
      return
    }
    try {
      this.onOpen(stream)
    } catch (err) {
      this.log.error('relay onOpen handler threw', {stream: id, error: errorMessage(err)})
      stream.reject('INTERNAL', 'internal error')
    }
  }

  /** Sends RESET for an id and tears down any local stream with that id, so both sides agree. */
  private resetId(id: number, code: ErrorCode, message: string): void {
    const s = this.streams.get(id)
    if (s) {
      s.reset(code, message)
      return
    }
    // A RESET for an id we hold no stream for is advisory: skip it while the socket is full, so a
    // peer that floods bad frames without reading our answers cannot grow our memory.
    if (this.ws.bufferedAmount >= LINK_HIGH_WATER) return
    this.sendControl(encodeFrame({type: 'reset', streamId: id, code, message: clip(message)}))
  }

  /** A warning about the peer's frames: the first WARN_BUDGET per link in full, the rest counted. */
  private warnPeer(msg: string, fields: Record<string, unknown>): void {
    if (this.loggedWarnings < WARN_BUDGET) {
      this.loggedWarnings++
      this.log.warn(msg, fields)
    } else {
      this.suppressedWarnings++
    }
  }

  private onGoAway(code: string, message: string): void {
    this.closeReason = peerError(code, message)
    this.log.info('relay peer is going away', {code, message})
    this.failAll(this.closeReason)
    this.closeSocket()
  }

  private protocolError(message: string): void {
    this.log.warn('relay peer broke the protocol; closing the link', {error: message})
    this.goAway('PROTOCOL_ERROR', message)
  }

  /** An exception escaped a frame handler (often user code in a 'data' listener): reset that stream only. */
  private handlerFailed(id: number, err: unknown): void {
    this.log.error('relay frame handler threw', {stream: id, error: errorMessage(err)})
    try {
      const s = id === 0 ? undefined : this.streams.get(id)
      if (s) s.reset('INTERNAL', 'internal error')
      else if (id === 0) this.goAway('INTERNAL', 'internal error')
    } catch (again) {
      this.log.error('relay cleanup after a handler error failed', {error: errorMessage(again)})
    }
  }

  // --- link lifecycle --------------------------------------------------------------------------

  private startHeartbeat(): void {
    if (this.heartbeatMs <= 0 || this.heartbeat) return
    this.alive = true
    this.heartbeat = setInterval(() => {
      if (this.alive) {
        this.alive = false
        if (this.ws.readyState === WS_OPEN) this.ws.ping()
        return
      }
      // Timers run before I/O in an event-loop turn: after this process was stalled (a long GC, a
      // starved CPU) the peer's pong may be waiting unread. Judge after this turn's I/O.
      setImmediate(() => {
        if (this.alive || !this.heartbeat) return
        this.log.warn('relay peer missed a heartbeat; terminating the link', {heartbeatMs: this.heartbeatMs})
        this.linkError ??= new HoopError('GATEWAY_UNREACHABLE', this.lostMessage, {reason: `no pong within ${this.heartbeatMs} ms`})
        this.ws.terminate()
      })
    }, this.heartbeatMs)
    this.heartbeat.unref()
  }

  private onSocketError(err: Error & {code?: string}): void {
    this.log.warn('relay socket error', {error: err.message, code: err.code})
    if (typeof err.code === 'string' && err.code.startsWith('WS_ERR_')) {
      this.linkError ??= new HoopError('PROTOCOL_ERROR', `relay link closed: ${err.message}`, {wsCode: err.code})
    }
  }

  private onSocketClose(code: number, reason: Buffer): void {
    if (this.heartbeat) clearInterval(this.heartbeat)
    this.heartbeat = undefined
    this.connectQueue = null
    this.closeReason ??=
      this.linkError ?? new HoopError('GATEWAY_UNREACHABLE', this.lostMessage, {closeCode: code, reason: reason.toString('utf8')})
    this.failAll(this.closeReason)
    this.parked.clear()
    if (this.closeEmitted) return
    this.closeEmitted = true
    if (this.suppressedWarnings > 0) this.log.warn('relay peer sent more bad frames than were logged', {suppressed: this.suppressedWarnings})
    this.log.debug('relay link closed', {closeCode: code, error: this.closeReason.message})
    this.emit('close', this.closeReason)
  }

  private failAll(err: HoopError): void {
    const all = [...this.streams.values()]
    for (const s of all) {
      try {
        s.onAbort(new HoopError(err.code, err.message, err.details))
      } catch (e) {
        this.log.error('relay stream teardown threw', {stream: s.id, error: errorMessage(e)})
      }
    }
  }

  private closeSocket(): void {
    if (this.ws.readyState === WS_CONNECTING) this.ws.terminate()
    else if (this.ws.readyState === WS_OPEN) this.ws.close(1000, 'relay goaway')
  }
}
