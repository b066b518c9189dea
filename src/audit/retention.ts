// Retention that keeps the proof. A v2 event's payload (payloads.ts) lives beside its hashed form,
// so it can be removed while the chain, the Merkle proofs and every signed head still verify:
//
// - expiry by a per-kind policy (`audit.retention.payloads`, e.g. {statement: 90d, default: 365d};
//   `session.recording` for recording payloads), run by the gateway in bounded batches;
// - erasure on request (`hoop audit erase --session ID | --user SUBJECT --reason TEXT`);
// - legal holds (config, or `hoop audit hold`) stop both for a connection or a user.
//
// Every batch removes payloads, writes one removal record per event (`audit_payload_removals`:
// how, when, and the `ref` of its authority) and notes the authority, an audit.retention or
// audit.erasure event carrying the same `ref`, in one transaction. The event reaches the log
// through audit_pending (the gateway is the log's only writer), so a crash leaves either both or
// neither. Verify (RemovalLedger) accepts a missing payload only with a removal record whose
// authority covers it: the retention cutoff for its kind is after it, or the erasure names its
// session or user. Anything else is tampering. v1 events hold their payloads inline: they never expire.
import type Database from 'better-sqlite3'
import {randomUUID} from 'node:crypto'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {type AuditEvent, events, PAYLOAD_FIELDS, type StoredEvent} from './events.js'
import type {PayloadRemoval} from './payloads.js'
import {ensureAuditSchema, MARK_KINDS, notePending} from './schema.js'
import {sessionFirstSeq} from './session-marks.js'

const DAY_MS = 86_400_000
/** Events whose payloads one batch removes: short transactions beside the audit writer. */
export const RETENTION_BATCH = 1000

/** What `audit.retention.payloads` may name: the kinds with payloads, recordings, and the default. */
export const RETENTION_KINDS: readonly string[] = [...Object.keys(PAYLOAD_FIELDS), 'session.recording', 'default']

export interface RetentionPolicy {
  /** Days a payload is kept, per event kind, `session.recording`, and `default`. */
  payloads: Record<string, number>
  /** Legal holds from the config (the store's holds apply too). */
  holds?: HoldTarget[]
}

export interface HoldTarget {
  connection?: string
  user?: string
}

/** "90d", "12w", "1y", "36h" or a number of days. */
export function parseRetentionPeriod(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : undefined
  if (typeof v !== 'string') return undefined
  const m = /^(\d+(?:\.\d+)?)\s*(h|d|w|y)$/.exec(v.trim())
  if (!m) return undefined
  const n = Number(m[1]) * {h: 1 / 24, d: 1, w: 7, y: 365}[m[2] as 'h' | 'd' | 'w' | 'y']
  return n > 0 ? n : undefined
}

/** The holds in force: the config's and the store's (placed, not released). */
export function activeHolds(db: Database.Database, config: HoldTarget[] = []): {connections: string[]; users: string[]} {
  return mergeHolds(config, db.prepare('SELECT scope, target FROM audit_holds WHERE released_at IS NULL').all() as {scope: string; target: string}[])
}

/** The config's holds and the store's rows (either store), as sorted connection and user lists. */
export function mergeHolds(config: HoldTarget[], stored: {scope: string; target: string}[]): {connections: string[]; users: string[]} {
  const connections = new Set(config.flatMap((h) => (h.connection ? [h.connection] : [])))
  const users = new Set(config.flatMap((h) => (h.user ? [h.user] : [])))
  for (const r of stored) (r.scope === 'connection' ? connections : users).add(r.target)
  return {connections: [...connections].sort(), users: [...users].sort()}
}

const NOT_HELD = `(connection IS NULL OR connection NOT IN (SELECT value FROM json_each(@held_connections)))
  AND (subject IS NULL OR subject NOT IN (SELECT value FROM json_each(@held_users)))`

