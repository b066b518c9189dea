// Canonical JSON (RFC 8785 style, "JCS"): object keys sorted by UTF-16 code units, no whitespace,
// numbers in ECMAScript shortest form, strings escaped as JSON.stringify does. Audit hashes and
// signatures are computed over these bytes, so the same event always hashes the same way.
import {HoopError} from '../shared/errors.js'

export type Json = null | boolean | number | string | Json[] | {[key: string]: Json | undefined}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u

export function canonicalize(value: unknown): string {
  switch (typeof value) {
    case 'string':
      // RFC 8785 §3.2.2.2: strings must be valid Unicode; a lone surrogate cannot be encoded.
      if (LONE_SURROGATE.test(value)) throw new HoopError('INVALID_INPUT', 'canonical JSON: string contains a lone surrogate')
      return JSON.stringify(value)
    case 'number':
      // RFC 8785 §3.2.2.3: ECMAScript Number serialization; -0 becomes 0; NaN/Infinity are not JSON.
      if (!Number.isFinite(value)) throw new HoopError('INVALID_INPUT', `canonical JSON: ${value} is not a JSON number`)
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) return '[' + value.map((v) => canonicalize(v === undefined ? null : v)).join(',') + ']'
      const obj = value as Record<string, unknown>
      const proto = Object.getPrototypeOf(obj)
      if (proto !== Object.prototype && proto !== null) {
        throw new HoopError('INVALID_INPUT', `canonical JSON: cannot encode a ${proto?.constructor?.name ?? 'non-plain'} object`)
      }
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 requires.
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort()
      let out = '{'
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) out += ','
        out += canonicalize(keys[i]) + ':' + canonicalize(obj[keys[i]])
      }
      return out + '}'
    }
    default:
      throw new HoopError('INVALID_INPUT', `canonical JSON: cannot encode a value of type ${typeof value}`)
  }
}
