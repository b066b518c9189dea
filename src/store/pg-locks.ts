// Who drives a background job (an audit sink, audit retention) among the replicas sharing one
// PostgreSQL store: a session-level advisory lock (pg_try_advisory_lock) per job, held on one
// dedicated connection per replica. The lock lives as long as that connection, so a replica that
// dies lets go as soon as PostgreSQL sees its connection close (at once for a killed process; after
// TCP keepalive for a vanished host) and another takes the job on its next try: no lease to
// expire, no clocks compared. Queries that must only succeed while the lock is held (a sink's
// position) run on the same connection: if they succeed, the session holding the lock is alive,
// so a replica that lost its lock cannot move a position (a fence). Losing the connection forgets
// every lock; the next `claim` reconnects and tries again.
//
// A replica that freezes (stopped, swapped out) or is cut off with its socket still open would
// keep its locks until PostgreSQL noticed, which for a silent peer is TCP keepalive: hours by
// default. So the session asks PostgreSQL to end it once it has been silent for IDLE_SESSION_MS,
// and pings every PING_MS while it lives: a live replica is never silent that long, and the jobs
// of a frozen one go to another replica within IDLE_SESSION_MS.
// https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS
import type pg from 'pg'
import {errorMessage} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {Row} from './rows.js'

/** The advisory lock class of hoop's background jobs ("hooq"); the job's name is hashed into the second key. */
const JOB_LOCK_CLASS = 0x686f6f71

export type Claim = 'held' | 'gained' | 'taken'

/** How long the server lets a silent lock session live, and how often a live one speaks. */
export interface LockSessionTimers {
  idleSessionMs?: number
  pingMs?: number
}
const IDLE_SESSION_MS = 20_000
const PING_MS = 5_000

export class PgLockSession {
  private client?: pg.Client
  private connecting?: Promise<pg.Client>
  private ping?: NodeJS.Timeout
  private readonly held = new Set<string>()
  private closed = false
  private readonly idleSessionMs: number
  private readonly pingMs: number

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    private readonly logger: Logger,
    timers: LockSessionTimers = {},
  ) {
    this.idleSessionMs = timers.idleSessionMs ?? IDLE_SESSION_MS
    this.pingMs = timers.pingMs ?? PING_MS
  }

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
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined
    })
    return this.connecting
  }

  private async open(): Promise<pg.Client> {
    const c = await this.connect()
    // A lost connection released every lock on the server: forget them here too.
    const lost = (err?: Error): void => {
      if (this.client !== c) return
      this.logger.warn('the background-job lock connection was lost; its jobs go to whichever replica claims them next', {error: err ? errorMessage(err) : 'closed', jobs: [...this.held]})
      this.drop()
      // A ping that failed may have left the connection open: end it, so no lock outlives this.
      void c.end().catch(() => undefined)
    }
    c.on('error', lost)
    c.on('end', () => lost())
    try {
      if (this.closed) throw new Error('the lock session is closed')
      await c.query(`SET idle_session_timeout = ${Math.round(this.idleSessionMs)}`)
      if (this.closed) throw new Error('the lock session is closed')
    } catch (err) {
      void c.end().catch(() => undefined)
      throw err
    }
    this.client = c
    this.ping = setInterval(() => void c.query('SELECT 1').catch((err: Error) => lost(err)), this.pingMs)
    this.ping.unref()
    return c
  }

  private drop(): void {
    clearInterval(this.ping)
    this.ping = undefined
    this.client = undefined
    this.held.clear()
  }
}
