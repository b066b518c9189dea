// Picks where the console's login state is kept: with the gateway's store, so replicas on one
// PostgreSQL store share it, and a single gateway keeps it in its data dir's SQLite file.
import {PostgresStore} from '../store/postgres.js'
import {SqliteStore} from '../store/sqlite.js'
import type {Store} from '../store/types.js'
import {CONSOLE_LIMITS, type ConsoleStore, type ConsoleStoreLimits} from './store.js'
import {PostgresConsoleStore} from './store-postgres.js'
import {SqliteConsoleStore} from './store-sqlite.js'

export function consoleStoreFor(store: Store, limits: ConsoleStoreLimits = CONSOLE_LIMITS): ConsoleStore {
  if (store instanceof PostgresStore) return new PostgresConsoleStore(store, limits)
  if (store instanceof SqliteStore) return new SqliteConsoleStore(store.db, limits)
  throw new Error(`no console store for a ${store.kind} store`)
}
