// RFC 3161 timestamps of signed tree heads, in the background (never on a statement's path), for
// both audit logs (log.ts on SQLite, pg-log.ts on PostgreSQL). One request is in flight at a time;
// heads signed meanwhile wait, and only the newest is stamped next (a token over a head covers
// every event before it). Each token is kept in the store (audit_anchors, kind 'tsa') and appended
// to the witness file next to its head, unless a newer head was written there meanwhile: the
// witness's last line is what the gateway checks its store against on start. A TSA that fails is
// logged; the next head is tried.
import type {X509Certificate} from 'node:crypto'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {appendWitness, headDigest} from './anchors.js'
import type {SignedTreeHead} from './keys.js'
import {requestTimestamp} from './tsa.js'

export interface TimestampOptions {
  url: string
  timeoutMs?: number
  trusted?: X509Certificate[]
}

export interface StampSink {
  /** Stores the token (audit_anchors, kind 'tsa'). */
  record(head: SignedTreeHead, tsa: string, token: Buffer, genTime: string): void | Promise<void>
  /** The witness file and the size of the newest head written there, if any. */
  witness(): {file: string; size: number} | undefined
  /** False once the log's writer is closed: a late token is dropped (the PostgreSQL log waits for it instead). */
  open?(): boolean
}

export class HeadStamper {
  private inFlight?: Promise<void>
  private next?: SignedTreeHead

  constructor(
    private readonly tsa: TimestampOptions,
    private readonly sink: StampSink,
    private readonly logger: Logger,
  ) {}

  /** Queues the head (replacing an older one still waiting). */
  stamp(head: SignedTreeHead): void {
    if (head.tree_size === 0) return
    this.next = head
    this.inFlight ??= this.loop().finally(() => {
      this.inFlight = undefined
    })
  }

  /** Resolves when no request is in flight (close waits for it). */
  async settled(): Promise<void> {
    await this.inFlight
  }

  private async loop(): Promise<void> {
    while (this.next) {
      const head = this.next
      this.next = undefined
      try {
        const {token, info} = await requestTimestamp(this.tsa.url, headDigest(head), {timeoutMs: this.tsa.timeoutMs, trusted: this.tsa.trusted})
        if (this.sink.open?.() === false) return
        await this.sink.record(head, this.tsa.url, token, info.genTime)
        const w = this.sink.witness()
        if (w && w.size === head.tree_size) appendWitness(w.file, {tree_head: head, timestamp: {tsa: this.tsa.url, token: token.toString('base64'), gen_time: info.genTime}})
      } catch (err) {
        this.logger.warn('timestamp authority did not stamp the signed tree head; the next head will be tried', {tsa: this.tsa.url, treeSize: head.tree_size, error: errorMessage(err)})
      }
    }
  }
}
