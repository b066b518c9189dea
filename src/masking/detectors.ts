// Value detectors: find PII and secrets inside a text value, whatever column it came from
// (row_to_json, views, functions, concatenations). Each detector validates what it finds (Luhn
// for cards, ISO 13616 mod-97 for IBANs) to keep false positives down. Only the matched substring
// is replaced.
import type {MaskEntity} from './types.js'

interface Detector {
  entity: MaskEntity
  /** Cheap necessary condition, checked before the regex runs. */
  gate: (text: string, digits: number) => boolean
  re: RegExp
  valid?: (match: string) => boolean
  replace: (match: string) => string
}

export function luhnValid(digits: string): boolean {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (d < 0 || d > 9) return false
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

export function ibanValid(raw: string): boolean {
  const s = raw.replace(/ /g, '').toUpperCase()
  if (s.length < 15 || s.length > 34 || !/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(s)) return false
  const moved = s.slice(4) + s.slice(0, 4)
  let rem = 0
  for (const ch of moved) {
    const c = ch.charCodeAt(0)
    const v = c >= 65 ? String(c - 55) : ch
    for (const d of v) rem = (rem * 10 + (d.charCodeAt(0) - 48)) % 97
  }
  return rem === 1
}

const STARS = '****'

function maskCard(m: string): string {
  // Keep the separators and the last four digits (PCI DSS permits showing the last four).
  let seen = 0
  const total = m.replace(/\D/g, '').length
  let out = ''
  for (const ch of m) {
    if (ch >= '0' && ch <= '9') {
      seen++
      out += seen > total - 4 ? ch : '*'
    } else out += ch
  }
  return out
}

const KEY_PREFIX = /[spr]k_|gh[pousr]_|github_pat_|AKIA|ASIA|xox|AIza|glpat-/

function countDigits(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) n++
  }
  return n
}

// Order matters: earlier detectors win where matches overlap (a card number contains phone-like runs).
const DETECTORS: Detector[] = [
  {entity: 'jwt', gate: (t) => t.includes('eyJ'), re: /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+/g, replace: () => '[jwt]'},
  {
    entity: 'api_key',
    gate: (t) => KEY_PREFIX.test(t),
    re: /\b(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})/g,
    replace: () => '[api_key]',
  },
  {entity: 'email', gate: (t) => t.includes('@'), re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g, replace: () => STARS + '@' + STARS},
  {
    entity: 'iban',
    gate: (_t, d) => d >= 4,
    re: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b/g,
    valid: ibanValid,
    replace: (m) => m.slice(0, 2) + '**' + '*'.repeat(Math.max(0, m.length - 4)),
  },
  {
    entity: 'card',
    gate: (_t, d) => d >= 13,
    re: /(?<![+\w])\d(?:[ -]?\d){12,18}\b/g,
    valid: (m) => {
      const d = m.replace(/[ -]/g, '')
      return d.length >= 13 && d.length <= 19 && luhnValid(d)
    },
    replace: maskCard,
  },
  {entity: 'ssn', gate: (_t, d) => d >= 9, re: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g, replace: () => '***-**-****'},
  {
    entity: 'phone',
    gate: (_t, d) => d >= 8,
    re: /(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}|\(\d{3}\) ?\d{3}[ .-]\d{4}|\b\d{3}[.-]\d{3}[.-]\d{4}|\b0\d{1,4}[ /.-]\d{3,4}[ .-]?\d{3,4}|\b0\d(?:[ .-]\d{2}){4})\b/g,
    valid: (m) => {
      const n = m.replace(/\D/g, '').length
      return n >= 8 && n <= 15
    },
    replace: (m) => m.replace(/\d(?=(?:\D*\d){2})/g, '*'),
  },
]

/**
 * Cheap byte-level prefilter: can this UTF-8 value contain anything a detector looks for? Lets the
 * caller skip decoding most cells (numbers, short words, dates with few digits).
 */
export function mightContainPii(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 8) return false
  let digits = 0
  for (let i = start; i < end; i++) {
    const c = buf[i]
    if (c >= 48 && c <= 57) {
      if (++digits >= 8) return true
    } else if (c === 64 /* @ */ || c === 95 /* _ */) return true
    else if (c === 101 /* e */ && buf[i + 1] === 121 && buf[i + 2] === 74) return true // eyJ
    else if (c === 65 /* A */ && (buf[i + 1] === 75 || buf[i + 1] === 73)) return true // AK.. / AI..
    else if (c === 120 /* x */ && buf[i + 1] === 111 && buf[i + 2] === 120) return true // xox
    else if (c === 103 /* g */ && buf[i + 1] === 108 && buf[i + 2] === 112) return true // glpat
  }
  return false
}

export interface Detection {
  text: string
  found: Partial<Record<MaskEntity, number>>
}

/**
 * Replaces every detected entity in `text`. Returns undefined when nothing was found (so callers
 * can forward the original bytes untouched).
 */
export function maskValue(text: string, entities: ReadonlySet<MaskEntity>): Detection | undefined {
  let out = text
  let found: Partial<Record<MaskEntity, number>> | undefined
  const digits = countDigits(text)
  for (const d of DETECTORS) {
    if (!entities.has(d.entity) || !d.gate(out, digits)) continue
    d.re.lastIndex = 0
    if (!d.re.test(out)) continue
    d.re.lastIndex = 0
    out = out.replace(d.re, (m) => {
      if (d.valid && !d.valid(m)) return m
      found ??= {}
      found[d.entity] = (found[d.entity] ?? 0) + 1
      return d.replace(m)
    })
  }
  return found ? {text: out, found} : undefined
}
