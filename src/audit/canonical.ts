// Canonical JSON (RFC 8785 style, "JCS"): object keys sorted by UTF-16 code units, no whitespace,
// numbers in ECMAScript shortest form, strings escaped as JSON.stringify does. Audit hashes and
// signatures are computed over these bytes, so the same event always hashes the same way.
import {HoopError} from '../shared/errors.js'

export type Json = null | boolean | number | string | Json[] | {[key: string]: Json | undefined}

const keyCache = new Map<string, string>()

/** No character JSON.stringify escapes and no surrogate: such a string is encoded as it is, in quotes (measured ~3x cheaper). */
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/

function encodeString(value: string): string {
  if (PLAIN.test(value)) return '"' + value + '"'
  // RFC 8785 §3.2.2.2: strings must be valid Unicode; a lone surrogate cannot be encoded.
  // String.prototype.isWellFormed is in Node 20 (ES2024); the project's lib is ES2023.
  if (!(value as string & {isWellFormed(): boolean}).isWellFormed()) throw new HoopError('INVALID_INPUT', 'canonical JSON: string contains a lone surrogate')
  return JSON.stringify(value)
}

function encodeKey(key: string): string {
  let k = keyCache.get(key)
  if (k === undefined) {
    k = encodeString(key) + ':'
    if (keyCache.size < 10_000) keyCache.set(key, k)
  }
  return k
}

export function canonicalize(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value)
    case 'number':
      // RFC 8785 §3.2.2.3: ECMAScript Number serialization; -0 becomes 0; NaN/Infinity are not JSON.
      if (!Number.isFinite(value)) throw new HoopError('INVALID_INPUT', `canonical JSON: ${value} is not a JSON number`)
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ','
          out += canonicalize(value[i] === undefined ? null : value[i])
        }
        return out + ']'
      }
      const obj = value as Record<string, unknown>
      const proto = Object.getPrototypeOf(obj)
      if (proto !== Object.prototype && proto !== null) {
        throw new HoopError('INVALID_INPUT', `canonical JSON: cannot encode a ${proto?.constructor?.name ?? 'non-plain'} object`)
      }
      return encodeMembers(obj)
    }
    default:
      throw new HoopError('INVALID_INPUT', `canonical JSON: cannot encode a value of type ${typeof value}`)
  }
}

/**
 * `canonicalize({...obj, ...extra})`, where the members of `obj.data` named in `omit` are left out
 * of `data` as if it had been copied without them (`{...obj.data}`, then deleted): the same bytes,
 * without building the merged object or the copy of `data`. The writer's hot path (payloads.ts
 * encodeEvent: an event, its envelope fields, its payload fields kept apart).
 */
export function canonicalizeWith(obj: Record<string, unknown>, extra: Record<string, unknown>, omit?: readonly string[]): string {
  const keys: string[] = []
  for (const key of Object.keys(obj)) if (!Object.hasOwn(extra, key)) keys.push(key)
  for (const key of Object.keys(extra)) keys.push(key)
  keys.sort()
  let out = '{'
  let first = true
  for (const key of keys) {
    const own = Object.hasOwn(extra, key)
    const v = own ? extra[key] : obj[key]
    if (v === undefined) continue
    if (!first) out += ','
    first = false
    // `data` without the omitted members, as its spread copy would be (a copy's prototype is Object's: not checked).
    out += encodeKey(key) + (!own && omit !== undefined && key === 'data' ? encodeMembers(v as Record<string, unknown>, omit) : canonicalize(v))
  }
  return out + '}'
}

/** An object's members in key order (RFC 8785 §3.2.3: the default sort compares UTF-16 code units), undefined ones and those `omit` names left out. */
function encodeMembers(obj: Record<string, unknown>, omit?: readonly string[]): string {
  const keys = Object.keys(obj).sort()
  let out = '{'
  let first = true
  for (const key of keys) {
    const v = obj[key]
    if (v === undefined || omit?.includes(key)) continue
    if (!first) out += ','
    first = false
    out += encodeKey(key) + canonicalize(v)
  }
  return out + '}'
}
