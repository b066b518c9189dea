// The storage interface: agents, service accounts and sessions. Asynchronous, so that a network
// database can implement it: SQLite (sqlite.ts) is the embedded default, PostgreSQL (postgres.ts)
// serves several gateway replicas. Both pass one conformance suite (test/conformance/store.test.ts).
import {HoopError} from '../shared/errors.js'

export interface AgentRecord {
  id: string
  name: string
  createdAt: string
  revokedAt?: string
  lastSeenAt?: string
}

export interface ServiceAccountRecord {
  id: string
  name: string
  groups: string[]
  createdAt: string
  revokedAt?: string
}

export interface SessionRecord {
  id: string
  subject: string
  identityKind: string
  connection: string
  agent: string
  clientAddress?: string
  startedAt: string
  endedAt?: string
  bytesUp: number
  bytesDown: number
  endReason?: string
}

export type SessionStart = Omit<SessionRecord, 'bytesUp' | 'bytesDown' | 'endedAt' | 'endReason'>
export type SessionEnd = {endedAt: string; bytesUp: number; bytesDown: number; endReason: string}

/**
 * Names are unique among live (unrevoked) records: creating a live name twice fails with
 * CONFLICT, and a revoked name may be created again. Timestamps are ISO 8601 strings made by the
 * gateway, so both stores keep the same clock and precision.
 */
export interface Store {
  /** Which implementation; `shared` stores may be used by several gateway replicas at once. */
  readonly kind: 'sqlite' | 'postgres'
  readonly shared: boolean

  createAgent(name: string, id: string, hash: string): Promise<AgentRecord>
  findAgentById(id: string): Promise<(AgentRecord & {hash: string}) | undefined>
  /** Live and revoked, by creation time, then name. */
  listAgents(): Promise<AgentRecord[]>
  revokeAgent(name: string): Promise<AgentRecord | undefined>
  touchAgent(name: string): Promise<void>

  createServiceAccount(name: string, groups: string[], id: string, hash: string): Promise<ServiceAccountRecord>
  findServiceAccountById(id: string): Promise<(ServiceAccountRecord & {hash: string}) | undefined>
  /** Live and revoked, by creation time, then name. */
  listServiceAccounts(): Promise<ServiceAccountRecord[]>
  revokeServiceAccount(name: string): Promise<ServiceAccountRecord | undefined>

  startSession(rec: SessionStart): Promise<void>
  endSession(id: string, end: SessionEnd): Promise<void>
  /** Newest first (ties by id, descending); at most `limit` (default 100). */
  listSessions(opts?: {limit?: number}): Promise<SessionRecord[]>
  /** Sessions without an end, oldest first: what a gateway that stopped left open. */
  listOpenSessions(): Promise<Array<{id: string; startedAt: string}>>

  /** Resolves when the store answers a query; for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}

/** The error both stores give when a live name is taken. */
export function nameTaken(kind: 'agent' | 'service account', name: string): HoopError {
  return new HoopError('CONFLICT', `${kind} "${name}" already exists; revoke it first`)
}
