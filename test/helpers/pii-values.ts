// Generated cell values for the masking tests: the detectors' own shapes, damaged copies of
// them, separators, unicode and odd characters, and the oracle they are checked against (every
// enabled detector on the text, no prefilter).
import {entityBits, maskCandidates, type Detection} from '../../src/masking/detectors.js'
import {ALL_ENTITIES, type MaskEntity} from '../../src/masking/types.js'

const ALL = entityBits(new Set(ALL_ENTITIES))
const IBAN = entityBits(new Set<MaskEntity>(['iban']))

/** Every enabled detector on `text`, no prefilter: only the IBAN detector's floor of 4 digits. */
export function oracle(text: string, want = ALL): Detection | undefined {
  const digits = text.replace(/\D/g, '').length
  return maskCandidates(text, digits >= 4 ? want : want & ~IBAN)
}

const SAMPLES = [
  'a@b.cd', 'bob.smith+x@mail.example.org', 'ops12@example.org',
  '4111 1111 1111 1111', '5500-0000-0000-0004', '4111111111111111', '378282246310005', '6011111111111117',
  'GB82 WEST 1234 5698 7654 32', 'DE89370400440532013000', 'GB82WEST12345698765432', 'FR1420041010050500013M02606',
  '123-45-6789', '078-05-1120',
  '+1 415 555 2671', '(415) 555-2671', '020 7946 0958', '+4915112345678', '415.555.2671', '01 23 45 67 89', '0301/234 5678', '+44 (20) 7946 0958',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl',
  'sk_live_4eC39HqLyjWDarjtT1zdp7dc', 'pk_test_abcdefghij12', 'rk_live_0123456789',
  'AKIAIOSFODNN7EXAMPLE', 'ASIABCDEFGHJKLMNOPQR', 'AIzaSyA1234567890abcdefghijklmnopqrstu',
  'ghp_16C7e42F292c6912E7710c838347Ae178B4a', 'gho_abcdefghijklmnopqrstuvwxyz0123456789',
  'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz',
  'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy', 'glpat-abcdefghij0123456789',
]
const PIECES = [
  ...'0123456789'.split(''), ' ', '-', '.', '/', '+', '(', ')', '@', '_', ':', ',', '\t', '\n', '"', '\\',
  'A', 'K', 'S', 'I', 'Z', 'GB', 'DE', 'e', 'y', 'J', 'eyJ', 'x', 'o', 'g', 'l', 'p', 'k', 'sk_', 'gh', 'live', 'test',
  'é', 'ü', '中', '😀', '\u00a0', '\u2013', '\ufffd', '٣', '０', 'ﬀ', '\u0000',
  'order ', 'shipped ', 'Customer ', '.com', '.io',
]

/** One value from the seeded random source `r`. */
export function generate(r: () => number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]
  let s = ''
  const parts = 1 + Math.floor(r() * 6)
  for (let p = 0; p < parts; p++) {
    const roll = r()
    if (roll < 0.35) {
      // A real entity, perhaps damaged: a character dropped, changed or inserted.
      let e = pick(SAMPLES)
      const edits = r() < 0.5 ? 0 : 1 + Math.floor(r() * 2)
      for (let k = 0; k < edits; k++) {
        const at = Math.floor(r() * (e.length + 1))
        const op = r()
        e = op < 0.33 ? e.slice(0, at) + e.slice(at + 1) : op < 0.66 ? e.slice(0, at) + pick(PIECES) + e.slice(at + 1) : e.slice(0, at) + pick(PIECES) + e.slice(at)
      }
      s += e
    } else if (roll < 0.7) {
      const n = 1 + Math.floor(r() * 20)
      for (let k = 0; k < n; k++) s += pick(PIECES)
    } else s += pick(PIECES)
  }
  return s
}

