// What `hoop audit verify --anchor FILE` does with the anchors an auditor brings: read them
// strictly (a tree-head.json, a witness file, a sink's JSONL file, an RFC 3161 token file), check
// each one's signature and timestamp token, and judge the store or package against them: a head
// the gateway published must be a prefix of what is verified (RFC 6962 consistency), so a store
// rolled back, cut short or rewritten before that head is caught with nothing else kept.
import {type KeyObject, type X509Certificate} from 'node:crypto'
import {closeSync, createReadStream, openSync, readSync, statSync} from 'node:fs'
import {anchorFromJson, type Anchor, headDigest} from './anchors.js'
import {verifyTreeHead} from './keys.js'
import {verifyConsistency} from './merkle.js'
import {parseTimestampResponse, readTimestampToken, verifyTimestampToken} from './tsa.js'
import {LineSplitter} from './lines.js'
import type {VerifyFailure, VerifyLimits} from './verify.js'
import {errorMessage} from '../shared/errors.js'

export interface SourcedAnchor extends Anchor {
  /** Where it came from: "FILE", "FILE line N", "package anchors.jsonl line N". */
  source: string
  /** A consistency proof from this head to the package's head, when the package carries one. */
  proof?: string[]
}

/** Anchors read from the auditor's files, and what could not be read. */
export interface AnchorSet {
  anchors: SourcedAnchor[]
  problems: VerifyFailure[]
}

/** One anchor as verify judged it (reported for the newest head of each source and every failure). */
export interface AnchorCheck {
  source: string
  tree_size: number
  root_hash: string
  /** When the gateway signed the head (its own clock). */
  signed_at: string
  /** When the timestamp authority saw it, when the anchor carries a token. */
  timestamped_at?: string
  result: 'consistent' | 'later' | 'failed'
  reason?: string
  /** RFC 6962 consistency proof from this head to the verified tree. */
  proof?: {from_size: number; to_size: number; nodes: string[]}
}

/** The tree being verified, as the judge sees it. */
interface Target {
  kind: 'live' | 'package'
  size: number
  root: string
  /** When the package speaks for the log (its signed export time): an anchor signed before must not be larger. */
  timestamp?: string
}

interface JudgeInput {
  anchors: SourcedAnchor[]
  /** The key for a fingerprint (pinned, the store's or the package's), and how to name it. */
  keyFor: (fingerprint: string) => KeyObject | undefined
  keyName: string
  tsaCa?: X509Certificate[]
  target: Target
  /** The root (and chain head) of the first m leaves, when the verifier holds them. */
  rootAt: (m: number) => {root: string; headHash?: string} | undefined
  /** A consistency proof from size m to the target, when there is one. */
  proofFrom: (m: number) => string[] | undefined
}

interface Judged {
  checks: AnchorCheck[]
  failures: VerifyFailure[]
  notes: string[]
}

/** Reported checks are bounded: the newest head of each source, and this many failures. */
const MAX_REPORTED_FAILURES = 20

