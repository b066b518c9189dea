// Appending to the audit log on the PostgreSQL store inside a transaction, under the lock of the
// head row (audit_head, FOR UPDATE): number the events from the head's seq, chain each to its
// predecessor, push the leaves on the Merkle frontier, insert them in one statement, save the
// head. The gateway's group commits (pg-log.ts) and the writes that must commit with their audit
// event (retention, erasure and legal holds: pg-retention.ts) both append through here, so there
// is one way events enter the shared log.
import type {Row} from '../store/rows.js'
import type {AppendedEvent, AuditEvent} from './events.js'
import {MerkleFrontier} from './merkle.js'
import {type EncodedEvent, encodeEvent} from './payloads.js'

const INSERT_EVENTS = `INSERT INTO audit_events (seq, time, kind, session, subject, connection, hash, prev_hash, leaf, body, payload)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::text[], $11::text[])`

export interface Head {
  seq: number
  hash: string
  frontier: MerkleFrontier
  checkpointSize: number
}

export type Query = (sql: string, args?: unknown[]) => Promise<Row[]>

/** The head row, locked (or not) by the caller's statement. */
export function headFrom(r: Row): Head {
  const seq = Number(r.seq)
  return {seq, hash: r.head_hash as string, frontier: MerkleFrontier.restore(seq, r.frontier as Buffer), checkpointSize: Number(r.checkpoint_size)}
}

export const LOCK_HEAD = 'SELECT seq, head_hash, frontier, checkpoint_size FROM audit_head WHERE id = 1 FOR UPDATE'

export const saveHead = (q: Query, head: Head): Promise<Row[]> =>
  q('UPDATE audit_head SET seq = $1, head_hash = $2, frontier = $3, checkpoint_size = $4 WHERE id = 1', [head.seq, head.hash, head.frontier.state(), head.checkpointSize])

/**
 * Numbers the events from the locked head, chains them, inserts them in one statement and moves
 * `head` (the caller saves it). An event that cannot be encoded is left out (`bad`, by index);
 * the others go on.
 */
export async function insertEvents(q: Query, head: Head, evs: AuditEvent[]): Promise<{rows: AppendedEvent[]; ok: number[]; bad: [number, Error][]}> {
  const rows: AppendedEvent[] = []
  const ok: number[] = []
  const bad: [number, Error][] = []
  const cols: unknown[][] = Array.from({length: 11}, () => [])
  evs.forEach((e, i) => {
    const seq = head.seq + 1
    let enc: EncodedEvent
    try {
      enc = encodeEvent(e, seq, head.hash)
    } catch (err) {
      bad.push([i, err as Error])
      return
    }
    const values = [seq, e.time, e.kind, e.session ?? null, e.actor?.subject ?? null, e.connection ?? null, enc.hash, head.hash, enc.leaf, enc.body, enc.payload ?? null]
    for (let c = 0; c < values.length; c++) cols[c].push(values[c])
    head.frontier.push(enc.leaf)
    head.seq = seq
    head.hash = enc.hash
    ok.push(i)
    rows.push({seq, hash: enc.hash, body: enc.body})
  })
  if (rows.length > 0) await q(INSERT_EVENTS, cols)
  return {rows, ok, bad}
}

/**
 * Appends events to the log inside the caller's transaction, after the caller's other writes:
 * the removal of payloads and its audit.retention / audit.erasure event, or a legal hold and its
 * audit.hold event, commit together or not at all. The head row is locked last, so the log's
 * other writers wait only for this insert and the commit. No head is signed here: the next
 * checkpoint of any replica covers these events. An event that cannot be encoded fails the
 * transaction.
 */
export async function appendInTransaction(q: Query, evs: AuditEvent[]): Promise<AppendedEvent[]> {
  const head = headFrom((await q(LOCK_HEAD))[0])
  const {rows, bad} = await insertEvents(q, head, evs)
  if (bad.length > 0) throw bad[0][1]
  await saveHead(q, head)
  return rows
}

