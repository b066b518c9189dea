// The raw TCP engine: no statement policy, only bytes. Pipes client <-> target with backpressure
// and half-close in each direction, recording bytes and timing. A target failure resets the client
// stream with a reason the client can print; a client failure drops the target.
//
// Every listener here runs inside a socket's event (the embedded agent's target is a plain
// net.Socket): an exception would be uncaught and end the gateway, so each one is wrapped. The
// recorder itself never throws; a store that refuses writes only ends the recording.
import type {Duplex} from 'node:stream'
import type {SessionRecorder} from '../../audit/index.js'
import type {RelayStream} from '../../relay/mux.js'
import {errorMessage, HoopError} from '../../shared/errors.js'
import {silentLogger, type Logger} from '../../shared/log.js'

export interface TcpSessionResult {
  reason: string
  bytesUp: number
  bytesDown: number
}

/** Resolves once both sides are closed. */
export function runTcpSession(
  client: RelayStream,
  upstream: Duplex,
  o: {agent: string; recorder: SessionRecorder; logger?: Logger},
): Promise<TcpSessionResult> {
  const log = o.logger ?? silentLogger
  let reason = 'closed'
  /** Set when a listener threw: this, not the reset it causes, is why the session ended. */
  let broken: string | undefined
  /** Wraps a listener so that nothing it throws reaches the process; the session ends instead. */
  const safely =
    <A extends unknown[]>(what: string, fn: (...args: A) => void) =>
    (...args: A): void => {
      try {
        fn(...args)
      } catch (err) {
        log.error('raw session listener threw; ending the session', {listener: what, error: errorMessage(err)})
        broken ??= `internal error in the ${what} listener`
        if (!client.destroyed) client.reset('INTERNAL', 'internal error')
        if (!upstream.destroyed) upstream.destroy()
      }
    }
  return new Promise((resolve) => {
    let closed = 0
    const onClose = () => {
      if (++closed === 2) resolve({reason: broken ?? reason, bytesUp: client.bytesIn, bytesDown: client.bytesOut})
    }
    client.on('data', safely('client data', (d: Buffer) => o.recorder.record('client', 'bytes', d)))
    upstream.on('data', safely('target data', (d: Buffer) => o.recorder.record('server', 'bytes', d)))
    client.pipe(upstream)
    upstream.pipe(client)
    client.on(
      'error',
      safely('client error', (err: Error) => {
        reason = `client stream ended: ${err.message}`
        upstream.destroy()
      }),
    )
    upstream.on(
      'error',
      safely('target error', (err: Error) => {
        const e = err instanceof HoopError ? err : undefined
        const lost = e?.code === 'GATEWAY_UNREACHABLE' || e?.code === 'GATEWAY_SHUTDOWN'
        reason = lost ? `agent "${o.agent}" disconnected` : `target connection failed: ${e?.message ?? (err as NodeJS.ErrnoException).code ?? 'error'}`
        if (!client.destroyed) client.reset(lost ? 'AGENT_OFFLINE' : 'TARGET_REFUSED', reason)
      }),
    )
    // onClose runs outside the wrapper, so the session always resolves.
    const dropTarget = safely('client close', () => {
      if (!upstream.destroyed) upstream.destroy()
    })
    const endClient = safely('target close', () => {
      if (!client.destroyed && !client.writableEnded) client.end()
    })
    client.once('close', () => {
      dropTarget()
      onClose()
    })
    upstream.once('close', () => {
      endClient()
      onClose()
    })
  })
}
