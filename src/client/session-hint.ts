// How to reach a local `hoop connect` listener with the native client of each connection type.
import type {ConnectionType} from '../shared/config.js'

export function connectHint(type: string, host: string, port: number, info: {database?: string; username?: string}): string {
  switch (type as ConnectionType) {
    case 'postgres': {
      const parts = [`host=${host}`, `port=${port}`, `user=${info.username ?? 'postgres'}`]
      if (info.database) parts.push(`dbname=${info.database}`)
      return `psql "${parts.join(' ')}"`
    }
    case 'mysql':
      return `mysql -h ${host} -P ${port} -u ${info.username ?? 'root'}${info.database ? ' ' + info.database : ''}`
    case 'http':
      return `curl http://${host}:${port}/`
    case 'tcp':
      return `connect any TCP client to ${host}:${port}`
    default:
      return `${host}:${port}`
  }
}
