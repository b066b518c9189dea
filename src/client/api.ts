// A small client for the gateway's HTTP API, with errors mapped to HoopError codes. Given several
// replicas of one gateway (gateways.ts), a request that cannot reach one goes to the next, and the
// client stays on the replica that answered.
import {errorMessage, HoopError} from '../shared/errors.js'
import {resolveBearer} from './credentials.js'
import {errorFromResponse} from './dial.js'
import {resolveGateways} from './gateways.js'

/** Connection errors after which the request surely never reached the replica (safe to resend anywhere). */
const NOT_DELIVERED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

export class GatewayApi {
  private current = 0
  /** The replica that answered last (the first one until a request fails over). */
  get answered(): string {
    return this.replicas[this.current]
  }

  /** The replicas tried in turn; `gateway` first. */
  private readonly replicas: string[]

  constructor(
    readonly gateway: string,
    private readonly bearer?: string,
    replicas: string[] = [gateway],
  ) {
    this.replicas = [gateway, ...replicas.filter((r) => r !== gateway)]
  }

  /**
   * One request; on a replica that cannot be reached, the next replica. A GET is resent after any
   * transport failure; a change (POST...) only when it surely never arrived, so a decision is never
   * made twice by a resend.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const failures: string[] = []
    for (let tried = 0; ; tried++) {
      const gateway = this.replicas[this.current]
      try {
        return await this.send<T>(gateway, method, path, body)
      } catch (err) {
        const code = err instanceof Unreached ? err.cause : undefined
        if (code === undefined) throw err
        const message = `cannot reach gateway ${gateway}: ${code}`
        const resend = method === 'GET' || NOT_DELIVERED.has(code)
        if (!resend || tried + 1 >= this.replicas.length) {
          throw new HoopError('GATEWAY_UNREACHABLE', failures.length ? `no gateway replica answered: ${[...failures, message].join('; ')}` : message)
        }
        failures.push(message)
        this.current = (this.current + 1) % this.replicas.length
      }
    }
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path)
  }

  private async send<T>(gateway: string, method: string, path: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(gateway + path, {
        method,
        headers: {
          ...(this.bearer ? {authorization: `Bearer ${this.bearer}`} : {}),
          ...(body === undefined ? {} : {'content-type': 'application/json'}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      })
    } catch (err) {
      throw new Unreached((err as {cause?: {code?: string}}).cause?.code ?? errorMessage(err))
    }
    const text = await res.text()
    if (!res.ok) throw errorFromResponse(res.status, text, gateway)
    try {
      return JSON.parse(text) as T
    } catch {
      throw new HoopError('GATEWAY_UNREACHABLE', `gateway ${gateway} sent a response that is not JSON`)
    }
  }
}

/** A transport failure: the replica did not answer (`cause`: the system error code or message). */
class Unreached extends Error {
  constructor(override readonly cause: string) {
    super(cause)
  }
}

/**
 * The API of the gateway --gateway / HOOP_GATEWAY names (a replica list is allowed), with the
 * caller's credential: the login kept under the list's first URL, or `token`.
 */
export async function openGatewayApi(o: {gateway?: string; token?: string; anonymous?: boolean}): Promise<GatewayApi> {
  const {identity, replicas} = resolveGateways(o.gateway)
  const bearer = o.anonymous ? undefined : await resolveBearer({gateway: identity, token: o.token})
  return new GatewayApi(identity, bearer, replicas)
}