export function judgeAnchors(o: JudgeInput): Judged {
  const failures: VerifyFailure[] = []
  const notes: string[] = []
  const t = o.target
  const what = t.kind === 'live' ? 'the store' : 'this package'
  /** `rewritten`: the store or package disagrees with the head at its size (named once all are judged). */
  type Row = {a: SourcedAnchor; check: AnchorCheck; failure?: VerifyFailure; rewritten?: boolean}
  const rows: Row[] = []
  let unpinnedTokens = 0
  for (const a of o.anchors) {
    const h = a.tree_head
    const check: AnchorCheck = {source: a.source, tree_size: h.tree_size, root_hash: h.root_hash, signed_at: h.timestamp, result: 'failed'}
    const row: Row = {a, check}
    rows.push(row)
    const fail = (record: string, reason: string, seq?: number) => {
      check.reason = reason
      row.failure = {record, reason, seq, file: a.source}
    }
    const key = o.keyFor(h.key_fingerprint)
    if (!key) {
      fail(`anchor (size ${h.tree_size}) from ${a.source}`, `is signed by key ${h.key_fingerprint}, which is not ${o.keyName}`)
      continue
    }
    if (!verifyTreeHead(h, key)) {
      fail(`anchor (size ${h.tree_size}) from ${a.source}`, `its signature does not verify with ${o.keyName}: it is not a head the gateway signed`)
      continue
    }
    if (a.timestamp) {
      let token: Buffer
      try {
        token = Buffer.from(a.timestamp.token, 'base64')
      } catch {
        token = Buffer.alloc(0)
      }
      const tc = verifyTimestampToken(token, {digest: headDigest(h), trusted: o.tsaCa})
      if (!tc.ok) {
        fail(`timestamp token of the anchor (size ${h.tree_size}) from ${a.source}`, tc.reason)
        continue
      }
      if (tc.info.genTime !== new Date(a.timestamp.gen_time).toISOString()) {
        fail(`timestamp token of the anchor (size ${h.tree_size}) from ${a.source}`, `says ${tc.info.genTime}, the anchor claims ${a.timestamp.gen_time}`)
        continue
      }
      check.timestamped_at = tc.info.genTime
      if (tc.chain === 'not-pinned') unpinnedTokens++
    }
    const m = h.tree_size
    if (m > t.size) {
      if (t.kind === 'live') {
        fail(`event seq ${t.size + 1}`, `missing: the tree head of size ${m} the gateway signed at ${h.timestamp} (${a.source}) covers it, but the store ends at seq ${t.size}: the store was rolled back or truncated`, t.size + 1)
      } else if (t.timestamp !== undefined && Date.parse(h.timestamp) <= Date.parse(t.timestamp)) {
        fail(
          `signed tree head (size ${t.size})`,
          `is what this package holds as of ${t.timestamp}, but the gateway had published a head of size ${m} at ${h.timestamp} (${a.source}): the log was rolled back before this package was exported`,
        )
      } else {
        check.result = 'later'
        check.reason = `newer than ${what} (size ${t.size}): only a later package or the live store can be checked against it`
      }
      continue
    }
    const known = o.rootAt(m)
    if (known) {
      if (known.root !== h.root_hash || (known.headHash !== undefined && known.headHash !== h.head_hash)) {
        check.reason = `${what}'s first ${m} events do not rebuild the root the gateway signed at ${h.timestamp} (${a.source})`
        row.rewritten = true
        continue
      }
      check.result = 'consistent'
    } else {
      const proof = m === t.size ? [] : a.proof ?? o.proofFrom(m)
      if (!proof) {
        fail(`anchor (size ${m}) from ${a.source}`, `cannot be checked: ${what} covers a part of the log only and holds no consistency proof from size ${m} (export the package again from the gateway, whose export includes one for every published head)`)
        continue
      }
      if (!verifyConsistency(m, t.size, Buffer.from(h.root_hash, 'hex'), Buffer.from(t.root, 'hex'), proof.map((x) => Buffer.from(x, 'hex')))) {
        check.reason = `is not consistent with ${what}'s signed root (RFC 6962 consistency proof from size ${m} fails)`
        row.rewritten = true
        continue
      }
      check.result = 'consistent'
    }
  }
  // A rewrite lies between the newest consistent anchor and the first that does not match.
  const good = rows.filter((r) => r.check.result === 'consistent').map((r) => r.check.tree_size).sort((x, y) => x - y)
  for (const r of rows) {
    if (!r.rewritten) continue
    const m = r.check.tree_size
    const below = good.filter((s) => s < m).at(-1) ?? 0
    r.failure = {
      record: `events seq ${below + 1}..${m}`,
      reason: `${r.check.reason}: an event in this range was changed, removed or inserted after the head was published (the log was rewritten)`,
      file: r.a.source,
    }
    r.check.reason = r.failure.reason
  }
  // Most specific first: the narrowest rewritten range, then the largest head the store falls short of.
  const failed = rows.filter((r) => r.failure)
  const behind = (r: Row) => r.check.tree_size > t.size
  failed.sort((x, y) => Number(behind(x)) - Number(behind(y)) || (behind(x) ? y.check.tree_size - x.check.tree_size : x.check.tree_size - y.check.tree_size))
  for (const r of failed) failures.push(r.failure!)

  // The proof for the newest consistent anchor, recomputed and checked against the target.
  const newest = rows.filter((r) => r.check.result === 'consistent').sort((x, y) => y.check.tree_size - x.check.tree_size)[0]
  if (newest) {
    const m = newest.check.tree_size
    const nodes = m === t.size ? [] : newest.a.proof ?? o.proofFrom(m)
    if (nodes && verifyConsistency(m, t.size, Buffer.from(newest.check.root_hash, 'hex'), Buffer.from(t.root, 'hex'), nodes.map((x) => Buffer.from(x, 'hex')))) {
      newest.check.proof = {from_size: m, to_size: t.size, nodes}
    }
  }
  for (const a of o.anchors.filter((x) => x.accepted)) {
    notes.push(`${a.source} records that the gateway was started on a store it could not vouch for (${a.accepted!.problem}, --accept-store-rollback) at ${a.accepted!.at}: heads published before that line describe the log before the rollback`)
  }
  if (unpinnedTokens > 0) notes.push(`${unpinnedTokens} timestamp token(s) were checked with the TSA certificate they carry; pin the TSA's CA with --tsa-ca to rule out a token from another authority`)
  const later = rows.filter((r) => r.check.result === 'later').length
  if (later > 0) notes.push(`${later} anchor head(s) are newer than ${what}; check the live store or a later package against them`)

  // Reported: the newest head of each source, and the failures.
  const bySource = new Map<string, Row>()
  for (const r of rows) {
    const src = r.a.source.replace(/ line \d+$/, '')
    const cur = bySource.get(src)
    if (!cur || r.check.tree_size >= cur.check.tree_size) bySource.set(src, r)
  }
  const reported = new Set<Row>([...bySource.values(), ...rows.filter((r) => r.failure).slice(0, MAX_REPORTED_FAILURES)])
  return {checks: rows.filter((r) => reported.has(r)).map((r) => r.check), failures, notes}
}