/** The kinds with payloads, and the cutoff (ISO time) before which each kind's payloads expire. */
export function cutoffs(policy: RetentionPolicy, now: Date): Record<string, string> {
  const out: Record<string, string> = {}
  for (const kind of [...Object.keys(PAYLOAD_FIELDS), 'session.recording']) {
    const days = policy.payloads[kind] ?? (kind === 'session.recording' ? undefined : policy.payloads.default) ?? (kind === 'session.recording' ? policy.payloads.default : undefined)
    if (days !== undefined) out[kind] = new Date(now.getTime() - days * DAY_MS).toISOString()
  }
  return out
}

export interface RetentionBatch {
  removed: number
  recordings: number
  /** More may be due: run another batch. */
  more: boolean
}

function removeRows(db: Database.Database, seqs: number[], how: 'expired' | 'erased', at: string, ref: string): void {
  const clear = db.prepare('UPDATE audit_events SET payload = NULL WHERE seq = ?')
  const note = db.prepare('INSERT OR REPLACE INTO audit_payload_removals (seq, how, at, ref) VALUES (?, ?, ?, ?)')
  for (const s of seqs) {
    clear.run(s)
    note.run(s, how, at, ref)
  }
}

/** Clears the recording payloads of these sessions (their chunk hashes and digests stay). */
function clearRecordings(db: Database.Database, sessions: string[], at: string): number {
  const clear = db.prepare('UPDATE audit_recording_chunks SET payload = NULL WHERE session_id = ?')
  const mark = db.prepare('UPDATE audit_recordings SET pruned_at = ? WHERE session_id = ? AND pruned_at IS NULL')
  let n = 0
  for (const s of sessions) {
    clear.run(s)
    n += mark.run(at, s).changes
  }
  return n
}

/**
 * One batch of expiry: up to `limit` payloads past their kind's cutoff and not under a hold, and
 * recordings likewise, removed together with their records and the audit.retention event.
 */
export function expirePayloads(db: Database.Database, policy: RetentionPolicy, opts: {now?: Date; limit?: number} = {}): RetentionBatch {
  ensureAuditSchema(db)
  const now = opts.now ?? new Date()
  const limit = opts.limit ?? RETENTION_BATCH
  const cut = cutoffs(policy, now)
  const run = db.transaction((): RetentionBatch => {
    const holds = activeHolds(db, policy.holds)
    const held = {held_connections: JSON.stringify(holds.connections), held_users: JSON.stringify(holds.users)}
    const seqs: number[] = []
    for (const [kind, before] of Object.entries(cut)) {
      if (kind === 'session.recording' || seqs.length >= limit) continue
      const rows = db
        .prepare(`SELECT seq FROM audit_events WHERE time < @before AND kind = @kind AND payload IS NOT NULL AND ${NOT_HELD} ORDER BY seq LIMIT @limit`)
        .raw()
        .all({...held, before, kind, limit: limit - seqs.length}) as [number][]
      for (const [s] of rows) seqs.push(s)
    }
    let sessions: string[] = []
    if (cut['session.recording']) {
      sessions = (
        db
          .prepare(
            `SELECT r.session_id FROM audit_recordings r WHERE r.finished_at IS NOT NULL AND r.finished_at < @before AND r.pruned_at IS NULL
             AND (r.connection IS NULL OR r.connection NOT IN (SELECT value FROM json_each(@held_connections)))
             AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.session = r.session_id AND e.${MARK_KINDS} AND e.kind = 'session.start' AND e.subject IN (SELECT value FROM json_each(@held_users)))
             LIMIT @limit`,
          )
          .raw()
          .all({...held, before: cut['session.recording'], limit}) as [string][]
      ).map(([s]) => s)
    }
    if (seqs.length === 0 && sessions.length === 0) return {removed: 0, recordings: 0, more: false}
    seqs.sort((a, b) => a - b)
    const at = now.toISOString()
    const ref = randomUUID()
    removeRows(db, seqs, 'expired', at, ref)
    const recordings = clearRecordings(db, sessions, at)
    notePending(db, events.retention({at: now, ref, cutoffs: cut, removed: seqs.length, firstSeq: seqs[0], lastSeq: seqs.at(-1), recordings}))
    return {removed: seqs.length, recordings, more: seqs.length >= limit || sessions.length >= limit}
  })
  // IMMEDIATE: it reads then writes while the audit writer commits on another connection.
  return run.immediate()
}

