// Who drives a background job (an audit sink, audit retention) among the replicas sharing one
// PostgreSQL store: a session-level advisory lock (pg_try_advisory_lock) per job, held on one
// dedicated connection per replica. The lock lives as long as that connection, so a replica that
// dies lets go as soon as PostgreSQL sees its connection close (at once for a killed process; after
// TCP keepalive for a vanished host) and another takes the job on its next try: no lease to
// expire, no clocks compared. Queries that must only succeed while the lock is held (a sink's
// position) run on the same connection: if they succeed, the session holding the lock is alive,
// so a replica that lost its lock cannot move a position (a fence). Losing the connection forgets
// every lock; the next `claim` reconnects and tries again.
// https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS
import type pg from 'pg'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {Row} from './rows.js'

/** The advisory lock class of hoop's background jobs ("hooq"); the job's name is hashed into the second key. */
const JOB_LOCK_CLASS = 0x686f6f71

export type Claim = 'held' | 'gained' | 'taken'

export class PgLockSession {
  private client?: pg.Client
  private connecting?: Promise<pg.Client>
  private readonly held = new Set<string>()
  private closed = false

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    private readonly logger: Logger,
  ) {}

  /**
   * Takes the job's lock if no other session holds it: 'gained' (just now: state kept elsewhere
   * must be re-read), 'held' (since an earlier claim on this same connection) or 'taken' (another
   * replica drives it). Throws when the store cannot be reached.
   */
  async claim(job: string): Promise<Claim> {
    if (this.closed) return 'taken'
    const c = await this.session()
    if (this.held.has(job)) return 'held'
    const [r] = (await c.query('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [JOB_LOCK_CLASS, job])).rows as Row[]
    if (r?.ok !== true) return 'taken'
    this.held.add(job)
    return 'gained'
  }

  holds(job: string): boolean {
    return this.held.has(job)
  }

  /**
   * A query on the connection holding the job's lock: it runs only while this session holds it
   * (never on a new connection made since), so what it writes was written by the job's driver.
   */
  async query(job: string, sql: string, args: unknown[] = []): Promise<Row[]> {
    const c = this.client
    if (!c || !this.held.has(job)) throw new Error(`this replica no longer holds the lock of ${job}`)
    return (await c.query(sql, args)).rows as Row[]
  }

  /** Ends the connection: every lock is released and another replica takes the jobs. */
  async close(): Promise<void> {
    this.closed = true
    const c = this.client ?? (await this.connecting?.catch(() => undefined))
    this.drop()
    await c?.end().catch(() => undefined)
  }

  private async session(): Promise<pg.Client> {
    if (this.client) return this.client
    this.connecting ??= this.connect().then(
      (c) => {
        this.connecting = undefined
        if (this.closed) {
          void c.end().catch(() => undefined)
          throw new Error('the lock session is closed')
        }
        // A lost connection released every lock on the server: forget them here too.
        const lost = (err?: Error): void => {
          if (this.client !== c) return
          this.logger.warn('the background-job lock connection was lost; its jobs go to whichever replica claims them next', {error: err ? errorMessage(err) : 'closed', jobs: [...this.held]})
          this.drop()
        }
        c.on('error', lost)
        c.on('end', () => lost())
        this.client = c
        return c
      },
      (err: unknown) => {
        this.connecting = undefined
        throw err
      },
    )
    return this.connecting
  }

  private drop(): void {
    this.client = undefined
    this.held.clear()
  }
}
