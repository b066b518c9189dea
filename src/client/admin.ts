// Admin operations from the CLI: against a running gateway (admin identity), or directly on the
// gateway host's data dir (--data-dir), which is how the first admin credential is made without
// any default password.
import * as admin from '../gateway/admin.js'
import {SqliteStore} from '../store/sqlite.js'
import type {AgentRecord, ServiceAccountRecord} from '../store/types.js'
import {GatewayApi} from './api.js'
import {resolveBearer, resolveGatewayUrl} from './credentials.js'

export type AdminTarget = {dataDir: string} | {gateway?: string; token?: string}

interface AdminClient {
  createAgent(name: string): Promise<admin.CreatedSecret>
  listAgents(): Promise<Array<AgentRecord & {online?: boolean}>>
  revokeAgent(name: string): Promise<AgentRecord>
  createServiceAccount(name: string, groups: string[]): Promise<admin.CreatedSecret & {groups: string[]}>
  listServiceAccounts(): Promise<ServiceAccountRecord[]>
  revokeServiceAccount(name: string): Promise<ServiceAccountRecord>
}

export async function adminClient(target: AdminTarget): Promise<AdminClient> {
  if ('dataDir' in target) return localAdmin(target.dataDir)
  const gateway = resolveGatewayUrl(target.gateway)
  const api = new GatewayApi(gateway, await resolveBearer({gateway, token: target.token}))
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

function localAdmin(dataDir: string): AdminClient {
  // One short-lived store per call: SQLite WAL lets this run beside a live gateway.
  const withStore = async <T>(fn: (s: SqliteStore) => Promise<T>): Promise<T> => {
    const store = new SqliteStore(dataDir)
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
