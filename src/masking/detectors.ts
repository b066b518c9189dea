// Value detectors: find PII and secrets inside a text value, whatever column it came from
// (row_to_json, views, functions, concatenations). Each detector validates what it finds (Luhn
// for cards, ISO 13616 mod-97 for IBANs) to keep false positives down. Only the matched substring
// is replaced.
//
// Most cells hold nothing a detector could match, and decoding them and running seven regexes is
// what masking cost per row. `candidates` is one pass over a value's UTF-8 bytes that sets a bit
// per detector whose necessary shape occurs (an '@' for an email, a run of 13 digits for a card,
// ...); only those detectors run, and a value with no bit is never decoded. Each bit is a
// necessary condition of its regex (plus the same digit-count floor the detectors always had), so
// skipping a detector never changes what is masked; test/unit/masking/candidates.test.ts checks
// it against the plain regexes over generated values.
import type {MaskEntity} from './types.js'

// `candidates` bits, one per detector.
const JWT = 1
const API_KEY = 2
const EMAIL = 4
const IBAN = 8
const CARD = 16
const SSN = 32
const PHONE = 64

interface Detector {
  entity: MaskEntity
  /** This detector's bit in `candidates` (a value whose scan lacks it cannot match). */
  bit: number
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

// Order matters: earlier detectors win where matches overlap (a card number contains phone-like runs).
const DETECTORS: Detector[] = [
  {entity: 'jwt', bit: JWT, re: /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+/g, replace: () => '[jwt]'},
  {
    entity: 'api_key',
    bit: API_KEY,
    re: /\b(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})/g,
    replace: () => '[api_key]',
  },
  {entity: 'email', bit: EMAIL, re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g, replace: () => STARS + '@' + STARS},
  {
    entity: 'iban',
    bit: IBAN,
    re: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b/g,
    valid: ibanValid,
    replace: (m) => m.slice(0, 2) + '**' + '*'.repeat(Math.max(0, m.length - 4)),
  },
  {
    entity: 'card',
    bit: CARD,
    re: /(?<![+\w])\d(?:[ -]?\d){12,18}\b/g,
    valid: (m) => {
      const d = m.replace(/[ -]/g, '')
      return d.length >= 13 && d.length <= 19 && luhnValid(d)
    },
    replace: maskCard,
  },
  {entity: 'ssn', bit: SSN, re: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g, replace: () => '***-**-****'},
  {
    entity: 'phone',
    bit: PHONE,
    re: /(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}|\(\d{3}\) ?\d{3}[ .-]\d{4}|\b\d{3}[.-]\d{3}[.-]\d{4}|\b0\d{1,4}[ /.-]\d{3,4}[ .-]?\d{3,4}|\b0\d(?:[ .-]\d{2}){4})\b/g,
    valid: (m) => {
      const n = m.replace(/\D/g, '').length
      return n >= 8 && n <= 15
    },
    replace: (m) => m.replace(/\d(?=(?:\D*\d){2})/g, '*'),
  },
]


