// Authenticates gateway-issued keys (service accounts `hoop_sa_…`, agents `hoop_ag_…`) against
// the store: look up by id, compare the hash in constant time, refuse revoked keys.
import {HoopError} from '../shared/errors.js'
import type {Store} from '../store/types.js'
import {parseKey, secretMatches} from './keys.js'
import type {Identity} from './types.js'

export function looksLikeServiceKey(bearer: string): boolean {
  return bearer.startsWith('hoop_sa_') || bearer.startsWith('hoop_ag_')
}

export async function authenticateServiceKey(store: Store, bearer: string, expect: 'sa' | 'ag'): Promise<Identity> {
  const key = parseKey(bearer)
  if (!key || key.kind !== expect) {
    throw new HoopError('TOKEN_REJECTED', expect === 'ag' ? 'agent token is malformed' : 'service-account key is malformed')
  }
  if (expect === 'ag') {
    const rec = await store.findAgentById(key.id)
    if (!rec || !secretMatches(key.secret, rec.hash)) throw new HoopError('TOKEN_REJECTED', 'agent token rejected')
    if (rec.revokedAt) throw new HoopError('TOKEN_REJECTED', `agent token for "${rec.name}" was revoked`)
    return {kind: 'agent', subject: rec.name, name: rec.name, groups: []}
  }
  const rec = await store.findServiceAccountById(key.id)
  if (!rec || !secretMatches(key.secret, rec.hash)) throw new HoopError('TOKEN_REJECTED', 'service-account key rejected')
  if (rec.revokedAt) throw new HoopError('TOKEN_REJECTED', `service-account key for "${rec.name}" was revoked`)
  return {kind: 'service-account', subject: rec.name, name: rec.name, groups: rec.groups}
}
