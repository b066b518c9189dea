// Approvals on the PostgreSQL store that the replicas share (tables of migration 2), so an approval
// made on one replica is usable on another at once. Races between replicas are settled by the
// database: expiry and the spend of an approval are single conditional UPDATEs, and a decision holds
// the request's row lock (SELECT ... FOR UPDATE) from its checks to its write.
import type {Identity} from '../identity/types.js'
import type {PostgresStore} from '../store/postgres.js'
import {HoopError} from '../shared/errors.js'
import {nextState, recordFromRows, REQUEST_COLUMNS, requestValues, useView, type ApprovalStore, type ApprovalUseView, type NewRequest, type NewUse, type Owner} from './store.js'
import type {ApprovalDecisionRecord, ApprovalRecord, ApprovalState} from './types.js'

type Row = Record<string, unknown>
type Query = (sql: string, args?: unknown[]) => Promise<Row[]>

const OWNER = 'requester_kind = $1 AND requester_subject = $2 AND connection = $3 AND rule_id = $4'
const ownerArgs = (o: Owner) => [o.kind, o.subject, o.connection, o.ruleId]
const UNIQUE_VIOLATION = '23505'

export class PostgresApprovalStore implements ApprovalStore {
  private readonly q: Query

  constructor(private readonly store: PostgresStore) {
    this.q = (sql, args) => store.query(sql, args)
  }

  async expireDue(now: number): Promise<ApprovalRecord[]> {
    // One statement: a replica racing this one waits on the row locks, then finds the rows no
    // longer pending or approved, so each expiry is reported (and audited) once.
    const rows = await this.q(
      `UPDATE approval_requests SET state = 'expired', decided_at = CASE WHEN state = 'pending' THEN $1 ELSE decided_at END
       WHERE (state = 'pending' AND expires_at <= $1) OR (state = 'approved' AND valid_until <= $1) RETURNING *`,
      [now],
    )
    return this.records(rows)
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    return this.read(this.q, id)
  }

  async list(q: {state?: ApprovalState; requester?: Pick<Identity, 'kind' | 'subject'>; limit: number}): Promise<ApprovalRecord[]> {
    const where: string[] = []
    const args: unknown[] = []
    if (q.state) {
      args.push(q.state)
      where.push(`state = $${args.length}`)
    }
    if (q.requester) {
      args.push(q.requester.kind, q.requester.subject)
      where.push(`requester_kind = $${args.length - 1} AND requester_subject = $${args.length}`)
    }
    args.push(q.limit)
    const rows = await this.q(`SELECT * FROM approval_requests ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id LIMIT $${args.length}`, args)
    return this.records(rows)
  }

  async findGrant(owner: Owner, now: number): Promise<ApprovalRecord | undefined> {
    const [row] = await this.q(`SELECT * FROM approval_requests WHERE ${OWNER} AND scope = 'session' AND state = 'approved' AND valid_until > $5 ORDER BY valid_until DESC LIMIT 1`, [
      ...ownerArgs(owner),
      now,
    ])
    return row && (await this.records([row]))[0]
  }