/** The `candidates` bits of these entities' detectors. */
export function entityBits(entities: ReadonlySet<MaskEntity>): number {
  let bits = 0
  for (const d of DETECTORS) if (entities.has(d.entity)) bits |= d.bit
  return bits
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57
const isUpper = (c: number): boolean => c >= 65 && c <= 90

// What a byte can be to the scan: most bytes of most values are PLAIN (they only end a run).
const PLAIN = 0
const DIGIT = 1
const SEPARATOR = 2 // ' ' and '-': may join the digits of a card
const STARTER = 3 // '@', '_', 'A', 'e', 'g', 'x': may belong to an email, a JWT or a key prefix
const BYTE_CLASS = new Uint8Array(256)
for (let c = 48; c <= 57; c++) BYTE_CLASS[c] = DIGIT
BYTE_CLASS[32] = BYTE_CLASS[45] = SEPARATOR
for (const ch of '@_Aegx') BYTE_CLASS[ch.charCodeAt(0)] = STARTER

/**
 * Which detectors can match this value (UTF-8 bytes `buf[start, end)`): one bit per detector
 * whose necessary shape occurs; 0 when none can. A shape is a run of ASCII bytes, and the
 * detectors' regexes only match ASCII (`\d`, `[A-Z]`, no `u` flag), so a multi-byte character or
 * an invalid sequence (decoded as U+FFFD, never swallowing an ASCII byte) breaks a shape exactly
 * as it breaks a match.
 *
 * The bits hold for every detector in turn although earlier detectors rewrite the text before
 * later ones run: no replacement contains a digit, an uppercase letter, '@', '+', or a separator
 * next to a digit, and the length-preserving ones (card, phone, IBAN) only turn characters into
 * '*', so a later detector's shape in the rewritten text was in the original.
 */
export function candidates(buf: Uint8Array, start: number, end: number): number {
  // The shortest value any detector masks is an email: "a@b.cd".
  if (end - start < 6) return 0
  let bits = 0
  let digits = 0
  let prevDigit = false
  // Card: digits joined by at most one ' ' or '-' (the regex's `\d(?:[ -]?\d){12,18}`).
  let run = 0
  let sep = false
  for (let i = start; i < end; i++) {
    const c = buf[i]
    const kind = BYTE_CLASS[c]
    if (kind === PLAIN) {
      prevDigit = sep = false
      run = 0
      continue
    }
    if (kind === DIGIT) {
      digits++
      run = prevDigit || sep ? run + 1 : 1
      if (run >= 13) bits |= CARD
      sep = false
      if (i > start) {
        const p = buf[i - 1]
        // Phone: '+' before a digit, or digit, separator, digit (every alternative has one; the
        // "(415) 555-2671" one has both a '(' and a "5-2").
        if (p === 43 || ((p === 32 || p === 45 || p === 46 || p === 47) && i - 2 >= start && isDigit(buf[i - 2]))) bits |= PHONE
        // IBAN: two uppercase letters, two digits.
        else if (prevDigit && i - 3 >= start && isUpper(buf[i - 2]) && isUpper(buf[i - 3])) bits |= IBAN
        // SSN: ddd-dd-dddd.
        if (buf[i - 4] === 45 && i - 10 >= start && buf[i - 7] === 45 && isDigit(buf[i - 1]) && isDigit(buf[i - 2]) && isDigit(buf[i - 3]) && isDigit(buf[i - 5]) && isDigit(buf[i - 6]) && isDigit(buf[i - 8]) && isDigit(buf[i - 9]) && isDigit(buf[i - 10])) bits |= SSN
      }
      prevDigit = true
      continue
    }
    if (kind === SEPARATOR && prevDigit) sep = true
    else {
      run = 0
      sep = false
    }
    prevDigit = false
    if (kind === SEPARATOR) continue
    if (c === 64 /* @ */) bits |= EMAIL
    else if (c === 95 /* _ */) {
      // sk_ pk_ rk_, gh[pousr]_, github_
      const p = i > start ? buf[i - 1] : 0
      if (p === 107 || p === 112 || p === 111 || p === 117 || p === 115 || p === 114 || p === 98) bits |= API_KEY
    } else if (i + 1 < end) {
      const n = buf[i + 1]
      if (c === 65 /* A */) {
        if (n === 75 || n === 83 || n === 73) bits |= API_KEY // AKIA, ASIA, AIza
      } else if (i + 2 < end) {
        const n2 = buf[i + 2]
        if (c === 101 && n === 121 && n2 === 74) bits |= JWT // eyJ
        else if ((c === 120 && n === 111 && n2 === 120) || (c === 103 && n === 108 && n2 === 112)) bits |= API_KEY // xox, glp(at-)
      }
    }
  }
  // The digit floors the detectors have always had (a phone number has 8-15 digits).
  if (digits < 4) bits &= ~IBAN
  if (digits < 8) bits &= ~PHONE
  return bits
}

/** Whether any detector can match this UTF-8 value (see `candidates`). */
export function mightContainPii(buf: Uint8Array, start: number, end: number): boolean {
  return candidates(buf, start, end) !== 0
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
  // Shorter than the shortest match ("a@b.cd"): nothing to encode or scan.
  if (text.length < 6) return undefined
  const want = entityBits(entities)
  if (want === 0) return undefined
  // Values up to SCRATCH_CHARS are encoded into one reused buffer (a new Buffer per COPY field
  // or JSON string cost more than the scan); a UTF-16 unit is at most 3 UTF-8 bytes, so the
  // write is never cut short.
  if (text.length <= SCRATCH_CHARS) {
    const n = scratch.write(text, 'utf8')
    return maskCandidates(text, candidates(scratch, 0, n) & want)
  }
  const bytes = Buffer.from(text, 'utf8')
  return maskCandidates(text, candidates(bytes, 0, bytes.length) & want)
}

const SCRATCH_CHARS = 4096
const scratch = Buffer.allocUnsafe(SCRATCH_CHARS * 3)

/**
 * `maskValue` with the detectors to run already chosen: `bits` from `candidates` over this
 * text's UTF-8 bytes, and'ed with `entityBits` of the entities asked for.
 */
export function maskCandidates(text: string, bits: number): Detection | undefined {
  if (bits === 0) return undefined
  let out = text
  let found: Partial<Record<MaskEntity, number>> | undefined
  for (const d of DETECTORS) {
    if ((bits & d.bit) === 0) continue
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
