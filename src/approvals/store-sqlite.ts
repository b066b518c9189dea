// Approvals in the data dir's SQLite file, on the gateway's one handle. The schema is the one hoop
// has always used, so existing data dirs keep their approvals. better-sqlite3 is synchronous, so
// each method's reads and writes run in one IMMEDIATE transaction and nothing interleaves with them.
import type Database from 'better-sqlite3'
import type {Identity} from '../identity/types.js'
import {HoopError} from '../shared/errors.js'
import {nextState, recordFromRows, REQUEST_COLUMNS, requestValues, useView, type ApprovalStore, type ApprovalUseView, type NewRequest, type NewUse, type Owner} from './store.js'
import type {ApprovalDecisionRecord, ApprovalRecord, ApprovalState} from './types.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS approval_requests (
  id TEXT PRIMARY KEY, state TEXT NOT NULL, scope TEXT NOT NULL, rule_id TEXT NOT NULL,
  connection TEXT NOT NULL, requester_kind TEXT NOT NULL, requester_subject TEXT NOT NULL,
  requester_json TEXT NOT NULL, statement TEXT, statement_hash TEXT, request_reason TEXT,
  approvals_required INTEGER NOT NULL, approvers_json TEXT NOT NULL, ttl_seconds INTEGER NOT NULL,
  duration_seconds INTEGER, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  decided_at INTEGER, valid_until INTEGER, used_at INTEGER);
CREATE INDEX IF NOT EXISTS approval_requests_owner
  ON approval_requests(requester_kind, requester_subject, connection, rule_id, state);
