// The stores the conformance suite runs against, each able to hand out fresh, empty backings:
// SQLite in a temp dir, and PostgreSQL in databases of this test run's own on 127.0.0.1:5432
// (hoop_store_test_<pid>_<n>), dropped when the suite ends.
import pg from 'pg'
import {PostgresStore} from '../../src/store/postgres.js'
import {SqliteStore} from '../../src/store/sqlite.js'
import type {Store} from '../../src/store/types.js'
import {tempDir} from '../helpers/cli.js'

export const PG_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres'

/** One empty store backing: a temp dir or a database. Every `open` is a new Store on the same backing. */
export interface Backing {
  open(): Promise<Store>
  /** For PostgreSQL: the database URL, to inspect what the migrations left. */
  url?: string
}

export interface Backend {
  name: 'sqlite' | 'postgres'
  fresh(): Promise<Backing>
  /** Removes every backing made, after closing the stores the test opened. */
  cleanup(): Promise<void>
}

export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, url = PG_ADMIN_URL): Promise<R[]> {
  const c = new pg.Client({connectionString: url})
  await c.connect()
  try {
    return (await c.query<R>(sql)).rows
  } finally {
    await c.end()
  }
}

export function sqliteBackend(): Backend {
  const dirs: Array<{cleanup(): void}> = []
  return {
    name: 'sqlite',
    async fresh() {
      const dir = tempDir('hoop-store-conformance-')
      dirs.push(dir)
      return {open: async () => new SqliteStore(dir.path)}
    },
    async cleanup() {
      for (const d of dirs) d.cleanup()
    },
  }
}

export function postgresBackend(): Backend {
  const databases: string[] = []
  return {
    name: 'postgres',
    async fresh() {
      const name = `hoop_store_test_${process.pid}_${databases.length}`
      await adminQuery(`DROP DATABASE IF EXISTS ${name}`)
      await adminQuery(`CREATE DATABASE ${name}`)
      databases.push(name)
      const url = `postgresql://postgres@127.0.0.1:5432/${name}`
      return {url, open: () => PostgresStore.open({url, poolSize: 4})}
    },
    async cleanup() {
      for (const name of databases) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    },
  }
}

/** A new empty database named `<prefix>_<pid>_<n>`, remembered in `made` so the suite can drop it. */
export async function freshDatabase(prefix: string, made: string[]): Promise<string> {
  const name = `${prefix}_${process.pid}_${made.length}`
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await adminQuery(`CREATE DATABASE ${name}`)
  made.push(name)
  return name
}
