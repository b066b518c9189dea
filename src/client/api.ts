// A small client for the gateway's HTTP API, with errors mapped to HoopError codes. Given several
// replicas of one gateway (gateways.ts), a request that cannot reach one goes to the next, and the
// client stays on the replica that answered.
import {errorMessage, HoopError} from '../shared/errors.js'
import {resolveBearer} from './credentials.js'
import {errorFromResponse} from './dial.js'
import {resolveGateways} from './gateways.js'

/** Connection errors after which the request surely never reached the replica (safe to resend anywhere). */
const NOT_DELIVERED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
/** A replica that does not answer a request within this is passed over (GETs) or reported. */
const API_TIMEOUT_MS = 15_000
const DOWNLOAD_HEADERS_TIMEOUT_MS = 120_000

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
    return this.failover(method, async (gateway) => {
      const {res, done} = await this.fetchFrom(gateway, method, path, body, API_TIMEOUT_MS)
      let text: string
      try {
        text = await res.text()
      } catch (err) {
        throw new Unreached(causeOf(err))
      } finally {
        done()
      }
      if (!res.ok) throw errorFromResponse(res.status, text, gateway)
      try {
        return JSON.parse(text) as T
      } catch {
        throw new HoopError('GATEWAY_UNREACHABLE', `gateway ${gateway} sent a response that is not JSON`)
      }
    })
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path)
  }

  /**
   * A GET whose body the caller streams (the audit export): fails over like `get` until a replica
   * answers with its headers; a body cut mid-way is the caller's error, never resumed elsewhere.
   */
  async download(path: string): Promise<{gateway: string; res: Response & {body: ReadableStream<Uint8Array>}}> {
    return this.failover('GET', async (gateway) => {
      // Building the package comes before the headers: allow it longer than a plain request.
      const {res, done} = await this.fetchFrom(gateway, 'GET', path, undefined, DOWNLOAD_HEADERS_TIMEOUT_MS)
      done()
      if (!res.ok || !res.body) throw errorFromResponse(res.status, await res.text(), gateway)
      return {gateway, res: res as Response & {body: ReadableStream<Uint8Array>}}
    })
  }

  /** Runs `attempt` on the current replica, then the next ones while they cannot be reached. */
  private async failover<T>(method: string, attempt: (gateway: string) => Promise<T>): Promise<T> {
    const failures: string[] = []
    for (let tried = 0; ; tried++) {
      const gateway = this.replicas[this.current]
      try {
        return await attempt(gateway)
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

  /** The response's headers, or Unreached; `done` ends the timeout (which also covers a body read before it). */
  private async fetchFrom(gateway: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<{res: Response; done: () => void}> {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs)
    try {
      const res = await fetch(gateway + path, {
        method,
        headers: {
          ...(this.bearer ? {authorization: `Bearer ${this.bearer}`} : {}),
          ...(body === undefined ? {} : {'content-type': 'application/json'}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal,
      })
      return {res, done: () => clearTimeout(timer)}
    } catch (err) {
      clearTimeout(timer)
      throw new Unreached(causeOf(err))
    }
  }
}

/** A fetch failure's system error code (ECONNREFUSED...), else its message. */
function causeOf(err: unknown): string {
  return (err as {cause?: {code?: string}}).cause?.code ?? errorMessage(err)
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
