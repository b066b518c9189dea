// Just-in-time approvals: requests, decisions, one-time consumption and time-boxed grants. The rules
// live here; where the records are kept is an ApprovalStore (store.ts): the data dir's SQLite file,
// or the PostgreSQL store several replicas share. No sockets, and an injected clock, so every rule
// is testable against either store.
//
// Rules (see docs/approvals.md):
// - an approver must match the rule's approvers and must not be the requester (same kind + subject);
// - N approvals from distinct approvers approve; one rejection ends the request;
// - pending requests expire ttlSeconds after creation; an approved one-time approval expires
//   ttlSeconds after approval if unused; a session grant ends after its duration. Expiry is
//   computed lazily on every call and stored, by whichever replica looks first;
// - a one-time approval is bound to requester + connection + rule + SHA-256 of the exact
//   statement text, and is consumed by the first statement it matches; a repeat approval is bound
//   the same way and covers every run of that text until ttlSeconds after approval, each run kept
//   as a use and audited (approval.used).
import {createHash, randomBytes} from 'node:crypto'
import {EventEmitter} from 'node:events'
import type {Identity} from '../identity/types.js'
import {isApprover} from '../policy/evaluate.js'
import {formatDuration} from '../policy/glob.js'
import type {ReviewDecision, SubjectMatcher} from '../policy/types.js'
import {HoopError} from '../shared/errors.js'
import {approvalsOf, type ApprovalStore, type ApprovalUseView, type Owner} from './store.js'
import {
  APPROVAL_STATES,
  type ApprovalDecisionRecord,
  type ApprovalEventHook,
  type ApprovalEventKind,
  type ApprovalId,
  type ApprovalRecord,
  type ApprovalUse,
  type ListFilter,
  type ResolveResult,
} from './types.js'

const MAX_REASON_CHARS = 1000
const MAX_STATEMENT_CHARS = 1024 * 1024
/** Upper bound for one long-poll. */
export const MAX_WAIT_SECONDS = 60
/** How often a waiting call re-reads the store (expiry, decisions made by another replica). */
const WAIT_RECHECK_MS = 1000

interface ApprovalServiceOptions {
  /** Milliseconds since epoch; injected by tests. */
  now?: () => number
  /** Called after every state change (the gateway wires it to the audit log). */
  onEvent?: ApprovalEventHook
  /** Called with a request's id after every state change, to wake waits on other replicas (src/store/notify.ts). */
  announce?: (id: string) => void
  /** How often a wait re-reads the store anyway (default 1 s): expiry, and decisions whose signal was lost. */
  recheckMs?: number
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
  private readonly announce?: (id: string) => void
  private readonly recheckMs: number
  private readonly now: () => number
  private readonly changes = new EventEmitter()

  constructor(
    readonly store: ApprovalStore,
    opts: ApprovalServiceOptions = {},
  ) {
    this.now = opts.now ?? Date.now
    this.onEvent = opts.onEvent
    this.announce = opts.announce
    this.recheckMs = opts.recheckMs ?? WAIT_RECHECK_MS
    this.changes.setMaxListeners(0)
  }

  /**
   * Another replica changed request `id` (or, with '*', may have changed any: its notifications
   * were lost): the waits on it re-read the store now instead of at their next periodic check.
   */
  changed(id: string): void {
    this.changes.emit('change', id)
  }

  // -------------------------------------------------------------------------------------------
  // Engines: a statement needs review.

  /**
   * A statement needs review. Returns `approved` when an approval covers it (a one-time approval
   * for this exact statement is consumed here; a session grant is not), else the pending request
   * for the same requester + connection + rule (+ statement), created when there is none.
   */
  async resolve(input: ResolveInput): Promise<ResolveResult> {
    const {identity, connection, statement: sql, review, session} = input
    if (sql.length > MAX_STATEMENT_CHARS) throw new HoopError('INVALID_INPUT', `statement of ${sql.length} characters exceeds the approval limit of ${MAX_STATEMENT_CHARS}`)
    await this.expireDue()
    const hash = statementHash(sql)
    const now = this.now()
    const owner = ownerOf(identity, connection, review.ruleId)
    const use = (): ApprovalUse => ({session, statement: sql, at: new Date(now).toISOString()})
    if (review.scope === 'session') {
      const grant = await this.store.findGrant(owner, now)
      if (grant) {
        // Every use is kept; the first in each session is an audit event (approval.used).
        const first = await this.store.recordUse(grant.id, {session, clientRequest: input.clientRequest, statementHash: hash, at: now})
        if (first) this.emit('used', grant, undefined, use())
        return {status: 'approved', approval: grant}
      }
      const {approval} = await this.open({identity, connection, review, sql, hash, durationSeconds: review.ttlSeconds, session})
      return {status: 'pending', approval}
    }
    // statement or repeat: the approval names this exact text. The scope the rule says now must
    // match the request's, so changing a rule's scope never stretches an approval already given.
    const used = await this.store.spend(owner, review.scope, sql, {session, clientRequest: input.clientRequest, statementHash: hash, at: now})
    if (used) {
      this.emit('used', used, undefined, use())
      return {status: 'approved', approval: used}
    }
    const {approval} = await this.open({identity, connection, review, sql, hash, session})
    return {status: 'pending', approval}
  }