/**
 * Runs expiry batches until none is due (or `goOn` says stop), yielding to the event loop between
 * them so the log's commits go on; logs the outcome and never rejects. Both audit logs run their
 * retention through here (log.ts on SQLite, pg-log.ts on PostgreSQL).
 */
export async function runRetentionBatches(batch: () => RetentionBatch | Promise<RetentionBatch>, goOn: () => boolean, logger: Logger): Promise<{removed: number; recordings: number}> {
  const total = {removed: 0, recordings: 0}
  try {
    while (goOn()) {
      const b = await batch()
      total.removed += b.removed
      total.recordings += b.recordings
      if (!b.more) break
      await new Promise((r) => setTimeout(r, 5))
    }
    if (total.removed + total.recordings > 0) logger.info('audit retention expired payloads', total)
  } catch (err) {
    logger.error('audit retention failed', {error: errorMessage(err)})
  }
  return total
}

export interface ErasureResult {
  scope: 'session' | 'user'
  target: string
  reason: string
  /** Payloads removed, in how many batches (one audit.erasure event each). */
  removed: number
  recordings: number
  /** Events that matched but are under a legal hold: kept. */
  held: number
  firstSeq?: number
  lastSeq?: number
  at: string
  refs: string[]
}

/**
 * Erases the payloads (and recordings) of a session or of a user's events, in batches, each with
 * its audit.erasure event. Payloads under a legal hold are kept and counted as `held`.
 */
export interface ErasureRequest {
  scope: 'session' | 'user'
  target: string
  reason: string
  operator: string
  holds?: HoldTarget[]
  now?: Date
  limit?: number
}

export function erasePayloads(db: Database.Database, o: ErasureRequest): ErasureResult {
  ensureAuditSchema(db)
  const {now, at, limit, col, out} = startErasure(o)
  // The events are read by seq: a session's from its start (no index on every event's session,
  // schema.ts), and each batch from where the last one stopped, so the request reads them once.
  // The rows it passed over are held or have no payload; rows added meanwhile come after.
  let after = o.scope === 'session' ? sessionFirstSeq(db, o.target) - 1 : 0
  const from = after
  const batch = db.transaction((): boolean => {
    const holds = activeHolds(db, o.holds)
    const held = {held_connections: JSON.stringify(holds.connections), held_users: JSON.stringify(holds.users)}
    const seqs = (db.prepare(`SELECT seq FROM audit_events WHERE seq > @after AND ${col} = @target AND payload IS NOT NULL AND ${NOT_HELD} ORDER BY seq LIMIT @limit`).raw().all({...held, after, target: o.target, limit}) as [number][]).map(([s]) => s)
    if (seqs.length > 0) after = seqs.at(-1)!
    const sessions =
      out.refs.length > 0
        ? []
        : o.scope === 'session'
          ? [o.target]
          : (db.prepare(`SELECT session FROM audit_events WHERE ${MARK_KINDS} AND kind = 'session.start' AND subject = ?`).raw().all(o.target) as [string][]).map(([s]) => s)
    const heldSessions = sessions.filter((s) => {
      const r = db.prepare(`SELECT connection, subject FROM audit_events WHERE session = ? AND ${MARK_KINDS} AND kind = 'session.start'`).get(s) as {connection: string | null; subject: string | null} | undefined
      return r !== undefined && ((r.connection !== null && holds.connections.includes(r.connection)) || (r.subject !== null && holds.users.includes(r.subject)))
    })
    const recordings = clearRecordings(db, sessions.filter((s) => !heldSessions.includes(s)), at)
    if (seqs.length === 0 && recordings === 0) {
      if (out.refs.length === 0) out.held = countLeft(db, col, o.target, from)
      return false
    }
    const ref = randomUUID()
    removeRows(db, seqs, 'erased', at, ref)
    notePending(db, erasureBatch(o, out, now, ref, seqs, recordings))
    return seqs.length >= limit
  })
  while (batch.immediate()) {
    // next batch
  }
  if (out.held === 0) out.held = countLeft(db, col, o.target, from)
  return out
}

