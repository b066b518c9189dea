// Can the gateway vouch for this store? It compares the store with a head it signed and published
// (the witness file's last line): a store with fewer events is behind (rolled back or cut short), a
// store whose first `tree_size` events do not rebuild the head's root or chain hash is forked
// (rewritten), a store that does not know the key that signed the head was replaced. Used by the
// gateway on start (log.ts) and by `hoop audit export` before it signs (export.ts).
import type {KeyObject} from 'node:crypto'
import type {SignedTreeHead} from './keys.js'
import {verifyTreeHead} from './keys.js'

export type StoreVerdict =
  | {ok: true}
  | {ok: false; kind: 'behind' | 'forked' | 'replaced' | 'unverifiable'; message: string}

interface StoreView {
  /** Events in the store (its last seq, with no gap). */
  size: number
  /** Merkle root of the first m events, hex (m <= size). */
  rootAt(m: number): string | undefined
  /** Chain hash of event m, hex. */
  hashAt(m: number): string | undefined
}

/** `where` names the head in messages ("the witness file /x, line 12"). */
export function vouch(store: StoreView, head: SignedTreeHead, keyFor: (fingerprint: string) => KeyObject | undefined, where: string): StoreVerdict {
  const key = keyFor(head.key_fingerprint)
  const signed = `the tree head of size ${head.tree_size} signed at ${head.timestamp} (${where})`
  if (!key) {
    return {ok: false, kind: 'replaced', message: `${signed} was signed by key ${head.key_fingerprint}, which this store has never recorded: the store was replaced by another one`}
  }
  if (!verifyTreeHead(head, key)) {
    return {ok: false, kind: 'unverifiable', message: `${signed} does not verify with the gateway's key: the published head was altered, so the store cannot be checked against it`}
  }
  if (store.size < head.tree_size) {
    const what = store.size === 0 ? 'the store is empty: it was replaced by a new one' : `the store ends at seq ${store.size}: it was rolled back to an earlier copy or cut short`
    return {ok: false, kind: 'behind', message: `${signed} covers ${head.tree_size} events, but ${what} (${head.tree_size - store.size} published events are missing)`}
  }
  const root = store.rootAt(head.tree_size)
  const hash = store.hashAt(head.tree_size)
  if (root !== head.root_hash || (head.tree_size > 0 && hash !== head.head_hash)) {
    return {
      ok: false,
      kind: 'forked',
      message: `the store's first ${head.tree_size} events do not rebuild ${signed}: the store is a different log (forked or rewritten) from the one the gateway published`,
    }
  }
  return {ok: true}
}
