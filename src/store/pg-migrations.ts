// The PostgreSQL store's schema, as numbered migrations recorded in `schema_migrations`. Each
// migration runs in its own transaction holding a transaction-level advisory lock, so replicas
// starting at once apply it exactly once: the others wait on the lock, then find it recorded.
// A migration, once released, is never edited: a change is a new migration at the end.
import type pg from 'pg'
import {HoopError} from '../shared/errors.js'
import {inTransaction} from './pg-tx.js'

interface Migration {
  version: number
  name: string
  sql: string
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'agents, service accounts, sessions',
    sql: `
CREATE TABLE agents (
  id text PRIMARY KEY, name text NOT NULL, hash text NOT NULL,
  created_at timestamptz NOT NULL, revoked_at timestamptz, last_seen_at timestamptz);
CREATE UNIQUE INDEX agents_live_name ON agents (name) WHERE revoked_at IS NULL;
CREATE TABLE service_accounts (
  id text PRIMARY KEY, name text NOT NULL, groups text[] NOT NULL, hash text NOT NULL,
  created_at timestamptz NOT NULL, revoked_at timestamptz);
CREATE UNIQUE INDEX service_accounts_live_name ON service_accounts (name) WHERE revoked_at IS NULL;
CREATE TABLE sessions (
  id text PRIMARY KEY, subject text NOT NULL, identity_kind text NOT NULL, connection text NOT NULL,
  agent text NOT NULL, client_address text, started_at timestamptz NOT NULL, ended_at timestamptz,
  bytes_up bigint NOT NULL DEFAULT 0, bytes_down bigint NOT NULL DEFAULT 0, end_reason text);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_open ON sessions (started_at) WHERE ended_at IS NULL;
`,
  },
  {
    version: 2,
    name: 'approvals and grants',
    // The SQLite columns, so one row mapping serves both stores. Times are bigint milliseconds
    // from the gateway's clock (not timestamptz): expiry compares them with that clock.
    sql: `
CREATE TABLE approval_requests (
  id text PRIMARY KEY, state text NOT NULL, scope text NOT NULL, rule_id text NOT NULL,
  connection text NOT NULL, requester_kind text NOT NULL, requester_subject text NOT NULL,
  requester_json text NOT NULL, statement text, statement_hash text, request_reason text,
  approvals_required integer NOT NULL, approvers_json text NOT NULL, ttl_seconds integer NOT NULL,
  duration_seconds integer, created_at bigint NOT NULL, expires_at bigint NOT NULL,
  decided_at bigint, valid_until bigint, used_at bigint, session_id text);
CREATE INDEX approval_requests_owner ON approval_requests (requester_kind, requester_subject, connection, rule_id, state);
CREATE INDEX approval_requests_state ON approval_requests (state, created_at);
CREATE TABLE approval_uses (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  approval_id text NOT NULL REFERENCES approval_requests (id), session_id text, client_request text,
  statement_hash text NOT NULL, used_at bigint NOT NULL);
CREATE INDEX approval_uses_approval ON approval_uses (approval_id, session_id);
CREATE INDEX approval_uses_request ON approval_uses (client_request);
CREATE TABLE approval_decisions (
  seq bigint GENERATED ALWAYS AS IDENTITY,
  request_id text NOT NULL REFERENCES approval_requests (id), approver_kind text NOT NULL,
  approver_subject text NOT NULL, approver_json text NOT NULL, decision text NOT NULL,
  reason text NOT NULL, decided_at bigint NOT NULL,
  PRIMARY KEY (request_id, approver_kind, approver_subject));
`,
  },
  {
    version: 3,
    name: 'one audit log across replicas',
    // The SQLite audit tables (src/audit/schema.ts) with the same columns, so one snapshot copy
    // serves export and verify (pg-snapshot.ts), plus the head row every group commit locks:
    // `audit_head` holds the last seq, its chain hash and the Merkle frontier (the hashes of the
    // perfect subtrees, left to right, 32 bytes each: O(log n)), and the size of the newest
    // checkpoint, so the replica that crosses the interval signs inside the same transaction.
    // Times stay ISO text, as they are hashed into the events' bodies. A recording names the
    // replica writing it (its audit key fingerprint): after a crash, each closes only its own.
    sql: `
CREATE TABLE audit_head (
  id smallint PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, head_hash text NOT NULL,
  frontier bytea NOT NULL, checkpoint_size bigint NOT NULL, checkpoint_at bigint NOT NULL);
INSERT INTO audit_head VALUES (1, 0, '${'0'.repeat(64)}', '', 0, 0);
CREATE TABLE audit_events (
  seq bigint PRIMARY KEY, time text NOT NULL, kind text NOT NULL, session text, subject text, connection text,
  hash text NOT NULL, prev_hash text NOT NULL, leaf bytea NOT NULL, body text NOT NULL, payload text);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_session ON audit_events (session);
CREATE TABLE audit_checkpoints (
  tree_size bigint PRIMARY KEY, root_hash text NOT NULL, head_hash text NOT NULL, timestamp text NOT NULL,
  key_fingerprint text NOT NULL, signature text NOT NULL);
CREATE TABLE audit_keys (fingerprint text PRIMARY KEY, public_pem text NOT NULL, first_used_at text NOT NULL);
CREATE TABLE audit_anchors (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tree_size bigint NOT NULL, root_hash text NOT NULL,
  kind text NOT NULL, target text NOT NULL, published_at text NOT NULL, token bytea, gen_time text);
CREATE INDEX audit_anchors_size ON audit_anchors (tree_size);
CREATE TABLE audit_payload_removals (seq bigint PRIMARY KEY, how text NOT NULL, at text NOT NULL, ref text NOT NULL);
CREATE INDEX audit_payload_removals_ref ON audit_payload_removals (ref);
CREATE TABLE audit_holds (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, scope text NOT NULL, target text NOT NULL, reason text NOT NULL,
  placed_at text NOT NULL, placed_by text NOT NULL, released_at text);
CREATE TABLE audit_recordings (
  session_id text PRIMARY KEY, connection text, connection_type text, started_at text NOT NULL, finished_at text,
  cap_bytes bigint NOT NULL, bytes bigint NOT NULL DEFAULT 0, chunks integer NOT NULL DEFAULT 0,
  truncated integer NOT NULL DEFAULT 0, dropped_bytes bigint NOT NULL DEFAULT 0, sha256 text, pruned_at text,
  replica text NOT NULL);
CREATE TABLE audit_recording_chunks (
  session_id text NOT NULL, idx integer NOT NULL, at_ms bigint NOT NULL, direction text NOT NULL, kind text NOT NULL,
  encoding text NOT NULL, size integer NOT NULL, sha256 text NOT NULL, payload bytea,
  PRIMARY KEY (session_id, idx));
`,
  },
  {
    version: 4,
    name: 'replica heartbeats',
    // One row per live replica (src/gateway/replicas.ts). The id is the replica's audit key
    // fingerprint, the id its recordings already carry (audit_recordings.replica), so the sessions
    // a dead replica left open are found without a new column. Each row says how often it beats:
    // a replica is dead when its own interval was missed several times, whatever the observer's.
    // Times are the database's now(), so the replicas' clocks do not enter into it.
    sql: `
CREATE TABLE replicas (
  id text PRIMARY KEY, url text NOT NULL, started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,
  heartbeat_ms integer NOT NULL);
`,
  },
  {
    version: 5,
    name: 'audit sink positions',
    // The last seq each audit sink has (and, under "<name>#tree-head", the size of the last signed
    // head it was handed), as in the SQLite store: the position lives with the log, so a replica
    // that dies loses nothing and the one that takes the sink over goes on from here. Only the
    // replica holding the sink's advisory lock writes it (pg-locks.ts, sink-store.ts).
    sql: `
CREATE TABLE audit_sink_cursors (name text PRIMARY KEY, seq bigint NOT NULL);
`,
  },
  {
    version: 6,
    name: 'console sessions and logins',
    // The web console's login state (src/console/store-postgres.ts), with the SQLite columns: rows
    // keyed by the SHA-256 of the cookie id or the login state, times in the gateway's milliseconds
    // like approvals. (created_at, key) orders the rows for the bound: the newest stay.
    sql: `
CREATE TABLE console_sessions (
  key text PRIMARY KEY, identity_json text NOT NULL, csrf text NOT NULL,
  created_at bigint NOT NULL, expires_at bigint NOT NULL);
CREATE INDEX console_sessions_age ON console_sessions (created_at, key);
CREATE TABLE console_logins (
  key text PRIMARY KEY, verifier text NOT NULL, next_page text NOT NULL,
  created_at bigint NOT NULL, expires_at bigint NOT NULL);
CREATE INDEX console_logins_age ON console_logins (created_at, key);
`,
  },
]

/** pg_advisory_xact_lock key of hoop's schema changes ("hoop" in ASCII), the same in every replica. */
const MIGRATION_LOCK = 0x686f6f70

/** Applies every migration the database lacks, one transaction each; returns the schema version. */
export async function migrate(pool: pg.Pool): Promise<number> {
  const latest = MIGRATIONS[MIGRATIONS.length - 1].version
  for (;;) {
    const done = await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
      const {rows} = await client.query<{v: number}>('SELECT coalesce(max(version), 0)::integer AS v FROM schema_migrations')
      const current = rows[0].v
      if (current > latest) {
        // A newer hoop migrated this store: running old code on it could corrupt what it added.
        throw new HoopError('STORE_UNAVAILABLE', `the store's schema is at version ${current}, newer than this hoop knows (${latest}); upgrade hoop`)
      }
      const next = MIGRATIONS.find((m) => m.version === current + 1)
      if (!next) return current
      await client.query(next.sql)
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [next.version, next.name])
      return undefined
    })
    if (done !== undefined) return done
  }
}
