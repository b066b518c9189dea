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

/**
 * Said once in the `hoop connect` banner: the PostgreSQL and MySQL engines log in to the target
 * with the connection's user and database when it sets them (docs/postgres.md, docs/mysql.md),
 * whatever the client names, so a client's `user=` or `dbname=` that seems ignored is not a bug.
 */
export function loginNote(type: string, info: {database?: string; username?: string}): string | undefined {
  if (type !== 'postgres' && type !== 'mysql') return undefined
  const as = [info.username ? `user "${info.username}"` : '', info.database ? `database "${info.database}"` : ''].filter(Boolean)
  if (!as.length) return undefined
  const what = info.username && info.database ? 'user and database your client names are' : info.username ? 'user your client names is' : 'database your client names is'
  return `The gateway logs in as ${as.join(' to ')} with the connection's own credentials: the ${what} replaced, and no password is asked.`
}