CREATE INDEX IF NOT EXISTS approval_requests_state ON approval_requests(state, created_at);
CREATE TABLE IF NOT EXISTS approval_uses (
  approval_id TEXT NOT NULL REFERENCES approval_requests(id), session_id TEXT, client_request TEXT,
  statement_hash TEXT NOT NULL, used_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS approval_uses_approval ON approval_uses(approval_id, session_id);
CREATE INDEX IF NOT EXISTS approval_uses_request ON approval_uses(client_request);
CREATE TABLE IF NOT EXISTS approval_decisions (
  request_id TEXT NOT NULL REFERENCES approval_requests(id), approver_kind TEXT NOT NULL,
  approver_subject TEXT NOT NULL, approver_json TEXT NOT NULL, decision TEXT NOT NULL,
  reason TEXT NOT NULL, decided_at INTEGER NOT NULL,
  PRIMARY KEY (request_id, approver_kind, approver_subject));
`

type Row = Record<string, unknown>

const OWNER = 'requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?'
const ownerArgs = (o: Owner) => [o.kind, o.subject, o.connection, o.ruleId]

export class SqliteApprovalStore implements ApprovalStore {
  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA)
    // Stores made before requests kept their session.
    const cols = (db.prepare('PRAGMA table_info(approval_requests)').all() as {name: string}[]).map((c) => c.name)
    if (!cols.includes('session_id')) db.exec('ALTER TABLE approval_requests ADD COLUMN session_id TEXT')
  }

  async expireDue(now: number): Promise<ApprovalRecord[]> {
    const due = this.db
      .prepare(`SELECT id, state FROM approval_requests WHERE (state = 'pending' AND expires_at <= ?) OR (state = 'approved' AND valid_until <= ?)`)
      .all(now, now) as Row[]
    // Most calls find nothing due: only then is the write lock worth taking.
    if (due.length === 0) return []
    // An approved request keeps its approval time as decided_at; a pending one expires now.
    const mark = this.db.prepare(`UPDATE approval_requests SET state = 'expired', decided_at = CASE WHEN state = 'pending' THEN ? ELSE decided_at END WHERE id = ? AND state = ?`)
    return this.tx(() => due.filter((r) => mark.run(now, r.id, r.state).changes === 1).map((r) => this.read(r.id as string)!))
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    return this.read(id)
  }

  async list(q: {state?: ApprovalState; requester?: Pick<Identity, 'kind' | 'subject'>; limit: number}): Promise<ApprovalRecord[]> {
    const where: string[] = []
    const args: unknown[] = []
    if (q.state) {
      where.push('state = ?')
      args.push(q.state)
    }
    if (q.requester) {
      where.push('requester_kind = ? AND requester_subject = ?')
      args.push(q.requester.kind, q.requester.subject)
    }
    const sql = `SELECT * FROM approval_requests ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id LIMIT ?`
    return (this.db.prepare(sql).all(...args, q.limit) as Row[]).map((r) => this.record(r))
  }

  async findGrant(owner: Owner, now: number): Promise<ApprovalRecord | undefined> {
    const row = this.db
      .prepare(`SELECT * FROM approval_requests WHERE ${OWNER} AND scope = 'session' AND state = 'approved' AND valid_until > ? ORDER BY valid_until DESC LIMIT 1`)
      .get(...ownerArgs(owner), now) as Row | undefined
    return row && this.record(row)
  }

  async openRequest(req: NewRequest): Promise<{approval: ApprovalRecord; created: boolean}> {
    return this.tx(() => {
      const byHash = req.scope === 'session' ? [] : [req.statementHash ?? null]
      const row = this.db
        .prepare(`SELECT * FROM approval_requests WHERE ${OWNER} AND scope = ? ${byHash.length ? 'AND statement_hash = ?' : ''} AND state = 'pending' ORDER BY created_at LIMIT 1`)
        .get(...ownerArgs(req.owner), req.scope, ...byHash) as Row | undefined
      if (row) return {approval: this.record(row), created: false}
      this.db.prepare(`INSERT INTO approval_requests (${REQUEST_COLUMNS}) VALUES (${REQUEST_COLUMNS.split(',').map(() => '?').join(', ')})`).run(...requestValues(req))
      return {approval: this.read(req.id)!, created: true}
    })
  }

  async spend(owner: Owner, scope: 'statement' | 'repeat', statement: string, use: NewUse): Promise<ApprovalRecord | undefined> {
    return this.tx(() => {
      const row = this.db
        .prepare(`SELECT id FROM approval_requests WHERE ${OWNER} AND scope = ? AND statement_hash = ? AND statement = ? AND state = 'approved' AND valid_until > ? ORDER BY created_at LIMIT 1`)
        .get(...ownerArgs(owner), scope, use.statementHash, statement, use.at) as Row | undefined
      if (!row) return undefined
      // One-time: used up. Repeat: stays approved until valid_until; used_at is its first run.
      const state = scope === 'statement' ? 'used' : 'approved'
      this.db.prepare(`UPDATE approval_requests SET state = ?, used_at = COALESCE(used_at, ?) WHERE id = ?`).run(state, use.at, row.id)
      this.insertUse(row.id as string, use)
      return this.read(row.id as string)
    })
  }

  async recordUse(id: string, u: NewUse): Promise<boolean> {
    return this.tx(() => {
      const seen = this.db.prepare('SELECT 1 FROM approval_uses WHERE approval_id = ? AND session_id IS ?').get(id, u.session ?? null)
      this.insertUse(id, u)
      return !seen
    })
  }

  async explain(id: string, reason: string, durationSeconds: number): Promise<void> {
    this.db.prepare(`UPDATE approval_requests SET request_reason = ?, duration_seconds = ? WHERE id = ? AND state = 'pending' AND request_reason IS NULL`).run(reason, durationSeconds, id)
  }

  async decide(id: string, d: ApprovalDecisionRecord, now: number, check: (rec: ApprovalRecord) => void): Promise<ApprovalRecord> {
    return this.tx(() => {
      const rec = this.read(id)
      if (!rec) throw new HoopError('NOT_FOUND', `no approval request ${id}`)
      check(rec)
      this.db
        .prepare('INSERT INTO approval_decisions (request_id, approver_kind, approver_subject, approver_json, decision, reason, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, d.approver.kind, d.approver.subject, JSON.stringify(d.approver), d.decision, d.reason, now)
      const next = nextState(rec, d.decision, now)
      if (next) this.db.prepare('UPDATE approval_requests SET state = ?, decided_at = ?, valid_until = ? WHERE id = ?').run(next.state, next.decidedAt, next.validUntil, id)
      return this.read(id)!
    })
  }

  async usesOf(viewer: Pick<Identity, 'kind' | 'subject'>, clientRequest: string): Promise<ApprovalUseView[]> {
    const rows = this.db
      .prepare(`SELECT u.approval_id, u.session_id, u.used_at, r.scope, r.rule_id FROM approval_uses u JOIN approval_requests r ON r.id = u.approval_id
                WHERE u.client_request = ? AND r.requester_kind = ? AND r.requester_subject = ? ORDER BY u.used_at, u.rowid`)
      .all(clientRequest, viewer.kind, viewer.subject) as Row[]
    return rows.map(useView)
  }

  /**
   * IMMEDIATE: take the write lock up front. A deferred transaction that reads and then writes fails
   * at once with SQLITE_BUSY_SNAPSHOT when the audit writer (another connection) committed in
   * between; busy_timeout does not help there.
   */
  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate()
  }

  private insertUse(id: string, u: NewUse): void {
    this.db
      .prepare('INSERT INTO approval_uses (approval_id, session_id, client_request, statement_hash, used_at) VALUES (?, ?, ?, ?, ?)')
      .run(id, u.session ?? null, u.clientRequest ?? null, u.statementHash, u.at)
  }

  private read(id: string): ApprovalRecord | undefined {
    const row = this.db.prepare('SELECT * FROM approval_requests WHERE id = ?').get(id) as Row | undefined
    return row && this.record(row)
  }

  private record(r: Row): ApprovalRecord {
    return recordFromRows(r, this.db.prepare('SELECT * FROM approval_decisions WHERE request_id = ? ORDER BY decided_at, rowid').all(r.id) as Row[])
  }
}
