// `hoop sessions list|show`: read the gateway's data dir on its host (--data-dir), or ask the
// gateway as an auditor. Both paths answer the same records; errors say which one was asked.
import {sessionsList, sessionsShow} from '../audit/cli.js'
import type {SessionDetail, SessionListItem} from '../audit/sessions.js'
import {HoopError} from '../shared/errors.js'
import {sessionFromGateway, sessionsFromGateway} from './audit.js'
import {resolveGatewayUrl} from './credentials.js'
import {table} from './table.js'

interface Where {
  dataDir?: string
  gateway?: string
  token?: string
}

export function listSessions(o: Where & {limit?: number; connection?: string; user?: string}): Promise<SessionListItem[]> {
  const filter = {limit: o.limit, connection: o.connection, user: o.user}
  return o.dataDir ? sessionsList({dataDir: o.dataDir, ...filter}) : sessionsFromGateway({gateway: o.gateway, token: o.token, ...filter})
}

/** One line per session under a header row, like the other lists. */
export function formatSessions(list: readonly SessionListItem[]): string {
  if (list.length === 0) return 'No sessions.'
  const rows = list.map((s) => [
    s.id,
    s.startedAt,
    s.subject,
    s.connection,
    s.endedAt ? (s.endReason ?? 'ended') : 'open',
    s.recording ? `${s.recording.chunks} exchanges${s.recording.truncated ? ' (truncated)' : ''}${s.recording.pruned ? ' (pruned)' : ''}` : 'none',
  ])
  return table(['id', 'started', 'subject', 'connection', 'ended', 'recording'], rows)
}

export async function showSession(o: Where & {id: string}): Promise<SessionDetail & {replay: string}> {
  if (o.dataDir) return sessionsShow({dataDir: o.dataDir, id: o.id})
  try {
    return await sessionFromGateway({gateway: o.gateway, token: o.token, id: o.id})
  } catch (err) {
    // The gateway answers with its store's wording ("in this data dir"); the question went to the gateway.
    if (err instanceof HoopError && err.code === 'NOT_FOUND') {
      throw new HoopError('NOT_FOUND', `gateway ${resolveGatewayUrl(o.gateway)} has no session ${o.id}; \`hoop sessions list\` shows the ids it has`)
    }
    throw err
  }
}
