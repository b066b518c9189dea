// The store a gateway config names, for commands run on the gateway host with `--config`
// (`hoop admin ...`, `hoop audit erase|hold`): its PostgreSQL store, or the SQLite file in its
// data dir (`--data-dir` wins over the config's dataDir).
import {defaultDataDir, loadGatewayConfig, readSecret} from '../shared/config.js'
import {PostgresStore} from './postgres.js'
import {SqliteStore} from './sqlite.js'
import type {Store} from './types.js'

export type StoreTarget = {kind: 'postgres'; url: string} | {kind: 'sqlite'; dataDir: string}

/** Where a gateway config keeps its state, and its raw audit section (for the holds it places). */
export function configuredStore(file: string, dataDir?: string): StoreTarget & {audit: unknown} {
  const config = loadGatewayConfig(file)
  if (config.store.kind === 'postgres') return {kind: 'postgres', url: readSecret(config.store.url), audit: config.audit}
  return {kind: 'sqlite', dataDir: dataDir ?? config.dataDir ?? defaultDataDir(), audit: config.audit}
}

/** Opens the store a gateway config names (one connection: a command beside live gateways). */
export async function openConfiguredStore(file: string, dataDir?: string): Promise<Store> {
  const t = configuredStore(file, dataDir)
  return t.kind === 'postgres' ? PostgresStore.open({url: t.url, poolSize: 1}) : new SqliteStore(t.dataDir)
}
