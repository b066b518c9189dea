// Admin operations from the CLI: against a running gateway (admin identity), or directly on the
// gateway's store: the data dir (--data-dir) or the store its config names (--config, for a
// PostgreSQL store), which is how the first admin credential is made without any default password.
import * as admin from '../gateway/admin.js'
import {openConfiguredStore} from '../store/open.js'
import {SqliteStore} from '../store/sqlite.js'
import type {AgentRecord, ServiceAccountRecord, Store} from '../store/types.js'
import {openGatewayApi} from './api.js'

export type AdminTarget = {dataDir: string} | {config: string; dataDir?: string} | {gateway?: string; token?: string}

interface AdminClient {
  createAgent(name: string): Promise<admin.CreatedSecret>
  listAgents(): Promise<Array<AgentRecord & {online?: boolean}>>
  revokeAgent(name: string): Promise<AgentRecord>
  createServiceAccount(name: string, groups: string[]): Promise<admin.CreatedSecret & {groups: string[]}>
  listServiceAccounts(): Promise<ServiceAccountRecord[]>
  revokeServiceAccount(name: string): Promise<ServiceAccountRecord>
}

export async function adminClient(target: AdminTarget): Promise<AdminClient> {
  if ('config' in target) return localAdmin(() => openConfiguredStore(target.config, target.dataDir))
  if ('dataDir' in target) {
    const dataDir = target.dataDir
    return localAdmin(async () => new SqliteStore(dataDir))
  }
  const api = await openGatewayApi(target)
  const enc = encodeURIComponent
  return {
    createAgent: (name) => api.request('POST', '/v1/admin/agents', {name}),
    listAgents: async () => (await api.get<{agents: AgentRecord[]}>('/v1/admin/agents')).agents,
    revokeAgent: (name) => api.request('DELETE', `/v1/admin/agents/${enc(name)}`),
    createServiceAccount: (name, groups) => api.request('POST', '/v1/admin/service-accounts', {name, groups}),
    listServiceAccounts: async () => (await api.get<{serviceAccounts: ServiceAccountRecord[]}>('/v1/admin/service-accounts')).serviceAccounts,
    revokeServiceAccount: (name) => api.request('DELETE', `/v1/admin/service-accounts/${enc(name)}`),
  }
}

function localAdmin(open: () => Promise<Store>): AdminClient {
  // One short-lived store per call: SQLite WAL (or PostgreSQL) lets this run beside live gateways.
  const withStore = async <T>(fn: (s: Store) => Promise<T>): Promise<T> => {
    const store = await open()
    try {
      return await fn(store)
    } finally {
      await store.close()
    }
  }
  return {
    createAgent: (name) => withStore((s) => admin.createAgent(s, name)),
    listAgents: () => withStore((s) => s.listAgents()),
    revokeAgent: (name) => withStore((s) => admin.revokeAgent(s, name)),
    createServiceAccount: (name, groups) => withStore((s) => admin.createServiceAccount(s, name, groups)),
    listServiceAccounts: () => withStore((s) => s.listServiceAccounts()),
    revokeServiceAccount: (name) => withStore((s) => admin.revokeServiceAccount(s, name)),
  }
}
