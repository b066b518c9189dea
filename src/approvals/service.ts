// Just-in-time approvals: requests, decisions, one-time consumption and time-boxed grants, kept in
// two SQLite tables on the gateway's database handle. Pure logic over a database and a clock: no
// sockets, so every rule here is testable with a temp file and an injected clock.
//
// Rules (see docs/approvals.md):
// - an approver must match the rule's approvers and must not be the requester (same kind + subject);
// - N approvals from distinct approvers approve; one rejection ends the request;
// - pending requests expire ttlSeconds after creation; an approved one-time approval expires
//   ttlSeconds after approval if unused; a session grant ends after its duration. Expiry is
//   computed lazily on every call and stored;
// - a one-time approval is bound to requester + connection + rule + SHA-256 of the exact
//   statement text, and is consumed by the first statement it matches; a repeat approval is bound
//   the same way and covers every run of that text until ttlSeconds after approval, each run kept
//   as a use and audited (approval.used).
import {createHash, randomBytes} from 'node:crypto'
import {EventEmitter} from 'node:events'
import type Database from 'better-sqlite3'
import type {Identity} from '../identity/types.js'
import {isApprover} from '../policy/evaluate.js'
import {formatDuration} from '../policy/glob.js'
import type {ReviewDecision, ReviewScope, SubjectMatcher} from '../policy/types.js'
import {HoopError} from '../shared/errors.js'
import {
  APPROVAL_STATES,
  type ApprovalDecisionRecord,
  type ApprovalEventHook,
  type ApprovalEventKind,
  type ApprovalId,
  type ApprovalRecord,
  type ApprovalState,
  type ApprovalUse,
  type ListFilter,
  type ResolveResult,
} from './types.js'

const MAX_REASON_CHARS = 1000
const MAX_STATEMENT_CHARS = 1024 * 1024
/** Upper bound for one long-poll. */
export const MAX_WAIT_SECONDS = 60
/** How often a waiting call re-reads the database (expiry, decisions made by another process). */
const WAIT_RECHECK_MS = 1000

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

interface ApprovalServiceOptions {
  /** Milliseconds since epoch; injected by tests. */
  now?: () => number
  /** Called after every state change (the gateway wires it to the audit log). */
  onEvent?: ApprovalEventHook
}

interface ResolveInput {
  identity: Identity
  connection: string
  /** What the approval binds to: the SQL text, or an HTTP request's method, target and body hash. */
  statement: string
  review: ReviewDecision
  /** The session the statement came from: recorded on a new request and on each use. */
  session?: string
  /** The client's own id for its run (`hoop exec`), so it can ask which approval it used. */
  clientRequest?: string
}

/** One use of an approval by a statement, as `usesOf` returns it. */
export interface ApprovalUseView {
  approvalId: string
  scope: ReviewScope
  ruleId: string
  session?: string
  usedAt: string
}

interface AccessRequestInput {
  identity: Identity
  connection: string
  /** A review rule with scope `session` that applies to the requester on the connection. */
  review: ReviewDecision
  reason: string
  /** Requested length of access; default and maximum: the rule's ttl. */
  durationSeconds?: number
}

function newApprovalId(): ApprovalId {
  return ('apr_' + randomBytes(9).toString('base64url')) as ApprovalId
}

function statementHash(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex')
}

/** Same person or account: kind and subject both equal. */
function sameIdentity(a: Pick<Identity, 'kind' | 'subject'>, b: Pick<Identity, 'kind' | 'subject'>): boolean {
  return a.kind === b.kind && a.subject === b.subject
}

/** The justification rule: required, trimmed, at most 1000 characters. */
function checkReason(reason: unknown, what = 'reason'): string {
  if (typeof reason !== 'string' || reason.trim() === '') throw new HoopError('INVALID_INPUT', `a ${what} is required (--reason "why")`)
  const text = reason.trim()
  if (text.length > MAX_REASON_CHARS) throw new HoopError('INVALID_INPUT', `the ${what} has ${text.length} characters; the limit is ${MAX_REASON_CHARS}`)
  return text
}

