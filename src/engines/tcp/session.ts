// The raw TCP engine: no statement policy, only bytes. Pipes client <-> target with backpressure
// and half-close in each direction, recording bytes and timing. A target failure resets the client
// stream with a reason the client can print; a client failure drops the target.
import type {Duplex} from 'node:stream'
import type {SessionRecorder} from '../../audit/index.js'
import type {RelayStream} from '../../relay/mux.js'
import {HoopError} from '../../shared/errors.js'

export interface TcpSessionResult {
  reason: string
  bytesUp: number
  bytesDown: number
}

/** Resolves once both sides are closed. */
export function runTcpSession(client: RelayStream, upstream: Duplex, o: {agent: string; recorder: SessionRecorder}): Promise<TcpSessionResult> {
  return new Promise((resolve) => {
    let reason = 'closed'
    let closed = 0
    const onClose = () => {
      if (++closed === 2) resolve({reason, bytesUp: client.bytesIn, bytesDown: client.bytesOut})
    }
    client.on('data', (d: Buffer) => o.recorder.record('client', 'bytes', d))
    upstream.on('data', (d: Buffer) => o.recorder.record('server', 'bytes', d))
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('error', (err) => {
      reason = `client stream ended: ${err.message}`
      upstream.destroy()
    })
    upstream.on('error', (err) => {
      const e = err instanceof HoopError ? err : undefined
      const lost = e?.code === 'GATEWAY_UNREACHABLE' || e?.code === 'GATEWAY_SHUTDOWN'
      reason = lost ? `agent "${o.agent}" disconnected` : `target connection failed: ${e?.message ?? (err as NodeJS.ErrnoException).code ?? 'error'}`
      if (!client.destroyed) client.reset(lost ? 'AGENT_OFFLINE' : 'TARGET_REFUSED', reason)
    })
    client.once('close', () => {
      if (!upstream.destroyed) upstream.destroy()
      onClose()
    })
    upstream.once('close', () => {
      if (!client.destroyed && !client.writableEnded) client.end()
      onClose()
    })
  })
}
