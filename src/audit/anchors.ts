// Outside anchors: signed tree heads published beyond the gateway's own store, so that a store
// rolled back, cut short or rewritten is caught by anyone who holds one of them. An anchor is a
// signed tree head, optionally with an RFC 3161 timestamp token over it. The gateway writes each
// head it signs to the witness file (JSONL, one anchor per line, fsync'd, append-only; it may live
// on another volume or host), to every audit sink, and to a timestamp authority when configured.
//
// Line format (canonical JSON): {"tree_head": {...}} or {"tree_head": {...}, "timestamp":
// {"tsa": URL, "token": base64 DER, "gen_time": ISO 8601}}. The token's message imprint is
// headDigest(tree_head): SHA-256 of the head's canonical JSON, signature included.
import {createHash} from 'node:crypto'
import {closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync} from 'node:fs'
import {dirname} from 'node:path'
import {canonicalize} from './canonical.js'
import type {SignedTreeHead} from './keys.js'

/** The witness file's name in the data dir when `audit.witness` does not put it elsewhere. */
export const WITNESS_FILE = 'audit-witness.jsonl'

export interface AnchorTimestamp {
  /** The TSA's URL, as configured. */
  tsa: string
  /** The TimeStampToken (CMS ContentInfo), DER, base64. */
  token: string
  /** The token's genTime, ISO 8601. */
  gen_time: string
}

export interface Anchor {
  tree_head: SignedTreeHead
  timestamp?: AnchorTimestamp
  /**
   * On the first head after `hoop gateway --accept-store-rollback`: the store was accepted though
   * it did not match the heads before this line (what was wrong, when). Heads before it describe
   * the log as it was before the rollback.
   */
  accepted?: {problem: string; at: string}
}

const HEX64 = /^[0-9a-f]{64}$/

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0
}

/** Why `x` is not a signed tree head, or undefined when it has the shape of one. */
export function treeHeadProblem(x: unknown): string | undefined {
  if (!isObject(x)) return 'is not a JSON object'
  if (!isCount(x.tree_size)) return 'has no valid tree_size'
  for (const k of ['root_hash', 'head_hash']) if (typeof x[k] !== 'string' || !HEX64.test(x[k] as string)) return `has no valid ${k}`
  for (const k of ['timestamp', 'key_fingerprint', 'signature']) if (typeof x[k] !== 'string') return `has no valid ${k}`
  return undefined
}

/**
 * An anchor from parsed JSON: a bare signed tree head (a package's tree-head.json), or a witness
 * line {tree_head, timestamp?}. Returns a reason string when it is neither.
 */
export function anchorFromJson(x: unknown): Anchor | string {
  if (isObject(x) && 'tree_head' in x) {
    const p = treeHeadProblem(x.tree_head)
    if (p) return `its tree_head ${p}`
    const a: Anchor = {tree_head: x.tree_head as SignedTreeHead}
    if (x.timestamp !== undefined) {
      const t = x.timestamp
      if (!isObject(t) || typeof t.token !== 'string' || typeof t.tsa !== 'string' || typeof t.gen_time !== 'string') return 'its timestamp is not {tsa, token, gen_time}'
      a.timestamp = {tsa: t.tsa, token: t.token, gen_time: t.gen_time}
    }
    if (x.accepted !== undefined) {
      const ac = x.accepted
      if (!isObject(ac) || typeof ac.problem !== 'string' || typeof ac.at !== 'string') return 'its accepted marker is not {problem, at}'
      a.accepted = {problem: ac.problem, at: ac.at}
    }
    return a
  }
  const p = treeHeadProblem(x)
  return p ? `is neither a signed tree head nor an anchor line (${p})` : {tree_head: x as SignedTreeHead}
}

/** The message imprint a timestamp token over this head carries: SHA-256 of its canonical JSON. */
export function headDigest(sth: SignedTreeHead): Buffer {
  return createHash('sha256').update(canonicalize(sth)).digest()
}

export function anchorLine(a: Anchor): string {
  return canonicalize(a)
}

/**
 * Appends one anchor to the witness file and fsyncs it (and the directory when the file is new),
 * so a head the gateway has published survives a crash of the machine.
 */
export function appendWitness(file: string, a: Anchor): void {
  const created = !existsSync(file)
  if (created) mkdirSync(dirname(file), {recursive: true, mode: 0o700})
  const fd = openSync(file, 'a', 0o600)
  try {
    writeSync(fd, anchorLine(a) + '\n')
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  if (created) {
    try {
      const dfd = openSync(dirname(file), 'r')
      try {
        fsyncSync(dfd)
      } finally {
        closeSync(dfd)
      }
    } catch {
      // Some filesystems cannot fsync a directory; the file itself is on disk.
    }
  }
}

/** How much of the witness file's end is read to find its last line (a line with a token is ~3 KiB). */
const TAIL_BYTES = 256 * 1024

export type WitnessTail =
  | {state: 'absent'}
  | {state: 'empty'}
  | {state: 'ok'; anchor: Anchor; torn: boolean}
  | {state: 'bad'; reason: string}

/**
 * The last complete anchor of a witness file. A last line without its newline (a write cut short
 * by a crash) is skipped and reported as `torn`; any other unreadable last line is `bad`.
 */
export function lastWitnessAnchor(file: string): WitnessTail {
  if (!existsSync(file)) return {state: 'absent'}
  const fd = openSync(file, 'r')
  let text: string
  try {
    const size = fstatSync(fd).size
    const len = Math.min(size, TAIL_BYTES)
    const buf = Buffer.alloc(len)
    let got = 0
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, size - len + got)
      if (n === 0) break
      got += n
    }
    text = buf.subarray(0, got).toString('utf8')
  } finally {
    closeSync(fd)
  }
  const torn = text.length > 0 && !text.endsWith('\n')
  const lines = text.split('\n')
  lines.pop() // the part after the last newline: empty, or a torn line
  const last = lines.at(-1)
  if (last === undefined) return {state: 'empty'}
  if (last.trim() === '') return {state: 'bad', reason: 'its last complete line is empty'}
  let parsed: unknown
  try {
    parsed = JSON.parse(last)
  } catch {
    return {state: 'bad', reason: 'its last line is not valid JSON'}
  }
  const a = anchorFromJson(parsed)
  if (typeof a === 'string') return {state: 'bad', reason: `its last line ${a}`}
  return {state: 'ok', anchor: a, torn}
}
