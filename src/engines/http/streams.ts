// The HTTP engine's two byte streams (client and target), read and written the same way: raw
// chunks pulled only when the engine asks (bytes it is not ready for stay in the socket, and bytes
// read past a message are pushed back for the next one: pipelining), and writes that wait for
// the peer to drain and fail with `Closed` once it is gone.
import type {Readable, Writable} from 'node:stream'
import {ChunkFramer, PullReader} from '../io.js'

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
export function write(s: Writable, buf: Buffer, what: string): Promise<void> {
  if (s.destroyed || s.writableEnded) return Promise.reject(new Closed(what))
  if (buf.length === 0) return Promise.resolve()
  if (s.write(buf)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      s.off('drain', onDrain)
      s.off('close', onClose)
      s.off('error', onClose)
    }
    const onDrain = () => {
      cleanup()
      resolve()
    }
    const onClose = () => {
      cleanup()
      reject(new Closed(what))
    }
    s.on('drain', onDrain)
    s.on('close', onClose)
    s.on('error', onClose)
  })
}
