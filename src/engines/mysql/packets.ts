// Packet plumbing of the MySQL engine, shared by its session and its upstream: the reader of either
// link, the output towards a peer (the shared OutputBatch plus MySQL's sequence ids), and the error
// that ends a session with an ERR the client sees.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html#sect_protocol_basic_packets_sequence_id
import type {Readable, Writable} from 'node:stream'
import {encodePacket, PacketFramer, type FramerError, type Packet} from '../../protocol/mysql/framer.js'
import type {ErrPacket} from '../../protocol/mysql/messages.js'
import {OutputBatch, PullReader} from '../io.js'

export type PacketReader = PullReader<Packet, FramerError, PacketFramer>

/** Reads whole packets from a link, refusing any declared payload above `maxPayload` from its header. */
export function packetReader(stream: Readable, maxPayload: number): PacketReader {
  return new PullReader<Packet, FramerError, PacketFramer>(stream, new PacketFramer(maxPayload))
}

/**
 * Packets towards one peer. Batching, flushing and backpressure are the shared OutputBatch's; what
 * is MySQL's own is the sequence id: every packet of a response carries the next id after the
 * request's, so the packets of a response are renumbered as they are queued.
 */
export class PacketOutput {
  private readonly batch = new OutputBatch()
  /** Sequence id of the next packet. */
  seq = 0
  /** Packets queued since the last flush. */
  private queued = 0

  constructor(private readonly dest: Writable) {}

  /** Queues a payload as the next packet; forwards `raw` untouched when it already carries the right sequence id. */
  packet(payload: Buffer, raw?: Buffer): void {
    this.queued++
    if (raw && raw[3] === this.seq && raw.length === payload.length + 4) {
      this.batch.push(raw)
      this.seq = (this.seq + 1) & 0xff
      return
    }
    const e = encodePacket(payload, this.seq)
    this.batch.push(e.bytes)
    this.seq = e.nextSeq
  }

  /** Bytes queued over this output's life. */
  get bytes(): number {
    return this.batch.bytes
  }

  /** Bytes queued and not yet flushed. */
  get pending(): number {
    return this.batch.pending
  }

  /** Writes everything queued; resolves when the peer can take more. */
  flush(): Promise<void> {
    this.queued = 0
    return this.batch.flush(this.dest)
  }

  /** Drops the packets queued since the last flush; the next packet takes the first one's sequence id. */
  discard(): void {
    this.seq = (this.seq - this.queued) & 0xff
    this.queued = 0
    this.batch.discard()
  }
}

/** A client-visible error that ends the session: the ERR and the sequence id it goes out with. */
export class FatalToClient extends Error {
  constructor(
    readonly err: ErrPacket,
    readonly seq: number,
  ) {
    super(err.message)
  }
}