  /** The approvals the viewer's statements used in one client run (`hoop exec` asks after it ran). */
  async usesOf(viewer: Identity, clientRequest: string): Promise<ApprovalUseView[]> {
    return this.store.usesOf(viewer, clientRequest)
  }

  /** Time-boxed access: ask for every statement of a session-scope review rule on a connection. */
  async requestAccess(input: AccessRequestInput): Promise<ResolveResult> {
    const {identity, connection, review} = input
    if (review.scope !== 'session') throw new HoopError('INVALID_INPUT', `rule ${review.ruleId} approves single statements, not time-boxed access`)
    const reason = checkReason(input.reason, 'reason for access')
    const duration = input.durationSeconds ?? review.ttlSeconds
    if (!Number.isSafeInteger(duration) || duration < 1) throw new HoopError('INVALID_INPUT', 'duration must be a positive number of seconds')
    if (duration > review.ttlSeconds) {
      throw new HoopError('INVALID_INPUT', `duration ${formatDuration(duration)} exceeds the ${formatDuration(review.ttlSeconds)} rule ${review.ruleId} allows`)
    }
    await this.expireDue()
    const owner = ownerOf(identity, connection, review.ruleId)
    const grant = await this.store.findGrant(owner, this.now())
    if (grant) return {status: 'approved', approval: grant}
    const {approval, created} = await this.open({identity, connection, review, reason, durationSeconds: duration})
    // A request made by an engine has no justification yet: the requester's explanation helps the approver.
    if (!created && approval.requestReason === undefined) {
      await this.store.explain(approval.id, reason, duration)
      return {status: 'pending', approval: await this.mustGet(approval.id)}
    }
    return {status: 'pending', approval}
  }

  // -------------------------------------------------------------------------------------------
  // Approvers.

  async approve(id: string, approver: Identity, reason: string): Promise<ApprovalRecord> {
    return this.decide(id, approver, 'approve', reason)
  }

  async reject(id: string, approver: Identity, reason: string): Promise<ApprovalRecord> {
    return this.decide(id, approver, 'reject', reason)
  }

  private async decide(id: string, approver: Identity, decision: 'approve' | 'reject', reasonIn: string): Promise<ApprovalRecord> {
    const reason = checkReason(reasonIn, 'justification')
    await this.expireDue()
    const now = this.now()
    const d: ApprovalDecisionRecord = {decision, approver: storedIdentity(approver), reason, at: new Date(now).toISOString()}
    // The checks run inside the store's lock on the request, against its state at that moment, so
    // two approvers deciding at once on two replicas are judged one after the other.
    const after = await this.store.decide(id, d, now, (rec) => {
      const verb = decision === 'approve' ? 'approve' : 'reject'
      if (sameIdentity(rec.requester, approver)) {
        throw new HoopError('ACCESS_DENIED', `${who(approver)} requested ${rec.id} and cannot ${verb} it: a request needs an approver other than the requester`)
      }
      if (!isApprover({approvers: rec.approvers}, approver)) {
        throw new HoopError('ACCESS_DENIED', `${who(approver)} is not an approver for rule ${rec.ruleId} (approvers: ${describeMatcher(rec.approvers)})`)
      }
      if (rec.state !== 'pending') throw new HoopError('CONFLICT', `request ${rec.id} is ${rec.state}${rec.decidedAt ? ` since ${rec.decidedAt}` : ''}; only pending requests can be decided`)
      // Expired since expireDue ran (or expired on a clock ahead of this one): too late to decide.
      if (Date.parse(rec.expiresAt) <= now) throw new HoopError('CONFLICT', `request ${rec.id} expired at ${rec.expiresAt}; only pending requests can be decided`)
      if (rec.decisions.some((x) => sameIdentity(x.approver, approver))) {
        throw new HoopError('CONFLICT', `${who(approver)} already approved ${rec.id}; it needs ${rec.approvalsRequired - approvalsOf(rec)} more approval(s) from other approvers`)
      }
    })
    const kind: ApprovalEventKind = after.state === 'rejected' ? 'rejected' : after.state === 'approved' ? 'approved' : 'approval'
    this.emit(kind, after, d)
    return after
  }

  // -------------------------------------------------------------------------------------------
  // Reading.

  /** A request the viewer may see (requester or approver); NOT_FOUND / ACCESS_DENIED otherwise. */
  async show(id: string, viewer: Identity): Promise<ApprovalRecord> {
    await this.expireDue()
    const rec = await this.mustGet(id)
    if (!canSee(rec, viewer)) throw new HoopError('ACCESS_DENIED', `${who(viewer)} is neither the requester nor an approver of ${rec.id}`)
    return rec
  }

