// The storage interface. SQLite is the embedded default; a PostgreSQL implementation follows the
// same interface and the same conformance tests.

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

export interface Store {
  createAgent(name: string, id: string, hash: string): AgentRecord
  findAgentById(id: string): (AgentRecord & {hash: string}) | undefined
  listAgents(): AgentRecord[]
  revokeAgent(name: string): AgentRecord | undefined
  touchAgent(name: string): void

  createServiceAccount(name: string, groups: string[], id: string, hash: string): ServiceAccountRecord
  findServiceAccountById(id: string): (ServiceAccountRecord & {hash: string}) | undefined
  listServiceAccounts(): ServiceAccountRecord[]
  revokeServiceAccount(name: string): ServiceAccountRecord | undefined

  startSession(rec: Omit<SessionRecord, 'bytesUp' | 'bytesDown' | 'endedAt' | 'endReason'>): void
  endSession(id: string, end: {endedAt: string; bytesUp: number; bytesDown: number; endReason: string}): void
  listSessions(opts?: {limit?: number}): SessionRecord[]

  close(): void
}
