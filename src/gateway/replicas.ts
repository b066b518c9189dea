// The replicas of one gateway on the PostgreSQL store (docs/ha.md, "Replicas and heartbeats"):
// each replica keeps a row in `replicas` (migration 4) and beats it every few seconds; a replica
// whose row stopped beating is dead, and the first live replica to notice ends the sessions it
// left open, exactly once, then removes its row. The live rows are what `GET /v1/replicas` lists,
// so agents can find every replica from any one of them. A replica that finds its own row gone
// (it stalled and was taken for dead) is fenced: the audit log refuses its commits (pg-log.ts), it
// ends its live sessions, and registers again as a new incarnation. The SQLite store has one replica and no
// table: nothing here runs there.
import {REPLICA_EPOCH} from '../audit/pg-log.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {PostgresStore} from '../store/postgres.js'

/** How often a replica beats its row (HOOP_REPLICA_HEARTBEAT_MS overrides it, for tests). */
export const HEARTBEAT_MS = 5000
/** Beats a replica may miss before another ends its sessions: one slow store round trip is not a death. */
export const MISSED_BEATS = 3

/** A row is live while its last beat is younger than MISSED_BEATS of its own intervals (the database's clock). */
const LIVE = `heartbeat_at >= now() - make_interval(secs => heartbeat_ms * ${MISSED_BEATS} / 1000.0)`

export interface ReplicaOptions {
  store: PostgresStore
  /** This replica's id: its audit key fingerprint, the id on its recordings (audit_recordings.replica). */
  id: string
  /** Where agents and clients reach this replica (the gateway's public URL). */
  url: string
  intervalMs?: number
  logger: Logger
  /**
   * Ends the open sessions of the dead replica `id` (sessions.ts, closeUnendedSessions); called
   * while this replica holds the dead row's lock, so no other replica runs it at the same time.
   */
  endSessionsOf: (id: string) => Promise<number>
  /**
   * This replica's row was gone at a beat: another ended its sessions in the log. Resolves once
   * its live sessions are ended; the replica then registers again (`onRegistered`).
   */
  onFenced?: () => Promise<void>
  /** Each registration's incarnation (the row's started_at in microseconds), for the audit fence. */
  onRegistered?: (epoch: string) => void
}

export class ReplicaHeartbeat {
  private timer?: NodeJS.Timeout
  private beating = false
  private sweeping = false
  private stopped = false
  private epoch = ''
  private refencing?: Promise<void>
  readonly intervalMs: number

  private constructor(private readonly opts: ReplicaOptions) {
    this.intervalMs = opts.intervalMs ?? HEARTBEAT_MS
  }

  /**
   * Registers this replica (a restart with the same key takes its old row over). Called before
   * the replica closes its own unended sessions: if another replica is ending them as dead right
   * now, the upsert waits for that one's row lock, so the two never close the same sessions.
   */
  static async register(opts: ReplicaOptions): Promise<ReplicaHeartbeat> {
    const r = new ReplicaHeartbeat(opts)
    await r.upsert()
    return r
  }

  /** Starts beating, and looking for dead replicas at each beat. */
  start(): void {
    this.timer = setInterval(() => void this.beat(), this.intervalMs)
    this.timer.unref()
  }

  private async upsert(): Promise<void> {
    // clock_timestamp(), not now(): two registrations in one transaction would share an epoch.
    const [row] = await this.opts.store.query(
      `INSERT INTO replicas (id, url, started_at, heartbeat_at, heartbeat_ms) VALUES ($1, $2, clock_timestamp(), now(), $3)
       ON CONFLICT (id) DO UPDATE SET url = $2, started_at = clock_timestamp(), heartbeat_at = now(), heartbeat_ms = $3
       RETURNING ${REPLICA_EPOCH} AS epoch`,
      [this.opts.id, this.opts.url, this.intervalMs],
    )
    this.epoch = row.epoch as string
    this.opts.onRegistered?.(this.epoch)
  }

  /**
   * Another replica took this one for dead (seen by a beat or by the audit log's fence): end the
   * live sessions, then register as a new incarnation. Concurrent callers share one run.
   */
  refence(): Promise<void> {
    this.refencing ??= (async () => {
      this.opts.logger.error('this replica was taken for dead by another (its heartbeat stalled); its sessions open then were ended in the audit log, so they are closed here too', {replica: this.opts.id})
      try {
        await this.opts.onFenced?.()
        if (!this.stopped) await this.upsert()
      } finally {
        this.refencing = undefined
      }
    })()
    return this.refencing
  }