function describeMatcher(m: SubjectMatcher): string {
  const parts: string[] = []
  if (m.groups?.length) parts.push(`groups ${m.groups.join(', ')}`)
  if (m.users?.length) parts.push(`users ${m.users.join(', ')}`)
  if (m.serviceAccounts?.length) parts.push(`service accounts ${m.serviceAccounts.join(', ')}`)
  if (m.clients?.length) parts.push(`clients ${m.clients.join(', ')}`)
  if (m.ci?.length) parts.push(`${m.ci.length} CI identity rule(s)`)
  return parts.join('; ') || 'nobody'
}

/** Who an identity is in messages: "alice@example.com (user)". */
function who(i: Pick<Identity, 'kind' | 'name' | 'subject'>): string {
  return `${i.name || i.subject} (${i.kind})`
}

export class ApprovalService {
  onEvent?: ApprovalEventHook
  private readonly now: () => number
  private readonly changes = new EventEmitter()
  private readonly queue: Array<[ApprovalEventKind, ApprovalRecord, ApprovalDecisionRecord?, ApprovalUse?]> = []

  constructor(
    readonly db: Database.Database,
    opts: ApprovalServiceOptions = {},
  ) {
    this.now = opts.now ?? Date.now
    this.onEvent = opts.onEvent
    this.changes.setMaxListeners(0)
    db.exec(SCHEMA)
    // Stores made before requests kept their session.
    const cols = (db.prepare('PRAGMA table_info(approval_requests)').all() as {name: string}[]).map((c) => c.name)
    if (!cols.includes('session_id')) db.exec('ALTER TABLE approval_requests ADD COLUMN session_id TEXT')
  }

  // -------------------------------------------------------------------------------------------
  // Engines: a statement needs review.

  /**
   * A statement needs review. Returns `approved` when an approval covers it (a one-time approval
   * for this exact statement is consumed here; a session grant is not), else the pending request
   * for the same requester + connection + rule (+ statement), created when there is none.
   */
  resolve(input: ResolveInput): ResolveResult {
    const {identity, connection, statement: sql, review, session} = input
    if (sql.length > MAX_STATEMENT_CHARS) throw new HoopError('INVALID_INPUT', `statement of ${sql.length} characters exceeds the approval limit of ${MAX_STATEMENT_CHARS}`)
    this.expireDue()
    const hash = statementHash(sql)
    const now = this.now()
    const owner = [identity.kind, identity.subject, connection, review.ruleId] as const
    return this.tx((): ResolveResult => {
      if (review.scope === 'session') {
        const grant = this.db
          .prepare(`SELECT * FROM approval_requests WHERE requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?
                    AND scope = 'session' AND state = 'approved' AND valid_until > ? ORDER BY valid_until DESC LIMIT 1`)
          .get(...owner, now) as Row | undefined
        if (grant) {
          const rec = this.record(grant)
          // Every use is kept; the first in each session is an audit event (approval.used).
          const first = this.recordUse(rec, {session, clientRequest: input.clientRequest, hash, now})
          if (first) this.queue.push(['used', rec, undefined, {session, statement: sql, at: new Date(now).toISOString()}])
          return {status: 'approved', approval: rec}
        }
        const pending = this.db
          .prepare(`SELECT * FROM approval_requests WHERE requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?
                    AND scope = 'session' AND state = 'pending' ORDER BY created_at LIMIT 1`)
          .get(...owner) as Row | undefined
        if (pending) return {status: 'pending', approval: this.record(pending)}
        return {status: 'pending', approval: this.insert({identity, connection, review, sql, hash, durationSeconds: review.ttlSeconds, session})}
      }
      // statement or repeat: the approval names this exact text. The scope the rule says now must
      // match the request's, so changing a rule's scope never stretches an approval already given.
      const approved = this.db
        .prepare(`SELECT * FROM approval_requests WHERE requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?
                  AND scope = ? AND statement_hash = ? AND state = 'approved' AND valid_until > ? ORDER BY created_at LIMIT 1`)
        .get(...owner, review.scope, hash, now) as Row | undefined
      if (approved && (approved.statement as string) === sql) {
        // One-time: used up. Repeat: stays approved until valid_until; used_at is its first run.
        if (review.scope === 'repeat') this.db.prepare(`UPDATE approval_requests SET used_at = COALESCE(used_at, ?) WHERE id = ?`).run(now, approved.id)
        else this.db.prepare(`UPDATE approval_requests SET state = 'used', used_at = ? WHERE id = ? AND state = 'approved'`).run(now, approved.id)
        const used = this.get(approved.id as string)
        this.recordUse(used, {session, clientRequest: input.clientRequest, hash, now})
        this.queue.push(['used', used, undefined, {session, statement: sql, at: new Date(now).toISOString()}])
        return {status: 'approved', approval: used}
      }
      const pending = this.db
        .prepare(`SELECT * FROM approval_requests WHERE requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?
                  AND scope = ? AND statement_hash = ? AND state = 'pending' ORDER BY created_at LIMIT 1`)
        .get(...owner, review.scope, hash) as Row | undefined
      if (pending) return {status: 'pending', approval: this.record(pending)}
      return {status: 'pending', approval: this.insert({identity, connection, review, sql, hash, session})}
    })
  }

