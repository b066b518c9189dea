// Picks where approvals are kept: with the gateway's store, so replicas on one PostgreSQL store
// share them, and a single gateway keeps them in its data dir's SQLite file as before.
import {PostgresStore} from '../store/postgres.js'
import {SqliteStore} from '../store/sqlite.js'
import type {Store} from '../store/types.js'
import type {ApprovalStore} from './store.js'
import {PostgresApprovalStore} from './store-postgres.js'
import {SqliteApprovalStore} from './store-sqlite.js'

/** The approvals kept where the gateway's store is: the shared PostgreSQL store, or the SQLite file. */
export function approvalStoreFor(store: Store): ApprovalStore {
  if (store instanceof PostgresStore) return new PostgresApprovalStore(store)
  if (store instanceof SqliteStore) return new SqliteApprovalStore(store.db)
  throw new Error(`no approval store for a ${store.kind} store`)
}