  /** Requests the viewer made or may approve, newest first. Default state: pending. */
  async list(viewer: Identity, filter: ListFilter = {}): Promise<ApprovalRecord[]> {
    await this.expireDue()
    const state = filter.state ?? 'pending'
    if (state !== 'all' && !(APPROVAL_STATES as readonly string[]).includes(state)) {
      throw new HoopError('INVALID_INPUT', `unknown state "${state}"; use one of ${[...APPROVAL_STATES, 'all'].join(', ')}`)
    }
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000)
    // Visibility is judged per row (approver matchers are globs), so scan a bounded window.
    const rows = await this.store.list({state: state === 'all' ? undefined : state, requester: filter.mine ? viewer : undefined, limit: limit * 10})
    return rows.filter((rec) => canSee(rec, viewer)).slice(0, limit)
  }

  /**
   * Resolves once the request is no longer pending, or after `timeoutMs` with it still pending.
   * Sees decisions made through this replica at once, through others at once when the store
   * carries signals (PostgreSQL NOTIFY) and at the latest within a second (and expiry) otherwise.
   */
  async wait(id: string, viewer: Identity, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalRecord> {
    // A change heard while the first read is in flight (a decision on another replica whose signal
    // arrives before that read returns) must not be lost: listen before reading, re-check after.
    let changedMeanwhile = false
    const early = (changed: string) => {
      if (changed === id || changed === '*') changedMeanwhile = true
    }
    this.changes.on('change', early)
    let first: ApprovalRecord
    try {
      first = await this.show(id, viewer)
    } finally {
      this.changes.off('change', early)
    }
    if (first.state !== 'pending' || timeoutMs <= 0) return first
    return new Promise<ApprovalRecord>((resolve, reject) => {
      let done = false
      const check = async () => {
        try {
          await this.expireDue()
          const rec = await this.mustGet(id)
          if (rec.state !== 'pending') finish(rec)
        } catch (err) {
          if (done) return
          done = true
          cleanup()
          reject(err)
        }
      }
      const onChange = (changed: string) => {
        if (changed === id || changed === '*') void check()
      }
      const timer = setInterval(() => void check(), this.recheckMs)
      const deadline = setTimeout(() => void this.mustGet(id).then(finish, fail), timeoutMs)
      const onAbort = () => void this.mustGet(id).then(finish, fail)
      const cleanup = () => {
        clearInterval(timer)
        clearTimeout(deadline)
        this.changes.off('change', onChange)
        signal?.removeEventListener('abort', onAbort)
      }
      const finish = (rec: ApprovalRecord) => {
        if (done) return
        done = true
        cleanup()
        resolve(rec)
      }
      const fail = (err: unknown) => {
        if (done) return
        done = true
        cleanup()
        reject(err)
      }
      this.changes.on('change', onChange)
      signal?.addEventListener('abort', onAbort, {once: true})
      if (changedMeanwhile) void check()
    })
  }

  /** Stores `expired` for every request whose time ran out; returns how many this call changed. */
  async expireDue(): Promise<number> {
    const expired = await this.store.expireDue(this.now())
    for (const rec of expired) this.emit('expired', rec)
    return expired.length
  }

  // -------------------------------------------------------------------------------------------

  /**
   * The owner's pending request for this rule (and, below session scope, for this statement), or a
   * new one: one atomic step, so racing statements on any replicas share one request.
   */
  private async open(o: {
    identity: Identity
    connection: string
    review: ReviewDecision
    sql?: string
    hash?: string
    reason?: string
    durationSeconds?: number
    session?: string
  }): Promise<{approval: ApprovalRecord; created: boolean}> {
    const now = this.now()
    const r = await this.store.openRequest({
      id: newApprovalId(),
      scope: o.review.scope,
      owner: ownerOf(o.identity, o.connection, o.review.ruleId),
      requester: storedIdentity(o.identity),
      statement: o.sql,
      statementHash: o.hash,
      requestReason: o.reason,
      approvalsRequired: Math.max(1, o.review.approvals),
      approvers: o.review.approvers,
      ttlSeconds: o.review.ttlSeconds,
      durationSeconds: o.durationSeconds,
      createdAt: now,
      expiresAt: now + o.review.ttlSeconds * 1000,
      session: o.session,
    })
    if (r.created) this.emit('requested', r.approval)
    return r
  }

  /** A change stored: wake the waits on it, and audit it (the hook reports its own failures). */
  private emit(kind: ApprovalEventKind, rec: ApprovalRecord, decision?: ApprovalDecisionRecord, use?: ApprovalUse): void {
    this.changes.emit('change', rec.id)
    try {
      this.onEvent?.(kind, rec, decision, use)
    } catch {
      // A state change already stored stays stored.
    }
    this.announce?.(rec.id)
  }

  private async mustGet(id: string): Promise<ApprovalRecord> {
    const rec = await this.store.get(id)
    if (!rec) throw new HoopError('NOT_FOUND', `no approval request ${id}`)
    return rec
  }
}

export {approvalsOf} from './store.js'
export type {ApprovalUseView} from './store.js'

function ownerOf(identity: Identity, connection: string, ruleId: string): Owner {
  return {kind: identity.kind, subject: identity.subject, connection, ruleId}
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
