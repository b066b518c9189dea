// The one form of a gateway replica's URL, shared by the clients' replica lists, the agent's
// discovery and the gateway's own advertised address, so a replica listed twice is one replica.
import {HoopError} from './errors.js'

/** One form per URL (origin and path, no trailing slash). */
export function normaliseUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme')
    return u.origin + u.pathname.replace(/\/+$/, '')
  } catch {
    throw new HoopError('INVALID_INPUT', `gateway URL must be http(s)://host:port, got "${url}"`)
  }
}