  /**
   * One beat, then a look for dead replicas. A slow store must not pile beats up; and ending a
   * dead replica's many sessions must not hold this replica's own beats back (it would look dead).
   */
  async beat(): Promise<void> {
    if (this.beating || this.stopped) return
    this.beating = true
    try {
      const rows = await this.opts.store.query(`UPDATE replicas SET heartbeat_at = now(), url = $2 WHERE id = $1 AND ${REPLICA_EPOCH} = $3 RETURNING id`, [this.opts.id, this.opts.url, this.epoch])
      // Another replica found this one silent for too long (a stall, a cut from the store) and
      // ended its open sessions in the log: end them here too, and register again so that agents
      // keep finding this replica.
      if (rows.length === 0) await this.refence()
    } catch (err) {
      this.opts.logger.warn('replica heartbeat failed', {error: errorMessage(err)})
      return
    } finally {
      this.beating = false
    }
    if (this.sweeping) return
    this.sweeping = true
    this.endDead()
      .catch((err) => this.opts.logger.warn('ending a dead replica\'s sessions failed; the next beat tries again', {error: errorMessage(err)}))
      .finally(() => (this.sweeping = false))
  }

  /**
   * Ends each dead replica's open sessions under a lock on its row: `FOR UPDATE SKIP LOCKED`
   * makes the other live replicas pass over a row being handled, and the row is deleted in the
   * same transaction, so the sessions are ended once. A replica that dies midway releases the
   * lock and another does the rest (a session already ended in the log is not ended again).
   */
  async endDead(): Promise<number> {
    const dead = await this.opts.store.query(`SELECT id FROM replicas WHERE id <> $1 AND NOT (${LIVE})`, [this.opts.id])
    let ended = 0
    for (const {id} of dead) {
      ended += await this.opts.store.transaction(async (q) => {
        // This transaction sits idle while the sessions are ended through the audit log, and its
        // row lock is what keeps the dead replica's commits out until the row is gone: the store's
        // timeout for transactions left idle by a paused process must not end it midway.
        await q('SET LOCAL idle_in_transaction_session_timeout = 0')
        const [row] = await q(`SELECT id, url, heartbeat_at FROM replicas WHERE id = $1 AND NOT (${LIVE}) FOR UPDATE SKIP LOCKED`, [id])
        if (!row) return 0 // another replica has it, or it beat again
        const n = await this.opts.endSessionsOf(id as string)
        await q('DELETE FROM replicas WHERE id = $1', [id])
        this.opts.logger.warn('a replica stopped beating; its open sessions were ended', {replica: id, url: row.url, lastBeat: (row.heartbeat_at as Date).toISOString(), sessions: n})
        return n
      })
    }
    return ended
  }

  /** On a clean shutdown: the row goes, so agents stop linking here and nobody takes it for dead. */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await this.opts.store.query('DELETE FROM replicas WHERE id = $1', [this.opts.id]).catch((err) => this.opts.logger.warn('replica row not removed', {error: errorMessage(err)}))
  }
}

/**
 * The live replicas' URLs, oldest first (`GET /v1/replicas`). A replica listening on every
 * interface without `--replica-url` has no address another host can dial: it beats, but is not
 * listed.
 */
export async function liveReplicaUrls(store: PostgresStore): Promise<string[]> {
  const rows = await store.query(`SELECT url, min(started_at) AS s FROM replicas WHERE ${LIVE} GROUP BY url ORDER BY s, url`)
  return rows.map((r) => r.url as string).filter((u) => !unroutable(u))
}

/** A URL on the wildcard address (0.0.0.0, [::]): where a replica listens, not where it is reached. */
export function unroutable(url: string): boolean {
  try {
    const host = new URL(url).hostname
    return host === '0.0.0.0' || host === '[::]'
  } catch {
    return true
  }
}

/** HOOP_REPLICA_HEARTBEAT_MS: how often a replica beats (100 ms to 1 min); tests make it short. */
export function heartbeatFromEnv(): number | undefined {
  const raw = process.env.HOOP_REPLICA_HEARTBEAT_MS
  if (raw === undefined || raw === '') return undefined
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 100 || ms > 60_000) throw new HoopError('INVALID_INPUT', `HOOP_REPLICA_HEARTBEAT_MS must be a whole number of milliseconds from 100 to 60000, not "${raw.slice(0, 20)}"`)
  return ms
}
