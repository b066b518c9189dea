// Cancel keys. The client's BackendKeyData carries the backend's real process id (so that
// pg_backend_pid(), pg_terminate_backend(pid) and the pid of a NotificationResponse all agree with
// what the client was told) and a random secret key of our own in place of the target's. A
// CancelRequest arrives on a new connection (hence a new session) and is mapped by (pid, key) back
// to the real key and the target through this process-wide registry, then sent on a fresh stream
// to the target. The real key never leaves the gateway.
// Protocol: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
import {randomBytes} from 'node:crypto'
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

/**
 * Registers the target's real key for this session; returns the key the client gets: the real
 * pid with a random secret of the same length (two targets may have backends with the same pid;
 * their secrets tell them apart).
 */
export function registerCancelKey(real: BackendKey, dial: PgDial): BackendKey {
  let ours: BackendKey
  do ours = {pid: real.pid, key: randomBytes(real.key.length >= 4 && real.key.length <= 256 ? real.key.length : 4)}
  while (registry.has(cancelId(ours)))
  registry.set(cancelId(ours), {...real, open: dial.openUpstream, tls: dial.target.tls, host: dial.target.host})
  return ours
}

/** The session ended: its key no longer cancels anything. */
export function releaseCancelKey(ours: BackendKey): void {
  registry.delete(cancelId(ours))
}

/** Sends a client's CancelRequest to the backend its key stands for, with the real key; an unknown key is ignored. */
export async function forwardCancel(ours: BackendKey, log: Logger): Promise<void> {
  const t = registry.get(cancelId(ours))
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
