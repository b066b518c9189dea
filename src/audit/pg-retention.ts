// Retention, erasure and legal holds on the PostgreSQL store: what retention.ts does on the data
// dir's SQLite file, with the same rules, results and events (its pure parts are shared: cutoffs,
// holds, the erasure's accounting). Each batch is one short transaction: remove up to
// RETENTION_BATCH payloads (the rows locked, held ones skipped), write their removal records, and
// append the audit.retention / audit.erasure event to the log in the same transaction
// (appendInTransaction locks the log's head last), so the log says why every payload is gone, or
// nothing is gone. Events commit to their payloads by hash: the chain, the Merkle proofs and every
// signed head still verify.
import {randomUUID} from 'node:crypto'
import type {PostgresStore} from '../store/postgres.js'
import type {Row} from '../store/rows.js'
import {events} from './events.js'
import {appendInTransaction, type Query} from './pg-append.js'
import {
  cutoffs,
  type ErasureRequest,
  type ErasureResult,
  erasureBatch,
  type HoldRequest,
  type HoldResult,
  mergeHolds,
  noHoldError,
  RETENTION_BATCH,
  type RetentionBatch,
  type RetentionPolicy,
  startErasure,
  startHold,
} from './retention.js'

async function holdsIn(q: Query, config: RetentionPolicy['holds']): Promise<{connections: string[]; users: string[]}> {
  return mergeHolds(config ?? [], (await q('SELECT scope, target FROM audit_holds WHERE released_at IS NULL')) as {scope: string; target: string}[])
}

/** Events not under a hold: $held_connections, $held_users are text[] parameters. */
const notHeld = (c: number, u: number): string => `(connection IS NULL OR NOT connection = ANY($${c}::text[])) AND (subject IS NULL OR NOT subject = ANY($${u}::text[]))`

async function removeRows(q: Query, seqs: number[], how: 'expired' | 'erased', at: string, ref: string): Promise<void> {
  if (seqs.length === 0) return
  await q('UPDATE audit_events SET payload = NULL WHERE seq = ANY($1::bigint[])', [seqs])
  await q(
    `INSERT INTO audit_payload_removals (seq, how, at, ref) SELECT s, $2, $3, $4 FROM unnest($1::bigint[]) AS s
     ON CONFLICT (seq) DO UPDATE SET how = excluded.how, at = excluded.at, ref = excluded.ref`,
    [seqs, how, at, ref],
  )
}

/** Clears the recording payloads of these sessions (their chunk hashes and digests stay); how many were marked pruned. */
async function clearRecordings(q: Query, sessions: string[], at: string): Promise<number> {
  if (sessions.length === 0) return 0
  await q('UPDATE audit_recording_chunks SET payload = NULL WHERE session_id = ANY($1::text[])', [sessions])
  return (await q('UPDATE audit_recordings SET pruned_at = $2 WHERE session_id = ANY($1::text[]) AND pruned_at IS NULL RETURNING session_id', [sessions, at])).length
}

/** One batch of expiry on the PostgreSQL store (see expirePayloads in retention.ts). */
export async function expirePayloadsPg(store: PostgresStore, policy: RetentionPolicy, opts: {now?: Date; limit?: number} = {}): Promise<RetentionBatch> {
  const now = opts.now ?? new Date()
  const limit = opts.limit ?? RETENTION_BATCH
  const cut = cutoffs(policy, now)
  return store.transaction(async (q): Promise<RetentionBatch> => {
    const holds = await holdsIn(q, policy.holds)
    const seqs: number[] = []
    for (const [kind, before] of Object.entries(cut)) {
      if (kind === 'session.recording' || seqs.length >= limit) continue
      const rows = await q(
        `SELECT seq FROM audit_events WHERE time < $1 AND kind = $2 AND payload IS NOT NULL AND ${notHeld(3, 4)} ORDER BY seq LIMIT $5 FOR UPDATE SKIP LOCKED`,
        [before, kind, holds.connections, holds.users, limit - seqs.length],
      )
      for (const r of rows) seqs.push(Number(r.seq))
    }
    let sessions: string[] = []
    if (cut['session.recording']) {
      sessions = (
        await q(
          `SELECT r.session_id FROM audit_recordings r WHERE r.finished_at IS NOT NULL AND r.finished_at < $1 AND r.pruned_at IS NULL
           AND (r.connection IS NULL OR NOT r.connection = ANY($2::text[]))
           AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.session = r.session_id AND e.kind = 'session.start' AND e.subject = ANY($3::text[]))
           LIMIT $4 FOR UPDATE SKIP LOCKED`,
          [cut['session.recording'], holds.connections, holds.users, limit],
        )
      ).map((r) => r.session_id as string)
    }
    if (seqs.length === 0 && sessions.length === 0) return {removed: 0, recordings: 0, more: false}
    seqs.sort((a, b) => a - b)
    const at = now.toISOString()
    const ref = randomUUID()
    await removeRows(q, seqs, 'expired', at, ref)
    const recordings = await clearRecordings(q, sessions, at)
    await appendInTransaction(q, [events.retention({at: now, ref, cutoffs: cut, removed: seqs.length, firstSeq: seqs[0], lastSeq: seqs.at(-1), recordings})])
    return {removed: seqs.length, recordings, more: seqs.length >= limit || sessions.length >= limit}
  })
}