  /** Keeps one use of an approval; true when it is the first use in that session. */
  private recordUse(rec: ApprovalRecord, u: {session?: string; clientRequest?: string; hash: string; now: number}): boolean {
    const seen = this.db.prepare('SELECT 1 FROM approval_uses WHERE approval_id = ? AND session_id IS ?').get(rec.id, u.session ?? null)
    this.db
      .prepare('INSERT INTO approval_uses (approval_id, session_id, client_request, statement_hash, used_at) VALUES (?, ?, ?, ?, ?)')
      .run(rec.id, u.session ?? null, u.clientRequest ?? null, u.hash, u.now)
    return !seen
  }

  /** The approvals the viewer's statements used in one client run (`hoop exec` asks after it ran). */
  usesOf(viewer: Identity, clientRequest: string): ApprovalUseView[] {
    const rows = this.db
      .prepare(`SELECT u.approval_id, u.session_id, u.used_at, r.scope, r.rule_id FROM approval_uses u JOIN approval_requests r ON r.id = u.approval_id
                WHERE u.client_request = ? AND r.requester_kind = ? AND r.requester_subject = ? ORDER BY u.used_at, u.rowid`)
      .all(clientRequest, viewer.kind, viewer.subject) as Row[]
    return rows.map((r) => ({
      approvalId: r.approval_id as string,
      scope: r.scope as ReviewScope,
      ruleId: r.rule_id as string,
      session: (r.session_id as string | null) ?? undefined,
      usedAt: new Date(r.used_at as number).toISOString(),
    }))
  }

  /** Time-boxed access: ask for every statement of a session-scope review rule on a connection. */
  requestAccess(input: AccessRequestInput): ResolveResult {
    const {identity, connection, review} = input
    if (review.scope !== 'session') throw new HoopError('INVALID_INPUT', `rule ${review.ruleId} approves single statements, not time-boxed access`)
    const reason = checkReason(input.reason, 'reason for access')
    const duration = input.durationSeconds ?? review.ttlSeconds
    if (!Number.isSafeInteger(duration) || duration < 1) throw new HoopError('INVALID_INPUT', 'duration must be a positive number of seconds')
    if (duration > review.ttlSeconds) {
      throw new HoopError('INVALID_INPUT', `duration ${formatDuration(duration)} exceeds the ${formatDuration(review.ttlSeconds)} rule ${review.ruleId} allows`)
    }
    this.expireDue()
    const now = this.now()
    const owner = [identity.kind, identity.subject, connection, review.ruleId] as const
    return this.tx((): ResolveResult => {
      const grant = this.db
        .prepare(`SELECT * FROM approval_requests WHERE requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?
                  AND scope = 'session' AND state = 'approved' AND valid_until > ? ORDER BY valid_until DESC LIMIT 1`)
        .get(...owner, now) as Row | undefined
      if (grant) return {status: 'approved', approval: this.record(grant)}
      const pending = this.db
        .prepare(`SELECT * FROM approval_requests WHERE requester_kind = ? AND requester_subject = ? AND connection = ? AND rule_id = ?
                  AND scope = 'session' AND state = 'pending' ORDER BY created_at LIMIT 1`)
        .get(...owner) as Row | undefined
      if (pending) {
        // A request made by an engine has no justification yet: the requester's explanation helps the approver.
        if (pending.request_reason === null) {
          this.db.prepare('UPDATE approval_requests SET request_reason = ?, duration_seconds = ? WHERE id = ?').run(reason, duration, pending.id)
          return {status: 'pending', approval: this.get(pending.id as string)}
        }
        return {status: 'pending', approval: this.record(pending)}
      }
      return {status: 'pending', approval: this.insert({identity, connection, review, reason, durationSeconds: duration})}
    })
  }

