// Dialing a target over TCP, shared by the embedded agent (in the gateway) and `hoop agent`.
import {connect as netConnect, type Socket} from 'node:net'
import {HoopError} from './errors.js'

const TARGET_CONNECT_TIMEOUT_MS = 10_000

/** Dials a target over TCP with Nagle off, mapping failures to TARGET_REFUSED. */
export function dialTarget(host: string, port: number, timeoutMs = TARGET_CONNECT_TIMEOUT_MS): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({host, port, noDelay: true, allowHalfOpen: true})
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new HoopError('TARGET_REFUSED', `target ${host}:${port} did not answer within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new HoopError('TARGET_REFUSED', `target ${host}:${port} refused the connection (${err.code ?? err.message})`))
    })
  })
}
