// Admin operations on agents and service accounts, shared by the gateway's HTTP API and the local
// `hoop admin ... --data-dir` commands. A secret is returned once, at creation; only its hash is kept.
import {issueKey} from '../identity/keys.js'
import {HoopError} from '../shared/errors.js'
import type {AgentRecord, ServiceAccountRecord, Store} from '../store/types.js'

const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/
const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/

export interface CreatedSecret {
  name: string
  token: string
}

function checkName(kind: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name === 'embedded') {
    throw new HoopError('INVALID_INPUT', `${kind} name must be lower-case letters, digits, "-", "_" or "." (max 63), and not "embedded"`)
  }
  return name
}

export async function createAgent(store: Store, name: unknown): Promise<CreatedSecret> {
  const n = checkName('agent', name)
  const key = issueKey('ag')
  await store.createAgent(n, key.id, key.hash)
  return {name: n, token: key.token}
}

export async function revokeAgent(store: Store, name: string): Promise<AgentRecord> {
  const rec = await store.revokeAgent(name)
  if (!rec) throw new HoopError('NOT_FOUND', `no active agent named "${name}"`)
  return rec
}

export async function createServiceAccount(store: Store, name: unknown, groups: unknown): Promise<CreatedSecret & {groups: string[]}> {
  const n = checkName('service account', name)
  const list = groups === undefined ? [] : groups
  if (!Array.isArray(list) || !list.every((g) => typeof g === 'string' && GROUP_RE.test(g))) {
    throw new HoopError('INVALID_INPUT', 'groups must be a list of group names (letters, digits, "_.:@-")')
  }
  const key = issueKey('sa')
  await store.createServiceAccount(n, list as string[], key.id, key.hash)
  return {name: n, token: key.token, groups: list as string[]}
}

export async function revokeServiceAccount(store: Store, name: string): Promise<ServiceAccountRecord> {
  const rec = await store.revokeServiceAccount(name)
  if (!rec) throw new HoopError('NOT_FOUND', `no active service account named "${name}"`)
  return rec
}