/** Erases a session's or a user's payloads on the PostgreSQL store (see erasePayloads in retention.ts). */
export async function erasePayloadsPg(store: PostgresStore, o: ErasureRequest): Promise<ErasureResult> {
  const {now, at, limit, col, out} = startErasure(o)
  const countLeft = async (q: Query): Promise<number> => Number((await q(`SELECT count(*) AS n FROM audit_events WHERE ${col} = $1 AND payload IS NOT NULL`, [o.target]))[0].n)
  for (let more = true; more; ) {
    more = await store.transaction(async (q): Promise<boolean> => {
      const holds = await holdsIn(q, o.holds)
      const seqs = (
        await q(`SELECT seq FROM audit_events WHERE ${col} = $1 AND payload IS NOT NULL AND ${notHeld(2, 3)} ORDER BY seq LIMIT $4 FOR UPDATE`, [o.target, holds.connections, holds.users, limit])
      ).map((r) => Number(r.seq))
      // Recordings go with the first batch: a session's, or those of every session the user started.
      let sessions: string[] = []
      if (out.refs.length === 0) {
        const starts = await q(`SELECT session, connection, subject FROM audit_events WHERE kind = 'session.start' AND ${col} = $1`, [o.target])
        const held = (r: Row): boolean => (r.connection !== null && holds.connections.includes(r.connection as string)) || (r.subject !== null && holds.users.includes(r.subject as string))
        sessions = o.scope === 'session' ? (starts.some(held) ? [] : [o.target]) : starts.filter((r) => !held(r)).map((r) => r.session as string)
      }
      const recordings = await clearRecordings(q, sessions, at)
      if (seqs.length === 0 && recordings === 0) {
        if (out.refs.length === 0) out.held = await countLeft(q)
        return false
      }
      const ref = randomUUID()
      await removeRows(q, seqs, 'erased', at, ref)
      await appendInTransaction(q, [erasureBatch(o, out, now, ref, seqs, recordings)])
      return seqs.length >= limit
    })
  }
  if (out.held === 0) out.held = await countLeft((sql, args) => store.query(sql, args))
  return out
}

/** Places or releases a legal hold on the PostgreSQL store, with its audit.hold event in the same transaction. */
export async function setHoldPg(store: PostgresStore, o: HoldRequest): Promise<HoldResult> {
  const at = startHold(o)
  return store.transaction(async (q) => {
    // One hold changes at a time, so two placing the same hold at once make one row.
    await q('LOCK TABLE audit_holds IN SHARE ROW EXCLUSIVE MODE')
    if (o.action === 'place') {
      const [exists] = await q('SELECT 1 FROM audit_holds WHERE scope = $1 AND target = $2 AND released_at IS NULL', [o.scope, o.target])
      if (!exists) await q('INSERT INTO audit_holds (scope, target, reason, placed_at, placed_by) VALUES ($1, $2, $3, $4, $5)', [o.scope, o.target, o.reason, at, o.operator])
    } else {
      const n = (await q('UPDATE audit_holds SET released_at = $1 WHERE scope = $2 AND target = $3 AND released_at IS NULL RETURNING id', [at, o.scope, o.target])).length
      if (n === 0) throw noHoldError(o)
    }
    await appendInTransaction(q, [events.hold({at, operator: o.operator, action: o.action, scope: o.scope, target: o.target, reason: o.reason})])
    const holds = (await q('SELECT scope, target, reason, placed_at, placed_by FROM audit_holds WHERE released_at IS NULL ORDER BY id')) as HoldResult['holds']
    return {action: o.action, scope: o.scope, target: o.target, reason: o.reason, at, holds}
  })
}
