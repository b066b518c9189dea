// SQLite store (better-sqlite3, WAL) in the gateway's data dir: the embedded default. Other parts
// (audit, approvals, recordings) create their own tables on the same handle through `db`. The
// methods are synchronous inside and async outside, to share the Store interface with PostgreSQL.
import Database from 'better-sqlite3'
import {chmodSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {nameTaken, type AgentRecord, type ServiceAccountRecord, type SessionEnd, type SessionRecord, type SessionStart, type Store} from './types.js'
import {agentFromRow, serviceAccountFromRow, sessionFromRow, type Row} from './rows.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT, last_seen_at TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS agents_live_name ON agents(name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS service_accounts (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, groups_json TEXT NOT NULL, hash TEXT NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS sa_live_name ON service_accounts(name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, subject TEXT NOT NULL, identity_kind TEXT NOT NULL, connection TEXT NOT NULL,
  agent TEXT NOT NULL, client_address TEXT, started_at TEXT NOT NULL, ended_at TEXT,
  bytes_up INTEGER NOT NULL DEFAULT 0, bytes_down INTEGER NOT NULL DEFAULT 0, end_reason TEXT);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions(started_at);
`

export function openDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, {recursive: true, mode: 0o700})
  const file = join(dataDir, 'hoop.db')
  const db = new Database(file)
  chmodSync(file, 0o600)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.pragma('busy_timeout = 5000')
  return db
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite'
  readonly shared = false
  readonly db: Database.Database

  constructor(dataDir: string) {
    this.db = openDatabase(dataDir)
    this.db.exec(SCHEMA)
  }

  async createAgent(name: string, id: string, hash: string): Promise<AgentRecord> {
    const createdAt = new Date().toISOString()
    try {
      this.db.prepare('INSERT INTO agents (id, name, hash, created_at) VALUES (?, ?, ?, ?)').run(id, name, hash, createdAt)
    } catch (err) {
      if (String(err).includes('UNIQUE')) throw nameTaken('agent', name)
      throw err
    }
    return {id, name, createdAt}
  }

  async findAgentById(id: string): Promise<(AgentRecord & {hash: string}) | undefined> {
    const row = this.db.prepare('SELECT * FROM agents WHERE id = ?').get(id) as Row | undefined
    return row ? {...agentFromRow(row), hash: row.hash as string} : undefined
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (this.db.prepare('SELECT * FROM agents ORDER BY created_at, name').all() as Row[]).map(agentFromRow)
  }

  async revokeAgent(name: string): Promise<AgentRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM agents WHERE name = ? AND revoked_at IS NULL').get(name) as Row | undefined
    if (!row) return undefined
    const at = new Date().toISOString()
    this.db.prepare('UPDATE agents SET revoked_at = ? WHERE id = ?').run(at, row.id)
    return {...agentFromRow(row), revokedAt: at}
  }

  async touchAgent(name: string): Promise<void> {
    this.db.prepare('UPDATE agents SET last_seen_at = ? WHERE name = ? AND revoked_at IS NULL').run(new Date().toISOString(), name)
  }

  async createServiceAccount(name: string, groups: string[], id: string, hash: string): Promise<ServiceAccountRecord> {
    const createdAt = new Date().toISOString()
    try {
      this.db
        .prepare('INSERT INTO service_accounts (id, name, groups_json, hash, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(id, name, JSON.stringify(groups), hash, createdAt)
    } catch (err) {
      if (String(err).includes('UNIQUE')) throw nameTaken('service account', name)
      throw err
    }
    return {id, name, groups, createdAt}
  }

  async findServiceAccountById(id: string): Promise<(ServiceAccountRecord & {hash: string}) | undefined> {
    const row = this.db.prepare('SELECT * FROM service_accounts WHERE id = ?').get(id) as Row | undefined
    return row ? {...serviceAccountFromRow(row), hash: row.hash as string} : undefined
  }

  async listServiceAccounts(): Promise<ServiceAccountRecord[]> {
    return (this.db.prepare('SELECT * FROM service_accounts ORDER BY created_at, name').all() as Row[]).map(serviceAccountFromRow)
  }

  async revokeServiceAccount(name: string): Promise<ServiceAccountRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM service_accounts WHERE name = ? AND revoked_at IS NULL').get(name) as Row | undefined
    if (!row) return undefined
    const at = new Date().toISOString()
    this.db.prepare('UPDATE service_accounts SET revoked_at = ? WHERE id = ?').run(at, row.id)
    return {...serviceAccountFromRow(row), revokedAt: at}
  }

  async startSession(rec: SessionStart): Promise<void> {
    this.db
      .prepare(
        'INSERT INTO sessions (id, subject, identity_kind, connection, agent, client_address, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(rec.id, rec.subject, rec.identityKind, rec.connection, rec.agent, rec.clientAddress ?? null, rec.startedAt)
  }

  async endSession(id: string, end: SessionEnd): Promise<void> {
    this.db
      .prepare('UPDATE sessions SET ended_at = ?, bytes_up = ?, bytes_down = ?, end_reason = ? WHERE id = ?')
      .run(end.endedAt, end.bytesUp, end.bytesDown, end.endReason, id)
  }

  async listSessions(opts: {limit?: number} = {}): Promise<SessionRecord[]> {
    const rows = this.db.prepare('SELECT * FROM sessions ORDER BY started_at DESC, id DESC LIMIT ?').all(opts.limit ?? 100) as Row[]
    return rows.map(sessionFromRow)
  }

  async listOpenSessions(): Promise<Array<{id: string; startedAt: string}>> {
    const rows = this.db.prepare('SELECT id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY started_at, id').all() as Row[]
    return rows.map((r) => ({id: r.id as string, startedAt: r.started_at as string}))
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get()
  }

  async close(): Promise<void> {
    this.db.close()
  }
}

