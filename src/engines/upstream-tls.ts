// TLS towards a target, over whatever stream reaches it (a socket, or a relay stream through an
// agent). `require` encrypts only; `verify-full` checks the CA and the host name. Shared by the
// PostgreSQL, MySQL and HTTP engines, each of which negotiates the upgrade in its own protocol first.
import {isIP} from 'node:net'
import type {Duplex} from 'node:stream'
import * as tls from 'node:tls'
import {HoopError} from '../shared/errors.js'

export interface UpstreamTls {
  mode: 'disable' | 'require' | 'verify-full'
  ca?: string
  serverName?: string
}

export async function startUpstreamTls(raw: Duplex, opts: UpstreamTls, host: string, extra: Pick<tls.ConnectionOptions, 'ALPNProtocols'> = {}): Promise<tls.TLSSocket> {
  const serverName = opts.serverName ?? host
  const verify = opts.mode === 'verify-full'
  const sock = tls.connect({
    socket: raw,
    servername: isIP(serverName) ? undefined : serverName,
    ca: opts.ca,
    rejectUnauthorized: verify,
    checkServerIdentity: verify ? (_h, cert) => tls.checkServerIdentity(serverName, cert) : () => undefined,
    ...extra,
  })
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error) => {
      sock.destroy()
      reject(new HoopError('TARGET_REFUSED', `TLS to the target failed: ${e.message}`))
    }
    sock.once('secureConnect', () => {
      sock.off('error', fail)
      resolve()
    })
    sock.once('error', fail)
  })
  return sock
}