  // -------------------------------------------------------------------------------------------
  // Approvers.

  approve(id: string, approver: Identity, reason: string): ApprovalRecord {
    return this.decide(id, approver, 'approve', reason)
  }

  reject(id: string, approver: Identity, reason: string): ApprovalRecord {
    return this.decide(id, approver, 'reject', reason)
  }

  private decide(id: string, approver: Identity, decision: 'approve' | 'reject', reasonIn: string): ApprovalRecord {
    const reason = checkReason(reasonIn, 'justification')
    this.expireDue()
    return this.tx((): ApprovalRecord => {
      const rec = this.mustGet(id)
      const verb = decision === 'approve' ? 'approve' : 'reject'
      if (sameIdentity(rec.requester, approver)) {
        throw new HoopError('ACCESS_DENIED', `${who(approver)} requested ${rec.id} and cannot ${verb} it: a request needs an approver other than the requester`)
      }
      if (!isApprover({approvers: rec.approvers}, approver)) {
        throw new HoopError('ACCESS_DENIED', `${who(approver)} is not an approver for rule ${rec.ruleId} (approvers: ${describeMatcher(rec.approvers)})`)
      }
      if (rec.state !== 'pending') throw new HoopError('CONFLICT', `request ${rec.id} is ${rec.state}${rec.decidedAt ? ` since ${rec.decidedAt}` : ''}; only pending requests can be decided`)
      if (rec.decisions.some((d) => sameIdentity(d.approver, approver))) {
        throw new HoopError('CONFLICT', `${who(approver)} already approved ${rec.id}; it needs ${rec.approvalsRequired - approvalsOf(rec)} more approval(s) from other approvers`)
      }
      const now = this.now()
      const d: ApprovalDecisionRecord = {decision, approver: storedIdentity(approver), reason, at: new Date(now).toISOString()}
      this.db
        .prepare('INSERT INTO approval_decisions (request_id, approver_kind, approver_subject, approver_json, decision, reason, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(rec.id, approver.kind, approver.subject, JSON.stringify(d.approver), decision, reason, now)
      let kind: ApprovalEventKind = 'approval'
      if (decision === 'reject') {
        this.db.prepare(`UPDATE approval_requests SET state = 'rejected', decided_at = ? WHERE id = ?`).run(now, rec.id)
        kind = 'rejected'
      } else if (approvalsOf(rec) + 1 >= rec.approvalsRequired) {
        const validFor = rec.scope === 'session' ? (rec.durationSeconds ?? rec.ttlSeconds) : rec.ttlSeconds
        this.db.prepare(`UPDATE approval_requests SET state = 'approved', decided_at = ?, valid_until = ? WHERE id = ?`).run(now, now + validFor * 1000, rec.id)
        kind = 'approved'
      }
      const after = this.get(rec.id)
      this.queue.push([kind, after, d])
      return after
    })
  }

  // -------------------------------------------------------------------------------------------
  // Reading.

  /** A request the viewer may see (requester or approver); NOT_FOUND / ACCESS_DENIED otherwise. */
  show(id: string, viewer: Identity): ApprovalRecord {
    this.expireDue()
    const rec = this.mustGet(id)
    if (!canSee(rec, viewer)) throw new HoopError('ACCESS_DENIED', `${who(viewer)} is neither the requester nor an approver of ${rec.id}`)
    return rec
  }

  /** Requests the viewer made or may approve, newest first. Default state: pending. */
  list(viewer: Identity, filter: ListFilter = {}): ApprovalRecord[] {
    this.expireDue()
    const state = filter.state ?? 'pending'
    if (state !== 'all' && !(APPROVAL_STATES as readonly string[]).includes(state)) {
      throw new HoopError('INVALID_INPUT', `unknown state "${state}"; use one of ${[...APPROVAL_STATES, 'all'].join(', ')}`)
    }
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000)
    const where: string[] = []
    const params: unknown[] = []
    if (state !== 'all') {
      where.push('state = ?')
      params.push(state)
    }
    if (filter.mine) {
      where.push('requester_kind = ? AND requester_subject = ?')
      params.push(viewer.kind, viewer.subject)
    }
    const sql = `SELECT * FROM approval_requests ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id LIMIT ?`
    // Visibility is judged per row (approver matchers are globs), so scan a bounded window.
    const rows = this.db.prepare(sql).all(...params, limit * 10) as Row[]
    const out: ApprovalRecord[] = []
    for (const r of rows) {
      const rec = this.record(r)
      if (canSee(rec, viewer)) out.push(rec)
      if (out.length >= limit) break
    }
    return out
  }

