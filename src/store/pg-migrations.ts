// The PostgreSQL store's schema, as numbered migrations recorded in `schema_migrations`. Each
// migration runs in its own transaction holding a transaction-level advisory lock, so replicas
// starting at once apply it exactly once: the others wait on the lock, then find it recorded.
// A migration, once released, is never edited: a change is a new migration at the end.
import type pg from 'pg'
import {HoopError} from '../shared/errors.js'

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
]

/** pg_advisory_xact_lock key of hoop's schema changes ("hoop" in ASCII), the same in every replica. */
const MIGRATION_LOCK = 0x686f6f70

/** Applies every migration the database lacks, one transaction each; returns the schema version. */
export async function migrate(pool: pg.Pool): Promise<number> {
  const latest = MIGRATIONS[MIGRATIONS.length - 1].version
  for (;;) {
    const client = await pool.connect()
    let failed = false
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
      const {rows} = await client.query<{v: number}>('SELECT coalesce(max(version), 0)::integer AS v FROM schema_migrations')
      const current = rows[0].v
      if (current > latest) {
        // A newer hoop migrated this store: running old code on it could corrupt what it added.
        throw new HoopError('STORE_UNAVAILABLE', `the store's schema is at version ${current}, newer than this hoop knows (${latest}); upgrade hoop`)
      }
      const next = MIGRATIONS.find((m) => m.version === current + 1)
      if (!next) {
        await client.query('COMMIT')
        return current
      }
      await client.query(next.sql)
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [next.version, next.name])
      await client.query('COMMIT')
    } catch (err) {
      failed = true
      await client.query('ROLLBACK').catch(() => undefined)
      throw err
    } finally {
      // A connection that failed mid-transaction is not handed to anyone else.
      client.release(failed)
    }
  }
}
