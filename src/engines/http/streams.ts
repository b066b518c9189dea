// The HTTP engine's two byte streams (client and target), read and written the same way: raw
// chunks pulled only when the engine asks (bytes it is not ready for stay in the socket, and bytes
// read past a message are pushed back for the next one: pipelining), and writes that wait for
// the peer to drain (io.ts) and fail with `Closed` once it is gone.
import type {Readable, Writable} from 'node:stream'
import {ChunkFramer, PullReader, waitDrain} from '../io.js'

export type Pull = PullReader<Buffer, never, ChunkFramer>

export function pull(s: Readable): Pull {
  return new PullReader<Buffer, never, ChunkFramer>(s, new ChunkFramer())
}

/** A peer went away: the exchange ends quietly (nothing to log, nobody left to answer). */
export class Closed extends Error {
  constructor(what: string) {
    super(`${what} closed`)
  }
}

/** Writes `buf` and resolves once `s` can take more; rejects with `Closed` when `s` is gone. */
export async function write(s: Writable, buf: Buffer, what: string): Promise<void> {
  if (s.destroyed || s.writableEnded) throw new Closed(what)
  if (buf.length === 0 || s.write(buf)) return
  await waitDrain(s)
  // waitDrain also returns when the stream closes or fails: then the write was not taken.
  if (s.destroyed || s.errored) throw new Closed(what)
}