  /**
   * Resolves once the request is no longer pending, or after `timeoutMs` with it still pending.
   * Sees decisions made in this process at once and others (and expiry) within a second.
   */
  async wait(id: string, viewer: Identity, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalRecord> {
    const first = this.show(id, viewer)
    if (first.state !== 'pending' || timeoutMs <= 0) return first
    return new Promise<ApprovalRecord>((resolve, reject) => {
      const check = () => {
        try {
          this.expireDue()
          const rec = this.mustGet(id)
          if (rec.state !== 'pending') finish(rec)
        } catch (err) {
          cleanup()
          reject(err)
        }
      }
      const onChange = (changed: string) => {
        if (changed === id) check()
      }
      const timer = setInterval(check, WAIT_RECHECK_MS)
      const deadline = setTimeout(() => finish(this.mustGet(id)), timeoutMs)
      const onAbort = () => finish(this.mustGet(id))
      const cleanup = () => {
        clearInterval(timer)
        clearTimeout(deadline)
        this.changes.off('change', onChange)
        signal?.removeEventListener('abort', onAbort)
      }
      const finish = (rec: ApprovalRecord) => {
        cleanup()
        resolve(rec)
      }
      this.changes.on('change', onChange)
      signal?.addEventListener('abort', onAbort, {once: true})
    })
  }

  /** Stores `expired` for every request whose time ran out; returns how many changed. */
  expireDue(): number {
    const now = this.now()
    const rows = this.db
      .prepare(`SELECT * FROM approval_requests WHERE (state = 'pending' AND expires_at <= ?) OR (state = 'approved' AND valid_until <= ?)`)
      .all(now, now) as Row[]
    if (rows.length === 0) return 0
    const mark = this.db.prepare(`UPDATE approval_requests SET state = 'expired', decided_at = COALESCE(decided_at, ?) WHERE id = ? AND state = ?`)
    return this.tx(() => {
      let n = 0
      for (const r of rows) {
        // An approved request keeps its approval time as decided_at; a pending one expires now.
        if (mark.run(r.state === 'pending' ? now : null, r.id, r.state).changes === 1) {
          this.queue.push(['expired', this.get(r.id as string)])
          n++
        }
      }
      return n
    })
  }

  // -------------------------------------------------------------------------------------------

  private insert(o: {identity: Identity; connection: string; review: ReviewDecision; sql?: string; hash?: string; reason?: string; durationSeconds?: number; session?: string}): ApprovalRecord {
    const now = this.now()
    const id = newApprovalId()
    this.db
      .prepare(
        `INSERT INTO approval_requests (id, state, scope, rule_id, connection, requester_kind, requester_subject, requester_json,
           statement, statement_hash, request_reason, approvals_required, approvers_json, ttl_seconds, duration_seconds, created_at, expires_at, session_id)
         VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        o.review.scope,
        o.review.ruleId,
        o.connection,
        o.identity.kind,
        o.identity.subject,
        JSON.stringify(storedIdentity(o.identity)),
        o.sql ?? null,
        o.hash ?? null,
        o.reason ?? null,
        Math.max(1, o.review.approvals),
        JSON.stringify(o.review.approvers),
        o.review.ttlSeconds,
        o.durationSeconds ?? null,
        now,
        now + o.review.ttlSeconds * 1000,
        o.session ?? null,
      )
    const rec = this.get(id)
    this.queue.push(['requested', rec])
    return rec
  }

  /** Runs `fn` in one transaction; events it queued fire after the commit (and are dropped on rollback). */
  private tx<T>(fn: () => T): T {
    let result: T
    try {
      // IMMEDIATE: take the write lock up front. A deferred transaction that reads and then writes
      // fails at once with SQLITE_BUSY_SNAPSHOT when the audit writer (another connection) committed
      // in between; busy_timeout does not help there.
      result = this.db.transaction(fn).immediate()
    } catch (err) {
      this.queue.length = 0
      throw err
    }
    const events = this.queue.splice(0)
    for (const [kind, rec, decision, use] of events) {
      this.changes.emit('change', rec.id)
      try {
        this.onEvent?.(kind, rec, decision, use)
      } catch {
        // The audit hook reports its own failures; a state change already stored stays stored.
      }
    }
    return result
  }

  private mustGet(id: string): ApprovalRecord {
    const row = this.db.prepare('SELECT * FROM approval_requests WHERE id = ?').get(id) as Row | undefined
    if (!row) throw new HoopError('NOT_FOUND', `no approval request ${id}`)
    return this.record(row)
  }

  private get(id: string): ApprovalRecord {
    return this.mustGet(id)
  }

  private record(r: Row): ApprovalRecord {
    const iso = (v: unknown) => (v === null || v === undefined ? undefined : new Date(v as number).toISOString())
    const decisions = (this.db.prepare('SELECT * FROM approval_decisions WHERE request_id = ? ORDER BY decided_at, rowid').all(r.id) as Row[]).map(
      (d): ApprovalDecisionRecord => ({
        decision: d.decision as 'approve' | 'reject',
        approver: JSON.parse(d.approver_json as string) as Identity,
        reason: d.reason as string,
        at: new Date(d.decided_at as number).toISOString(),
      }),
    )
    const rec: ApprovalRecord = {
      id: r.id as ApprovalId,
      state: r.state as ApprovalState,
      scope: r.scope as ReviewScope,
      ruleId: r.rule_id as string,
      connection: r.connection as string,
      requester: JSON.parse(r.requester_json as string) as Identity,
      approvalsRequired: r.approvals_required as number,
      approvers: JSON.parse(r.approvers_json as string) as SubjectMatcher,
      ttlSeconds: r.ttl_seconds as number,
      createdAt: iso(r.created_at)!,
      expiresAt: iso(r.expires_at)!,
      decisions,
    }
    if (r.statement !== null) rec.statement = r.statement as string
    if (r.statement_hash !== null) rec.statementHash = r.statement_hash as string
    if (r.request_reason !== null) rec.requestReason = r.request_reason as string
    if (r.duration_seconds !== null) rec.durationSeconds = r.duration_seconds as number
    if (r.decided_at !== null) rec.decidedAt = iso(r.decided_at)
    if (r.valid_until !== null) rec.validUntil = iso(r.valid_until)
    if (r.used_at !== null) rec.usedAt = iso(r.used_at)
    if (r.session_id !== null && r.session_id !== undefined) rec.session = r.session_id as string
    return rec
  }
}

export function approvalsOf(rec: Pick<ApprovalRecord, 'decisions'>): number {
  return rec.decisions.filter((d) => d.decision === 'approve').length
}

function canSee(rec: ApprovalRecord, viewer: Identity): boolean {
  return sameIdentity(rec.requester, viewer) || isApprover({approvers: rec.approvers}, viewer)
}

/** What is kept of an identity: no token expiry, nothing secret (claims are never secrets). */
function storedIdentity(i: Identity): Identity {
  const out: Identity = {kind: i.kind, subject: i.subject, name: i.name, groups: [...i.groups]}
  if (i.email) out.email = i.email
  if (i.issuer) out.issuer = i.issuer
  if (i.claims) out.claims = {...i.claims}
  return out
}