/** The payloads of a session or user still there after an erasure (those under a hold), from seq `from` on. */
function countLeft(db: Database.Database, col: 'session' | 'subject', target: string, from: number): number {
  return (db.prepare(`SELECT count(*) AS n FROM audit_events WHERE seq > ? AND ${col} = ? AND payload IS NOT NULL`).get(from, target) as {n: number}).n
}

/** Checks an erasure's request and starts its result. */
export function startErasure(o: ErasureRequest): {now: Date; at: string; limit: number; col: 'session' | 'subject'; out: ErasureResult} {
  if (!o.reason.trim()) throw new HoopError('INVALID_INPUT', 'an erasure needs a reason (--reason "why")')
  if (!o.target) throw new HoopError('INVALID_INPUT', 'an erasure needs a session or a user')
  const now = o.now ?? new Date()
  const at = now.toISOString()
  return {now, at, limit: o.limit ?? RETENTION_BATCH, col: o.scope === 'session' ? 'session' : 'subject', out: {scope: o.scope, target: o.target, reason: o.reason, removed: 0, recordings: 0, held: 0, at, refs: []}}
}

/** Counts one erasure batch into the result and returns its audit.erasure event. */
export function erasureBatch(o: ErasureRequest, out: ErasureResult, now: Date, ref: string, seqs: number[], recordings: number): AuditEvent {
  out.refs.push(ref)
  out.removed += seqs.length
  out.recordings += recordings
  if (seqs.length > 0) {
    out.firstSeq ??= seqs[0]
    out.lastSeq = seqs.at(-1)
  }
  return events.erasure({at: now, ref, operator: o.operator, scope: o.scope, target: o.target, reason: o.reason, removed: seqs.length, firstSeq: seqs[0], lastSeq: seqs.at(-1), recordings})
}

export interface HoldResult {
  action: 'place' | 'release'
  scope: 'connection' | 'user'
  target: string
  reason: string
  at: string
  /** Holds in force afterwards. */
  holds: {scope: string; target: string; reason: string; placed_at: string; placed_by: string}[]
}

/** Places or releases a legal hold on a connection or a user, with its audit.hold event. */
export interface HoldRequest {
  action: 'place' | 'release'
  scope: 'connection' | 'user'
  target: string
  reason: string
  operator: string
  now?: Date
}

/** Checks a hold's request; its time. */
export function startHold(o: HoldRequest): string {
  if (!o.reason.trim()) throw new HoopError('INVALID_INPUT', 'a legal hold needs a reason (--reason "why")')
  return (o.now ?? new Date()).toISOString()
}

export const noHoldError = (o: HoldRequest): HoopError => new HoopError('NOT_FOUND', `no legal hold on ${o.scope} "${o.target}"`)

export function setHold(db: Database.Database, o: HoldRequest): HoldResult {
  ensureAuditSchema(db)
  const at = startHold(o)
  db.transaction(() => {
    if (o.action === 'place') {
      const exists = db.prepare('SELECT 1 FROM audit_holds WHERE scope = ? AND target = ? AND released_at IS NULL').get(o.scope, o.target)
      if (!exists) db.prepare('INSERT INTO audit_holds (scope, target, reason, placed_at, placed_by) VALUES (?, ?, ?, ?, ?)').run(o.scope, o.target, o.reason, at, o.operator)
    } else {
      const n = db.prepare('UPDATE audit_holds SET released_at = ? WHERE scope = ? AND target = ? AND released_at IS NULL').run(at, o.scope, o.target).changes
      if (n === 0) throw noHoldError(o)
    }
    notePending(db, events.hold({at, operator: o.operator, action: o.action, scope: o.scope, target: o.target, reason: o.reason}))
  }).immediate()
  const holds = db.prepare('SELECT scope, target, reason, placed_at, placed_by FROM audit_holds WHERE released_at IS NULL ORDER BY id').all() as HoldResult['holds']
  return {action: o.action, scope: o.scope, target: o.target, reason: o.reason, at, holds}
}

