// PostgreSQL store (`pg`): the store several gateway replicas share. A small pool; the schema is
// migrated on open (pg-migrations.ts). The URL carries a password, so it never appears as is in an
// error or a log line: every message that could hold it goes through redactUrl or scrub.
import pg from 'pg'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {CHANNELS, type ListenOptions} from './notify.js'
import {type LockSessionTimers, PgLockSession} from './pg-locks.js'
import {migrate} from './pg-migrations.js'
import {inTransaction} from './pg-tx.js'
import {nameTaken, type AgentRecord, type ServiceAccountRecord, type SessionEnd, type SessionRecord, type SessionStart, type Store} from './types.js'
import {agentFromRow, serviceAccountFromRow, sessionFromRow, storedTime, type Row} from './rows.js'

export interface PostgresStoreOptions {
  url: string
  /** Connections in the pool (default 10). */
  poolSize?: number
  /** How long PostgreSQL lets a transaction of this store wait on the gateway (default 5 s). */
  idleInTransactionMs?: number
  logger?: Logger
}

/** PostgreSQL's unique_violation: a live name taken (the partial unique indexes). */
const UNIQUE_VIOLATION = '23505'
const CONNECT_TIMEOUT_MS = 5000
/** A store that stops answering fails the call (a session start, a key lookup) instead of hanging it. */
const QUERY_TIMEOUT_MS = 10_000
/**
 * A replica frozen inside a transaction (stopped, swapped out, cut off with its socket open)
 * would hold its row locks for as long as it is frozen: the audit head row among them, which
 * every replica's group commit takes. PostgreSQL ends such a transaction after this long, so
 * the others wait at most this, and the frozen replica finds its transaction gone when it wakes.
 * No transaction of the gateway waits on its own client this long unless its process stalls.
 */
const IDLE_IN_TRANSACTION_MS = 5000

/** The URL with its password (and any password query parameter) replaced, for messages. */
export function redactUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return '<a store URL that does not parse>'
  }
  if (u.password) u.password = 'redacted'
  for (const key of [...u.searchParams.keys()]) if (/pass/i.test(key)) u.searchParams.set(key, 'redacted')
  return u.toString()
}

/** A message with every form of the URL's password in it replaced (drivers may quote what they parsed). */
function scrub(text: string, url: string): string {
  const secrets = new Set<string>()
  try {
    const u = new URL(url)
    if (u.password) secrets.add(u.password).add(decodeURIComponent(u.password))
    for (const [key, value] of u.searchParams) if (/pass/i.test(key) && value) secrets.add(value)
  } catch {
    secrets.add(url) // unparseable: the whole string may be the secret
  }
  let out = text
  for (const s of secrets) if (s) out = out.split(s).join('redacted')
  return out
}

export class PostgresStore implements Store {
  readonly kind = 'postgres'
  readonly shared = true

