// Which agents are online, and how to reach a connection's target through one. The embedded agent
// is the gateway itself dialing the target; remote agents are reached over their relay link.
import type {Duplex} from 'node:stream'
import {EMBEDDED_AGENT, type ConnectionConfig} from '../shared/config.js'
import {HoopError, type ErrorCode} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {Mux} from '../relay/mux.js'
import {dialTarget} from '../shared/dial.js'

export class AgentRegistry {
  /** Live links per agent name, newest last. Several replicas of one agent may be connected. */
  private readonly links = new Map<string, Mux[]>()

  constructor(private readonly logger: Logger) {}

  attach(name: string, mux: Mux): void {
    const list = this.links.get(name) ?? []
    list.push(mux)
    this.links.set(name, list)
    mux.once('close', () => {
      const now = (this.links.get(name) ?? []).filter((m) => m !== mux)
      if (now.length > 0) this.links.set(name, now)
      else this.links.delete(name)
    })
  }

  isOnline(name: string): boolean {
    return name === EMBEDDED_AGENT || (this.links.get(name)?.some((m) => !m.closed) ?? false)
  }

  onlineAgents(): string[] {
    return [...this.links.keys()].filter((n) => this.isOnline(n))
  }

  /** Live relay links from remote agents (the embedded agent has none). */
  linkCount(): number {
    let n = 0
    for (const list of this.links.values()) n += list.filter((m) => !m.closed).length
    return n
  }

  /** Disconnects every link of an agent (its token was revoked). */
  disconnect(name: string, code: ErrorCode, message: string): void {
    for (const mux of this.links.get(name) ?? []) mux.goAway(code, message)
  }

  goAwayAll(code: ErrorCode, message: string): void {
    for (const list of this.links.values()) for (const mux of list) mux.goAway(code, message)
  }

  /** Opens a byte stream to the connection's target, through its agent. */
  async openTarget(conn: ConnectionConfig, sessionId: string): Promise<Duplex> {
    if (conn.agent === EMBEDDED_AGENT) return dialTarget(conn.host, conn.port)
    const mux = this.links.get(conn.agent)?.filter((m) => !m.closed).at(-1)
    if (!mux) throw new HoopError('AGENT_OFFLINE', `agent "${conn.agent}" serving connection "${conn.name}" is offline`)
    const stream = mux.open({connection: conn.name, host: conn.host, port: conn.port, sessionId})
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        stream.off('error', onError)
        resolve()
      }
      const onError = (err: Error) => {
        stream.off('ready', onReady)
        if (err instanceof HoopError && err.code === 'TARGET_REFUSED') reject(err)
        else if (err instanceof HoopError && err.code === 'GATEWAY_UNREACHABLE') {
          reject(new HoopError('AGENT_OFFLINE', `agent "${conn.agent}" disconnected`))
        } else reject(err instanceof HoopError ? err : new HoopError('TARGET_REFUSED', String(err)))
      }
      stream.once('ready', onReady)
      stream.once('error', onError)
    })
    return stream
  }
}