/** One group of removed payloads, as verify and the summary report it. */
export interface RemovalGroup {
  how: 'expired' | 'erased'
  /** When they were removed (the removal record's time). */
  at: string
  /** The audit.retention / audit.erasure event (absent: not yet appended, or not in the package). */
  by_seq?: number
  count: number
  first_seq: number
  last_seq: number
  /** For an erasure: what was erased and why. */
  scope?: string
  target?: string
  reason?: string
}

interface Claim {
  group: RemovalGroup
  kinds: Map<string, string>
  sessions: Set<string>
  subjects: Set<string>
}

/**
 * Checks missing payloads against their removal records and the events that removed them, while
 * events stream past in seq order (the authority always comes after what it removed).
 */
export class RemovalLedger {
  present = 0
  private readonly claims = new Map<string, Claim>()
  private readonly authorities = new Map<number, StoredEvent>()
  private readonly refs = new Map<string, number>()
  private readonly claimedBy = new Set<number>()
  private readonly filteredOut = new Set<number>()
  readonly failures: {seq: number; reason: string}[] = []
  constructor(private readonly pendingRefs: Set<string> = new Set()) {}

  /** An event that kept its payload (already matched against payload_hash). */
  kept(): void {
    this.present++
  }

  /** A v2 event whose payload is gone: `removal` is its record, if any. */
  gone(e: StoredEvent, removal: (PayloadRemoval & {ref?: string}) | undefined): void {
    if (!removal) {
      this.failures.push({seq: e.seq, reason: 'its payload is missing and there is no record of it expiring or being erased: it was removed without a record (tampering)'})
      return
    }
    const key = `${removal.removed}|${removal.at}|${removal.by_seq ?? removal.ref ?? ''}`
    let c = this.claims.get(key)
    if (!c) {
      c = {group: {how: removal.removed, at: removal.at, by_seq: removal.by_seq, count: 0, first_seq: e.seq, last_seq: e.seq}, kinds: new Map(), sessions: new Set(), subjects: new Set()}
      ;(c.group as RemovalGroup & {ref?: string}).ref = removal.ref
      this.claims.set(key, c)
    }
    if (removal.by_seq !== undefined) this.claimedBy.add(removal.by_seq)
    c.group.count++
    c.group.last_seq = e.seq
    if ((c.kinds.get(e.kind) ?? '') < e.time) c.kinds.set(e.kind, e.time)
    if (e.session) c.sessions.add(e.session)
    if (e.actor?.subject) c.subjects.add(e.actor.subject)
  }

  /** An audit.retention or audit.erasure event, as it passes. */
  authority(e: StoredEvent): void {
    if (e.kind !== 'audit.retention' && e.kind !== 'audit.erasure') return
    this.authorities.set(e.seq, e)
    const ref = (e.data as {ref?: unknown}).ref
    if (typeof ref === 'string') this.refs.set(ref, e.seq)
  }

  /** An event a package holds only as its leaf hash (outside its filter). */
  redacted(seq: number): void {
    if (this.claimedBy.has(seq)) this.filteredOut.add(seq)
  }