  private constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
  ) {}

  /** Connects, migrates the schema, and fails with STORE_UNAVAILABLE (URL redacted) when it cannot. */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      idle_in_transaction_session_timeout: opts.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS,
      application_name: 'hoop-gateway',
    })
    // An idle connection dropped by the server must not crash the gateway; the pool replaces it.
    pool.on('error', (err) => opts.logger?.warn('store connection lost', {store: redactUrl(opts.url), error: scrub(errorMessage(err), opts.url)}))
    try {
      await migrate(pool)
    } catch (err) {
      await pool.end().catch(() => undefined)
      if (err instanceof HoopError) throw err
      throw new HoopError('STORE_UNAVAILABLE', `cannot open the store at ${redactUrl(opts.url)}: ${scrub(reason(err), opts.url)}`)
    }
    return new PostgresStore(pool, opts.url)
  }

  /**
   * One query; a failure other than a taken name becomes STORE_UNAVAILABLE, with the password
   * scrubbed. Public for the parts that keep their own tables on this store (approvals).
   */
  async query(sql: string, args: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.pool.query(sql, args)).rows as Row[]
    } catch (err) {
      throw this.storeError(err)
    }
  }

  /**
   * Runs `fn` in one transaction on one connection (for row locks: SELECT ... FOR UPDATE). An error
   * from `fn` rolls back and is thrown as is; a store failure becomes STORE_UNAVAILABLE.
   */
  async transaction<T>(fn: (query: (sql: string, args?: unknown[]) => Promise<Row[]>) => Promise<T>): Promise<T> {
    try {
      return await inTransaction(this.pool, (client) =>
        fn(async (sql, args = []) => {
          try {
            return (await client.query(sql, args)).rows as Row[]
          } catch (err) {
            throw this.storeError(err)
          }
        }),
      )
    } catch (err) {
      // What `fn` refused stays as it is; a lost connection or a failed BEGIN/COMMIT is the store's.
      throw err instanceof HoopError ? err : this.storeError(err)
    }
  }

  private storeError(err: unknown): unknown {
    const code = (err as {code?: string}).code
    if (code === UNIQUE_VIOLATION) return err
    return new HoopError('STORE_UNAVAILABLE', `store query failed at ${redactUrl(this.url)}: ${scrub(reason(err), this.url)}`)
  }

  /** Inserts a named record; a live name already taken is CONFLICT, as in the SQLite store. */
  private async insertNamed(kind: 'agent' | 'service account', name: string, sql: string, args: unknown[]): Promise<void> {
    try {
      await this.query(sql, args)
    } catch (err) {
      if ((err as {code?: string}).code === UNIQUE_VIOLATION) throw nameTaken(kind, name)
      throw err
    }
  }

  async createAgent(name: string, id: string, hash: string): Promise<AgentRecord> {
    const createdAt = new Date().toISOString()
    await this.insertNamed('agent', name, 'INSERT INTO agents (id, name, hash, created_at) VALUES ($1, $2, $3, $4)', [id, name, hash, createdAt])
    return {id, name, createdAt}
  }

  async findAgentById(id: string): Promise<(AgentRecord & {hash: string}) | undefined> {
    const [row] = await this.query('SELECT * FROM agents WHERE id = $1', [id])
    return row ? {...agentFromRow(row), hash: row.hash as string} : undefined
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (await this.query('SELECT * FROM agents ORDER BY created_at, name')).map(agentFromRow)
  }

  async revokeAgent(name: string): Promise<AgentRecord | undefined> {
    // One statement: two replicas revoking at once revoke once, and both see the same record.
    const [row] = await this.query(revokeAndNotify('agents', 'agent'), [name, new Date().toISOString()])
    return row ? agentFromRow(row) : undefined
  }

  async touchAgent(name: string): Promise<void> {
    await this.query('UPDATE agents SET last_seen_at = $2 WHERE name = $1 AND revoked_at IS NULL', [name, new Date().toISOString()])
  }

  async createServiceAccount(name: string, groups: string[], id: string, hash: string): Promise<ServiceAccountRecord> {
    const createdAt = new Date().toISOString()
    await this.insertNamed('service account', name, 'INSERT INTO service_accounts (id, name, groups, hash, created_at) VALUES ($1, $2, $3, $4, $5)', [id, name, groups, hash, createdAt])
    return {id, name, groups, createdAt}
  }

  async findServiceAccountById(id: string): Promise<(ServiceAccountRecord & {hash: string}) | undefined> {
    const [row] = await this.query('SELECT * FROM service_accounts WHERE id = $1', [id])
    return row ? {...serviceAccountFromRow(row), hash: row.hash as string} : undefined
  }

  async listServiceAccounts(): Promise<ServiceAccountRecord[]> {
    return (await this.query('SELECT * FROM service_accounts ORDER BY created_at, name')).map(serviceAccountFromRow)
  }

  async revokeServiceAccount(name: string): Promise<ServiceAccountRecord | undefined> {
    const [row] = await this.query(revokeAndNotify('service_accounts', 'service-account'), [name, new Date().toISOString()])
    return row ? serviceAccountFromRow(row) : undefined
  }

  async startSession(rec: SessionStart): Promise<void> {
    await this.query('INSERT INTO sessions (id, subject, identity_kind, connection, agent, client_address, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      rec.id,
      rec.subject,
      rec.identityKind,
      rec.connection,
      rec.agent,
      rec.clientAddress ?? null,
      rec.startedAt,
    ])
  }

  async endSession(id: string, end: SessionEnd): Promise<void> {
    await this.query('UPDATE sessions SET ended_at = $2, bytes_up = $3, bytes_down = $4, end_reason = $5 WHERE id = $1', [id, end.endedAt, end.bytesUp, end.bytesDown, end.endReason])
  }

  async listSessions(opts: {limit?: number} = {}): Promise<SessionRecord[]> {
    const rows = await this.query('SELECT * FROM sessions ORDER BY started_at DESC, id DESC LIMIT $1', [opts.limit ?? 100])
    return rows.map(sessionFromRow)
  }

  async listOpenSessions(): Promise<Array<{id: string; startedAt: string}>> {
    const rows = await this.query('SELECT id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY started_at, id')
    return rows.map((r) => ({id: r.id as string, startedAt: storedTime(r.started_at)!}))
  }

  /** What the replicas' LISTEN/NOTIFY signals (notify.ts) need: the URL, this pool, the scrubber. */
  listenOptions(logger: Logger): ListenOptions {
    return {url: this.url, store: this, logger, scrub: (text) => scrub(text, this.url)}
  }

  /**
   * A connection of its own (outside the pool) for the background jobs' advisory locks
   * (pg-locks.ts); connected on first use, with keepalive so a vanished peer is noticed.
   */
  lockSession(logger: Logger, timers?: LockSessionTimers): PgLockSession {
    return new PgLockSession(async () => {
      const c = new pg.Client({connectionString: this.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, query_timeout: QUERY_TIMEOUT_MS, keepAlive: true, application_name: 'hoop-gateway-jobs'})
      // Until the lock session takes it over, an error event must not crash the process.
      const early = (): void => undefined
      c.on('error', early)
      try {
        await c.connect()
      } catch (err) {
        throw this.storeError(err)
      } finally {
        c.off('error', early)
      }
      return c
    }, logger, timers)
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1')
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}

/**
 * Revokes a live name and, in the same statement, tells every replica (notify.ts): PostgreSQL
 * delivers the NOTIFY at commit, so no replica hears of a revocation that did not happen, and a
 * revocation made straight on the store (`hoop admin ... --config`) is heard like one made through
 * a gateway.
 */
function revokeAndNotify(table: 'agents' | 'service_accounts', what: 'agent' | 'service-account'): string {
  return `WITH r AS (UPDATE ${table} SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING *)
SELECT r.*, pg_notify('${CHANNELS.revoked}', json_build_object('what', '${what}', 'name', r.name)::text) FROM r`
}

/** Why a connection or query failed, for a message: the driver's text, or the socket error's code. */
function reason(err: unknown): string {
  const code = (err as {code?: unknown}).code
  const message = errorMessage(err)
  return message || (typeof code === 'string' ? code : 'unknown error')
}

/** timestamptz comes back as a Date; the interface speaks ISO strings (millisecond precision, as written). */

