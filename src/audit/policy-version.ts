// The version of a policy, as decisions and policy.reload events record it: the SHA-256 (hex) of
// the policy's canonical JSON without where each rule is written (`at`) or which file it came
// from, so the same rules are the same version wherever they are loaded from, and any change to
// what they decide is a new one. Computed once per loaded policy object.
import type Database from 'better-sqlite3'
import {createHash} from 'node:crypto'
import {canonicalize} from './canonical.js'

const cache = new WeakMap<object, string>()

/** `policy`: a loaded policy ({version, file, defaults, rules: [{..., at}]}), as src/policy gives it. */
export function policyVersion(policy: object): string {
  let v = cache.get(policy)
  if (v === undefined) {
    const {file: _file, rules, ...rest} = policy as {file?: unknown; rules?: unknown[]}
    const plain = JSON.parse(JSON.stringify({...rest, rules: (rules ?? []).map((r) => ({...(r as object), at: undefined}))})) as unknown
    v = createHash('sha256').update(canonicalize(plain)).digest('hex')
    cache.set(policy, v)
  }
  return v
}

/** The policy version the log last recorded as in force (a policy.reload event's new_version), if any. */
export function lastPolicyVersion(db: Database.Database): string | undefined {
  // Newest first; policy events are rare next to statements, so this reads back to the last one.
  for (const [body] of db.prepare("SELECT body FROM audit_events WHERE kind = 'policy.reload' ORDER BY seq DESC").raw().iterate() as IterableIterator<[string]>) {
    const v = (JSON.parse(body) as {data?: {new_version?: unknown}}).data?.new_version
    if (typeof v === 'string') return v
  }
  return undefined
}
