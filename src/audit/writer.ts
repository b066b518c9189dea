// What the gateway needs of an audit writer, whichever store holds the log: the data dir's SQLite
// file (log.ts, AuditLog) or the PostgreSQL store every replica shares (pg-log.ts, PgAuditLog).
// The gate, the sessions, the API and the operations endpoints take this type, so they do not
// care which one they have.
import type {HoopError} from '../shared/errors.js'
import type {AppendedEvent, AuditEvent} from './events.js'
import type {SignedTreeHead} from './keys.js'
import type {StoreVerdict} from './vouch.js'

/** Why the gateway opened a store it could not vouch for (--accept-store-rollback). */
export interface AcceptedStore {
  kind: Exclude<StoreVerdict, {ok: true}>['kind'] | 'witness-missing'
  message: string
  /** The head the store was compared with. */
  head?: SignedTreeHead
  witness?: string
}

export interface AuditWriter {
  /** Set when the store was opened with --accept-store-rollback, with the reason it was not vouched for. */
  readonly accepted?: AcceptedStore
  /** Events committed, as far as this writer knows (the log's size at its last commit). */
  readonly size: number
  /** The Merkle root at `size`, hex. */
  readonly rootHash: string
  /** Why appends are refused now (closed, or the last group commit failed), or undefined; for /readyz. */
  readonly unavailable: HoopError | undefined
  /** After a failed commit: tries the store again without appending, so /readyz can recover. */
  probe?(): Promise<void>
  /** Resolves once the event is durable; rejects with AUDIT_UNAVAILABLE otherwise (see AuditLog.append). */
  append(event: AuditEvent, opts?: {defer?: boolean; overlap?: boolean}): Promise<AppendedEvent>
  /** Whether a record placed now can be committed (the gate's hold mode asks before forwarding). */
  accepts(): boolean
  /** Waits until everything appended so far is committed (or failed). */
  flush(): Promise<void>
  /** Commits what is queued and returns a signed head covering every committed event. */
  signHead(): Promise<SignedTreeHead>
  /** The newest signed tree head in the log (whichever replica signed it), if any. */
  latestHead(): Promise<SignedTreeHead | undefined>
  /** The newest `limit` audit.access events (exports, listings, replays), newest first. */
  recentAccess(limit: number): Promise<{seq: number; time: string; body: string}[]>
  publicKeyPem(): string
  fingerprint(): string
  keyDocument(): {algorithm: 'Ed25519'; publicKey: string; fingerprint: string}
  close(opts?: {sinkDrainMs?: number}): Promise<void>
}

/** An append waiting for its group commit (both writers queue these). */
export interface Pending {
  event: AuditEvent
  resolve: (e: AppendedEvent) => void
  reject: (err: Error) => void
}