// ---------------------------------------------------------------------------------------------
// Reading the auditor's anchor files.

/**
 * Reads --anchor files: a signed tree head (JSON, e.g. a package's tree-head.json or a witness
 * line), a JSONL file of them (the witness file; a JSONL sink's file, whose event lines are
 * skipped), or an RFC 3161 token or response (DER), which is attached to the head it stamps.
 */
export async function readAnchorFiles(files: string[], limits: VerifyLimits): Promise<AnchorSet> {
  const set: AnchorSet = {anchors: [], problems: []}
  const tokens: {file: string; token: Buffer}[] = []
  const deadline = Date.now() + limits.timeoutMs
  for (const file of files) {
    const bad = (reason: string, line?: number) => set.problems.push({record: line ? `anchor file ${file} line ${line}` : `anchor file ${file}`, reason, file, line})
    let size: number
    try {
      size = statSync(file).size
    } catch (err) {
      bad(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`)
      continue
    }
    if (size > limits.maxTotalBytes) {
      bad(`is ${size} bytes, more than the limit of ${limits.maxTotalBytes}`)
      continue
    }
    const first = firstByte(file)
    if (first === 0x30) {
      // DER: a TimeStampResp or a bare TimeStampToken.
      if (size > limits.maxMetadataBytes) {
        bad(`is ${size} bytes, too large for a timestamp token`)
        continue
      }
      const der = readWhole(file, size)
      try {
        const r = parseTimestampResponse(der)
        if (!r.token) throw new Error(`the response holds no token (${r.status})`)
        tokens.push({file, token: r.token})
      } catch {
        tokens.push({file, token: der})
      }
      continue
    }
    if (size <= limits.maxMetadataBytes && first === 0x7b) {
      // One JSON document (a pretty-printed tree-head.json), unless it is JSONL.
      const text = readWhole(file, size).toString('utf8')
      let whole: unknown
      try {
        whole = JSON.parse(text)
      } catch {
        whole = undefined
      }
      if (whole !== undefined) {
        const a = anchorFromJson(whole)
        if (typeof a === 'string') bad(a)
        else set.anchors.push({...a, source: file})
        continue
      }
    }
    let lines = 0
    const splitter = new LineSplitter(
      limits.maxLineBytes,
      (bytes, line) => {
        if (bytes.length === 0) return
        let x: unknown
        try {
          x = JSON.parse(bytes.toString('utf8'))
        } catch {
          return bad('not valid JSON', line)
        }
        // A JSONL sink's file holds the events too: those lines are not anchors.
        if (typeof x === 'object' && x !== null && 'seq' in x && 'kind' in x) return
        const a = anchorFromJson(x)
        if (typeof a === 'string') return bad(a, line)
        lines++
        set.anchors.push({...a, source: `${file} line ${line}`})
      },
      (line) => bad(`is longer than the limit of ${limits.maxLineBytes} bytes per line`, line),
    )
    try {
      for await (const chunk of createReadStream(file)) {
        if (Date.now() > deadline) {
          bad(`not read within the time limit of ${limits.timeoutMs / 1000} s`)
          break
        }
        splitter.push(chunk as Buffer)
      }
      splitter.end()
    } catch (err) {
      bad(`cannot be read: ${errorMessage(err)}`)
    }
    if (lines === 0 && !set.problems.some((p) => p.file === file)) bad('holds no signed tree head')
  }
  // A token file stamps one of the heads given with it.
  for (const {file, token} of tokens) {
    let imprint: string
    let genTime: string
    try {
      const info = readTimestampToken(token)
      imprint = info.imprint.toString('hex')
      genTime = info.genTime
    } catch (err) {
      set.problems.push({record: `anchor file ${file}`, reason: `is not an RFC 3161 timestamp token or response: ${errorMessage(err)}`, file})
      continue
    }
    const matched = set.anchors.find((a) => headDigest(a.tree_head).toString('hex') === imprint)
    if (!matched) {
      set.problems.push({record: `anchor file ${file}`, reason: 'is a timestamp token over none of the tree heads given with --anchor (give the head it stamps as another --anchor)', file})
      continue
    }
    matched.timestamp = {tsa: file, token: token.toString('base64'), gen_time: genTime}
  }
  return set
}

function firstByte(file: string): number | undefined {
  const fd = openSync(file, 'r')
  try {
    const b = Buffer.alloc(1)
    return readSync(fd, b, 0, 1, 0) === 1 ? b[0] : undefined
  } finally {
    closeSync(fd)
  }
}

function readWhole(file: string, size: number): Buffer {
  const fd = openSync(file, 'r')
  try {
    const b = Buffer.alloc(size)
    let got = 0
    while (got < size) {
      const n = readSync(fd, b, got, size - got, got)
      if (n === 0) break
      got += n
    }
    return b.subarray(0, got)
  } finally {
    closeSync(fd)
  }
}

/** The anchors of a package's anchors.jsonl, with their proofs, as sourced anchors. */
export function packageAnchor(x: unknown, line: number, file: string): SourcedAnchor | string {
  const a = anchorFromJson(x)
  if (typeof a === 'string') return a
  const c = (x as {consistency?: {nodes?: unknown}}).consistency
  const nodes = c?.nodes
  if (!Array.isArray(nodes) || !nodes.every((n) => typeof n === 'string' && /^[0-9a-f]{64}$/.test(n))) return 'has no valid consistency proof'
  return {...a, source: `${file} line ${line}`, proof: nodes as string[]}
}

