// Payloads apart from the hashed events (envelope v2). A v2 event's hashed form carries
// `payload_hash`, the SHA-256 of its payload's canonical JSON ({nonce, fields}), instead of the
// payload fields themselves (PAYLOAD_FIELDS in events.ts): statement text, justifications, error
// messages. The payload is stored beside the event (`audit_events.payload`) and can be removed
// later, by retention or on request, without changing any hash; each removal leaves a record
// (`audit_payload_removals`) naming the audit.retention or audit.erasure event that did it.
//
// In an evidence package an event line may end with one more member, `"~payload"`, added by export
// after the hashed bytes: the payload ({nonce, fields}), or why it is gone ({removed, at, by_seq}).
// `~` sorts after every other key, so the line stays canonical JSON; the verifier cuts the member
// off and hashes what remains (the signed bytes), and hashes the payload against `payload_hash`.
import {hash as digest, randomBytes} from 'node:crypto'
import {canonicalize, canonicalizeWith, type Json} from './canonical.js'
import {type AuditEvent, PAYLOAD_FIELDS, type StoredEvent} from './events.js'
import {leafInput, sha256} from './merkle.js'

/** Envelope version written: 2 commits to payloads by hash. */
const EVENT_VERSION = 2

/** An event as both logs store it: numbered, chained to its predecessor, its leaf hashed. */
export interface EncodedEvent {
  body: string
  payload?: string
  /** SHA-256 of the body: the next event's prev_hash. */
  hash: string
  /** The Merkle leaf hash of 0x00 || body. */
  leaf: Buffer
}

/**
 * Encodes `e` as event `seq` after `prevHash` (SQLite log.ts and PostgreSQL pg-append.ts alike).
 * Throws when the event cannot be encoded. The body is encoded once: the leaf hashes 0x00 || body,
 * the chain hash the body alone.
 */
export function encodeEvent(e: AuditEvent, seq: number, prevHash: string): EncodedEvent {
  const {payload, omit} = splitPayload(e)
  const body = canonicalizeWith(e as unknown as Record<string, unknown>, {v: EVENT_VERSION, seq, prev_hash: prevHash, payload_hash: payload === undefined ? undefined : payloadHash(payload)}, omit)
  const input = leafInput(body)
  return {body, payload, hash: digest('sha256', input.subarray(1), 'hex'), leaf: sha256(input)}
}

export const PAYLOAD_MEMBER = '~payload'
const MEMBER_TEXT = `,"${PAYLOAD_MEMBER}":`

/** Why a payload is gone, as a package says it. */
export interface PayloadRemoval {
  removed: 'expired' | 'erased'
  /** When it was removed. */
  at: string
  /** The audit.retention / audit.erasure event that removed it (absent while that event is still pending). */
  by_seq?: number
}

// Nonces come from a pool: one randomBytes call per 4096 events keeps the commit path cheap.
let pool = Buffer.alloc(0)
let poolAt = 0
function nonce(): string {
  if (poolAt + 16 > pool.length) {
    pool = randomBytes(16 * 4096)
    poolAt = 0
  }
  poolAt += 16
  return pool.toString('hex', poolAt - 16, poolAt)
}

/**
 * An event's payload: the canonical JSON of its payload fields (with a nonce), and the names of
 * the `data` members it takes out of the hashed form; nothing when the event's kind has no payload
 * or the fields are all absent.
 */
export function splitPayload(e: AuditEvent): {payload?: string; omit?: readonly string[]} {
  const names = PAYLOAD_FIELDS[e.kind]
  if (!names) return {}
  let fields: {[key: string]: Json} | undefined
  for (const n of names) {
    const v = e.data[n]
    if (v === undefined) continue
    fields ??= {}
    fields[n] = v
  }
  if (!fields) return {}
  return {payload: canonicalize({nonce: nonce(), fields}), omit: names}
}

export function payloadHash(payload: string): string {
  return digest('sha256', payload, 'hex')
}

/** The event with its payload's fields back in `data` (for reports); unchanged when there is none. */
export function withPayload(e: StoredEvent, payload: string | undefined): StoredEvent {
  if (payload === undefined) return e
  const p = JSON.parse(payload) as {fields?: Record<string, Json>}
  return {...e, data: {...e.data, ...p.fields}}
}

/** An event line for a package: the hashed bytes, with the payload or its removal appended. */
export function packageLine(body: string, entry: string | PayloadRemoval | undefined): string {
  if (entry === undefined) return body
  return body.slice(0, -1) + MEMBER_TEXT + (typeof entry === 'string' ? entry : canonicalize(entry)) + '}'
}

/**
 * Splits a package's event line (parsed already) into the hashed bytes and the appended member's
 * text. The member is the last one of the line: its value is a payload (strings under fixed keys)
 * or a removal, which cannot hold the member's own key text unescaped.
 */
export function splitPackageLine(bytes: Buffer, parsed: Record<string, unknown>): {body: Buffer; member?: string} {
  if (!(PAYLOAD_MEMBER in parsed)) return {body: bytes}
  const text = bytes.toString('utf8')
  const at = text.lastIndexOf(MEMBER_TEXT)
  if (at < 0 || !text.endsWith('}')) return {body: bytes}
  return {body: Buffer.from(text.slice(0, at) + '}', 'utf8'), member: text.slice(at + MEMBER_TEXT.length, -1)}
}
