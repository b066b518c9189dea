// Table rows as records, for both stores: SQLite hands back times as ISO text, JSON text for
// groups and numbers for byte counts; PostgreSQL hands back Date, text[] and bigint as a string.
import type {AgentRecord, ServiceAccountRecord, SessionRecord} from './types.js'

export type Row = Record<string, unknown>

/** A stored time as ISO text; undefined for NULL. */
export function storedTime(v: unknown): string | undefined {
  return v instanceof Date ? v.toISOString() : typeof v === 'string' ? v : undefined
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

export function agentFromRow(r: Row): AgentRecord {
  return {id: r.id as string, name: r.name as string, createdAt: storedTime(r.created_at)!, revokedAt: storedTime(r.revoked_at), lastSeenAt: storedTime(r.last_seen_at)}
}

export function serviceAccountFromRow(r: Row): ServiceAccountRecord {
  const groups = Array.isArray(r.groups) ? (r.groups as string[]) : (JSON.parse(r.groups_json as string) as string[])
  return {id: r.id as string, name: r.name as string, groups, createdAt: storedTime(r.created_at)!, revokedAt: storedTime(r.revoked_at)}
}

/** A `sessions` row as a SessionRecord (also used by the audit package's session listing). */
export function sessionFromRow(r: Row): SessionRecord {
  return {
    id: r.id as string,
    subject: r.subject as string,
    identityKind: r.identity_kind as string,
    connection: r.connection as string,
    agent: r.agent as string,
    clientAddress: text(r.client_address),
    startedAt: storedTime(r.started_at)!,
    endedAt: storedTime(r.ended_at),
    // PostgreSQL's bigint comes back as a string; byte counts stay far below 2^53.
    bytesUp: Number(r.bytes_up),
    bytesDown: Number(r.bytes_down),
    endReason: text(r.end_reason),
  }
}
