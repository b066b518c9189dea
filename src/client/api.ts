// A small client for the gateway's HTTP API, with errors mapped to HoopError codes.
import {errorMessage, HoopError} from '../shared/errors.js'
import {errorFromResponse} from './dial.js'

export class GatewayApi {
  constructor(
    readonly gateway: string,
    private readonly bearer?: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(this.gateway + path, {
        method,
        headers: {
          ...(this.bearer ? {authorization: `Bearer ${this.bearer}`} : {}),
          ...(body === undefined ? {} : {'content-type': 'application/json'}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      })
    } catch (err) {
      const cause = (err as {cause?: {code?: string}}).cause?.code ?? errorMessage(err)
      throw new HoopError('GATEWAY_UNREACHABLE', `cannot reach gateway ${this.gateway}: ${cause}`)
    }
    const text = await res.text()
    if (!res.ok) throw errorFromResponse(res.status, text, this.gateway)
    try {
      return JSON.parse(text) as T
    } catch {
      throw new HoopError('GATEWAY_UNREACHABLE', `gateway ${this.gateway} sent a response that is not JSON`)
    }
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path)
  }
}