  async openRequest(req: NewRequest): Promise<{approval: ApprovalRecord; created: boolean}> {
    const byHash = req.scope === 'session' ? [] : [req.statementHash ?? null]
    return this.store.transaction(async (q) => {
      // No row to lock before the request exists: a transaction-level advisory lock on the owner,
      // scope and statement makes "find, else insert" one step for every replica.
      await q('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [JSON.stringify([...ownerArgs(req.owner), req.scope, ...byHash])])
      const [row] = await q(`SELECT * FROM approval_requests WHERE ${OWNER} AND scope = $5 ${byHash.length ? 'AND statement_hash = $6' : ''} AND state = 'pending' ORDER BY created_at LIMIT 1`, [
        ...ownerArgs(req.owner),
        req.scope,
        ...byHash,
      ])
      if (row) return {approval: (await this.records([row], q))[0], created: false}
      const values = requestValues(req)
      const [made] = await q(`INSERT INTO approval_requests (${REQUEST_COLUMNS}) VALUES (${values.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING *`, values)
      return {approval: recordFromRows(made, []), created: true}
    })
  }

  async spend(owner: Owner, scope: 'statement' | 'repeat', statement: string, use: NewUse): Promise<ApprovalRecord | undefined> {
    return this.store.transaction(async (q) => {
      // The sub-select locks the row it picks; a replica spending the same approval at the same
      // time waits for that lock and then re-checks `state = 'approved'` against the committed row,
      // so a one-time approval is spent by exactly one of them. A repeat approval stays approved.
      const [row] = await q(
        `UPDATE approval_requests SET state = CASE WHEN scope = 'statement' THEN 'used' ELSE state END, used_at = COALESCE(used_at, $8)
         WHERE id = (SELECT id FROM approval_requests WHERE ${OWNER} AND scope = $5 AND statement_hash = $6 AND statement = $7
                     AND state = 'approved' AND valid_until > $8 ORDER BY created_at LIMIT 1 FOR UPDATE)
           AND state = 'approved' AND valid_until > $8
         RETURNING *`,
        [...ownerArgs(owner), scope, use.statementHash, statement, use.at],
      )
      if (!row) return undefined
      await insertUse(q, row.id as string, use)
      return (await this.records([row], q))[0]
    })
  }

  async recordUse(id: string, u: NewUse): Promise<boolean> {
    // "First use in this session" decides whether a grant's use is audited; a race between two
    // replicas can at worst audit it twice, never not at all.
    const [seen] = await this.q('SELECT 1 FROM approval_uses WHERE approval_id = $1 AND session_id IS NOT DISTINCT FROM $2 LIMIT 1', [id, u.session ?? null])
    await insertUse(this.q, id, u)
    return !seen
  }

  async explain(id: string, reason: string, durationSeconds: number): Promise<void> {
    await this.q(`UPDATE approval_requests SET request_reason = $2, duration_seconds = $3 WHERE id = $1 AND state = 'pending' AND request_reason IS NULL`, [id, reason, durationSeconds])
  }

  async decide(id: string, d: ApprovalDecisionRecord, now: number, check: (rec: ApprovalRecord) => void): Promise<ApprovalRecord> {
    try {
      return await this.store.transaction(async (q) => {
        // The row lock serialises decisions on one request across replicas: the second approver's
        // checks see the first one's decision and state.
        const [row] = await q('SELECT * FROM approval_requests WHERE id = $1 FOR UPDATE', [id])
        if (!row) throw new HoopError('NOT_FOUND', `no approval request ${id}`)
        const rec = (await this.records([row], q))[0]
        check(rec)
        await q('INSERT INTO approval_decisions (request_id, approver_kind, approver_subject, approver_json, decision, reason, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
          id,
          d.approver.kind,
          d.approver.subject,
          JSON.stringify(d.approver),
          d.decision,
          d.reason,
          now,
        ])
        const next = nextState(rec, d.decision, now)
        if (next) await q('UPDATE approval_requests SET state = $2, decided_at = $3, valid_until = $4 WHERE id = $1', [id, next.state, next.decidedAt, next.validUntil])
        return (await this.read(q, id))!
      })
    } catch (err) {
      if ((err as {code?: string}).code === UNIQUE_VIOLATION) throw new HoopError('CONFLICT', `${d.approver.name || d.approver.subject} already decided ${id}`)
      throw err
    }
  }

  async usesOf(viewer: Pick<Identity, 'kind' | 'subject'>, clientRequest: string): Promise<ApprovalUseView[]> {
    const rows = await this.q(
      `SELECT u.approval_id, u.session_id, u.used_at, r.scope, r.rule_id FROM approval_uses u JOIN approval_requests r ON r.id = u.approval_id
       WHERE u.client_request = $1 AND r.requester_kind = $2 AND r.requester_subject = $3 ORDER BY u.used_at, u.seq`,
      [clientRequest, viewer.kind, viewer.subject],
    )
    return rows.map(useView)
  }

  private async read(q: Query, id: string): Promise<ApprovalRecord | undefined> {
    const [row] = await q('SELECT * FROM approval_requests WHERE id = $1', [id])
    return row && (await this.records([row], q))[0]
  }

  /** Request rows with their decisions (one query for all of them). */
  private async records(rows: Row[], q: Query = this.q): Promise<ApprovalRecord[]> {
    if (rows.length === 0) return []
    const decisions = await q('SELECT * FROM approval_decisions WHERE request_id = ANY($1) ORDER BY decided_at, seq', [rows.map((r) => r.id)])
    return rows.map((r) =>
      recordFromRows(
        r,
        decisions.filter((d) => d.request_id === r.id),
      ),
    )
  }
}

async function insertUse(q: Query, id: string, u: NewUse): Promise<void> {
  await q('INSERT INTO approval_uses (approval_id, session_id, client_request, statement_hash, used_at) VALUES ($1, $2, $3, $4, $5)', [
    id,
    u.session ?? null,
    u.clientRequest ?? null,
    u.statementHash,
    u.at,
  ])
}
