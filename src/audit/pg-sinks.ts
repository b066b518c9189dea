// The audit sinks' SinkStore on the PostgreSQL store (sinks.ts runs the deliveries). Every replica
// runs a runner per configured sink, but only the one holding the sink's advisory lock
// (pg-locks.ts, job "audit.sink:<name>") delivers; the others poll for the lock and take over
// when its holder dies, going on from the cursor in audit_sink_cursors. A cursor is moved only on
// the connection that holds the lock, and never backwards, so a replica that lost the lock cannot
// move it. Delivery stays at-least-once, in seq order: a batch delivered just before its driver
// died, without its cursor saved, is delivered again by the next driver (each line carries its
// seq, the receiver's idempotency key).
import type {PgLockSession} from '../store/pg-locks.js'
import type {PostgresStore} from '../store/postgres.js'
import type {Row} from '../store/rows.js'
import type {CheckpointRow} from './schema.js'
import type {SinkEventRow, SinkStore} from './sinks.js'

/** The advisory lock job of a sink. */
export const sinkJob = (sink: string): string => `audit.sink:${sink}`

/** The sink a cursor belongs to (a head cursor is "<sink>#tree-head"). */
const sinkOf = (cursor: string): string => cursor.replace(/#tree-head$/, '')

function checkpointRow(r: Row): CheckpointRow {
  return {tree_size: Number(r.tree_size), root_hash: r.root_hash as string, head_hash: r.head_hash as string, timestamp: r.timestamp as string, key_fingerprint: r.key_fingerprint as string, signature: r.signature as string}
}

export function pgSinkStore(store: PostgresStore, locks: PgLockSession): SinkStore {
  return {
    claim: (sink) => locks.claim(sinkJob(sink)),
    cursor: async (name) => {
      const [r] = await locks.query(sinkJob(sinkOf(name)), 'SELECT seq FROM audit_sink_cursors WHERE name = $1', [name])
      return r ? Number(r.seq) : 0
    },
    saveCursor: async (name, seq) => {
      await locks.query(
        sinkJob(sinkOf(name)),
        'INSERT INTO audit_sink_cursors (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = GREATEST(audit_sink_cursors.seq, excluded.seq)',
        [name, seq],
      )
    },
    events: async (after, limit) =>
      (await store.query('SELECT seq, body, payload FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit])).map(
        (r): SinkEventRow => ({seq: Number(r.seq), body: r.body as string, payload: (r.payload as string | null) ?? null}),
      ),
    headBetween: async (after, upTo) => {
      const [r] = await store.query('SELECT * FROM audit_checkpoints WHERE tree_size <= $1 AND tree_size > $2 ORDER BY tree_size DESC LIMIT 1', [upTo, after])
      return r ? checkpointRow(r) : undefined
    },
    noteAnchor: async (size, root, sink) => {
      await store.query("INSERT INTO audit_anchors (tree_size, root_hash, kind, target, published_at) VALUES ($1, $2, 'sink', $3, $4)", [size, root, sink, new Date().toISOString()])
    },
  }
}
