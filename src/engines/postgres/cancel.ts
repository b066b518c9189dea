// Cancel keys. The client gets a synthetic BackendKeyData in place of the target's; a
// CancelRequest arrives on a new connection (hence a new session) and is mapped back to the real
// backend through this process-wide registry, then sent on a fresh stream to the target.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
import {randomBytes, randomInt} from 'node:crypto'
import type {Duplex} from 'node:stream'
import {encodeCancelRequest} from '../../protocol/pg/messages.js'
import type {Logger} from '../../shared/log.js'
import type {UpstreamTls} from '../upstream-tls.js'
import {negotiateTls, type PgDial} from './upstream.js'

/** A backend key as BackendKeyData and CancelRequest carry it. */
export interface BackendKey {
  pid: number
  key: Buffer
}

interface CancelTarget extends BackendKey {
  open: () => Promise<Duplex>
  tls: UpstreamTls
  host: string
}

const registry = new Map<string, CancelTarget>()
const cancelId = (k: BackendKey) => `${k.pid}:${k.key.toString('hex')}`

/** Registers the target's real key for this session; returns the synthetic key the client gets. */
export function registerCancelKey(real: BackendKey, dial: PgDial): BackendKey {
  const synthetic = {pid: randomInt(1, 2 ** 31 - 1), key: randomBytes(4)}
  registry.set(cancelId(synthetic), {...real, open: dial.openUpstream, tls: dial.target.tls, host: dial.target.host})
  return synthetic
}

/** The session ended: its key no longer cancels anything. */
export function releaseCancelKey(synthetic: BackendKey): void {
  registry.delete(cancelId(synthetic))
}

/** Sends a client's CancelRequest to the backend its synthetic key stands for; an unknown key is ignored. */
export async function forwardCancel(synthetic: BackendKey, log: Logger): Promise<void> {
  const t = registry.get(cancelId(synthetic))
  if (!t) {
    log.info('pg cancel request for an unknown session ignored')
    return
  }
  let s = await t.open()
  try {
    if (t.tls.mode !== 'disable') s = await negotiateTls(s, t.tls, t.host)
    await new Promise<void>((resolve) => s.end(encodeCancelRequest(t.pid, t.key), () => resolve()))
    log.info('pg cancel request forwarded')
  } finally {
    s.destroy()
  }
}
