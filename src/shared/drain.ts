// Waiting for a Writable to take more data: resolves on 'drain', or when the stream closes or
// fails (the caller notices those itself), so an engine never hangs on a dead peer.
import type {Writable} from 'node:stream'

export function waitDrain(dest: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      dest.off('drain', done)
      dest.off('close', done)
      dest.off('error', done)
      resolve()
    }
    dest.on('drain', done)
    dest.on('close', done)
    dest.on('error', done)
  })
}