  /** Resolves each group; `bySeqOf` maps a store ref to its event's seq (live), `covered` is the last seq seen. */
  finish(covered: number, bySeqOf?: (ref: string) => number | undefined): {groups: RemovalGroup[]; notes: string[]} {
    const notes: string[] = []
    const groups: RemovalGroup[] = []
    for (const c of this.claims.values()) {
      const g = c.group
      const ref = (g as RemovalGroup & {ref?: string}).ref
      delete (g as RemovalGroup & {ref?: string}).ref
      if (g.by_seq === undefined && ref !== undefined) g.by_seq = this.refs.get(ref) ?? bySeqOf?.(ref)
      const what = `events seq ${g.first_seq}..${g.last_seq} (${g.count})`
      if (g.by_seq === undefined) {
        if (ref !== undefined && this.pendingRefs.has(ref)) notes.push(`${what}: payload ${g.how} on ${g.at.slice(0, 10)}; its audit event is still pending (the gateway appends it when it runs)`)
        else if (ref === undefined) notes.push(`${what}: payload ${g.how} on ${g.at.slice(0, 10)}; its audit event was not yet in the log when the package was exported`)
        else this.failures.push({seq: g.first_seq, reason: `its payload is missing and its removal record names no audit.retention or audit.erasure event in the log: it was removed without a record (tampering)`})
        groups.push(g)
        continue
      }
      const auth = this.authorities.get(g.by_seq)
      if (!auth) {
        if (this.filteredOut.has(g.by_seq)) notes.push(`${what}: payload ${g.how} on ${g.at.slice(0, 10)} by event seq ${g.by_seq}, outside this package's filter`)
        else if (g.by_seq > covered) notes.push(`${what}: payload ${g.how} on ${g.at.slice(0, 10)} by event seq ${g.by_seq}, beyond what was checked`)
        else this.failures.push({seq: g.first_seq, reason: `its payload is missing and the removal names event seq ${g.by_seq}, which is not an audit.retention or audit.erasure event (tampering)`})
        groups.push(g)
        continue
      }
      const d = auth.data as {cutoffs?: Record<string, string>; scope?: string; target?: string; reason?: string; ref?: string}
      const problem = covers(g.how, auth, d, c)
      if (problem || (ref !== undefined && d.ref !== ref)) {
        this.failures.push({seq: g.first_seq, reason: `its payload is missing and event seq ${g.by_seq} does not cover its removal (${problem ?? 'another ref'}): tampering`})
      }
      if (g.how === 'erased') Object.assign(g, {scope: d.scope, target: d.target, reason: d.reason})
      groups.push(g)
    }
    return {groups: groups.sort((a, b) => a.first_seq - b.first_seq), notes}
  }
}

function covers(how: 'expired' | 'erased', auth: StoredEvent, d: {cutoffs?: Record<string, string>; scope?: string; target?: string}, c: Claim): string | undefined {
  if (how === 'expired') {
    if (auth.kind !== 'audit.retention') return `it is ${auth.kind}, not audit.retention`
    for (const [kind, last] of c.kinds) {
      const cut = d.cutoffs?.[kind]
      if (!cut || !(last < cut)) return `no ${kind} payload from ${last} had expired by its cutoff ${cut ?? '(none)'}`
    }
    return undefined
  }
  if (auth.kind !== 'audit.erasure') return `it is ${auth.kind}, not audit.erasure`
  const set = d.scope === 'session' ? c.sessions : c.subjects
  const n = d.scope === 'session' ? c.sessions.size : c.subjects.size
  if (n !== 1 || !set.has(d.target ?? '')) return `it erased ${d.scope} ${d.target}`
  return undefined
}

/** The notes verify prints for the removals: "payload expired by retention on DATE", "payload erased on DATE (event seq N)". */
export function removalNotes(groups: RemovalGroup[]): string[] {
  return groups.map((g) =>
    g.how === 'expired'
      ? `${g.count} payload(s) of events seq ${g.first_seq}..${g.last_seq}: payload expired by retention on ${g.at.slice(0, 10)}${g.by_seq ? ` (audit.retention event seq ${g.by_seq})` : ''}`
      : `${g.count} payload(s) of events seq ${g.first_seq}..${g.last_seq}: payload erased on ${g.at.slice(0, 10)}${g.by_seq ? ` (event seq ${g.by_seq})` : ''}${g.target ? `, ${g.scope} ${g.target}` : ''}${g.reason ? `: ${g.reason}` : ''}`,
  )
}

