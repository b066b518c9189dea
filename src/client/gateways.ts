// Several replicas of ONE gateway, as the CLI sees them: `--gateway` / HOOP_GATEWAY take a
// comma-separated list of URLs (docs/ha.md, "Clients and agents with several replicas"). The
// first URL is the gateway's identity: `hoop login` stores its login under it, and every other
// command finds the login there, whichever replica it then reaches.
import type WebSocket from 'ws'
import {readLastGateway} from '../identity/token-store.js'
import {normaliseUrl} from '../shared/urls.js'
import {HoopError, asHoopError} from '../shared/errors.js'
import {dialRelay} from './dial.js'

const DEFAULT_GATEWAY = 'http://127.0.0.1:8009'

/** The replicas of one gateway, in the order given; `identity` (the first) keys its login. */
export interface GatewayList {
  identity: string
  replicas: string[]
}

/** --gateway / HOOP_GATEWAY, then the last gateway logged in to, then the default; each URL checked. */
export function resolveGateways(flag?: string): GatewayList {
  return parseGatewayList(flag || process.env.HOOP_GATEWAY || readLastGateway() || DEFAULT_GATEWAY)
}

export function parseGatewayList(value: string): GatewayList {
  const replicas = [...new Set(value.split(',').map((s) => s.trim()).filter(Boolean).map(normaliseUrl))]
  if (replicas.length === 0) throw new HoopError('INVALID_INPUT', `no gateway URL in "${value}"`)
  return {identity: replicas[0], replicas}
}

/**
 * Errors that say "this replica cannot serve right now", so the next one is worth trying. A
 * rejected token or a refused request is the gateway's answer and the same on every replica
 * (they share one store), so it is not retried elsewhere.
 */
function replicaDown(err: HoopError): boolean {
  return err.code === 'GATEWAY_UNREACHABLE' || err.code === 'GATEWAY_SHUTDOWN'
}

/**
 * Runs `fn` against each replica in `order` until one answers; a replica that is down passes to
 * the next. When all are down the error names each replica and why.
 */
export async function firstAnswering<T>(order: string[], fn: (gateway: string) => Promise<T>): Promise<{gateway: string; value: T}> {
  const failures: string[] = []
  for (const gateway of order) {
    try {
      return {gateway, value: await fn(gateway)}
    } catch (err) {
      const e = asHoopError(err)
      if (!replicaDown(e) || order.length === 1) throw e
      failures.push(e.message)
    }
  }
  throw new HoopError('GATEWAY_UNREACHABLE', `no gateway replica answered: ${failures.join('; ')}`)
}

/**
 * Picks the replica for a new relay link: the one that last worked first, then the others in list
 * order. When a link is lost, the replica after the lost one is tried first next time, so a dead
 * replica costs a new session nothing when the list has a live one.
 */
export class ReplicaDialer {
  private start = 0

  constructor(readonly replicas: string[]) {}

  /** Dials the relay on the first replica that accepts; remembers it as the one to start from. */
  async dial(path: string, bearer: string, userAgent: string): Promise<{ws: WebSocket; gateway: string}> {
    const order = this.replicas.map((_, i) => this.replicas[(this.start + i) % this.replicas.length])
    const {gateway, value} = await firstAnswering(order, (g) => dialRelay(g, path, bearer, {userAgent}))
    this.start = this.replicas.indexOf(gateway)
    return {ws: value, gateway}
  }

  /** The link to `gateway` was lost: start from the next replica. */
  lost(gateway: string): void {
    const i = this.replicas.indexOf(gateway)
    if (i === this.start) this.start = (i + 1) % this.replicas.length
  }
}
