// Masking JSON documents in place: values named by JSON paths are replaced by "****", and every
// other string (and number) is offered to a value masker (the detectors). The document is scanned,
// not re-serialised, so everything left alone keeps its exact bytes: large integers keep their
// digits, key order and whitespace stay as the server wrote them. Pure: no detectors imported; the
// caller passes the value masker.
//
// Paths (a small JSONPath subset): `$` the root; `.name` or `['name']` a member; `.*` or `[*]` any
// member or element; `[3]` one element; `..name` the member at any depth. A path without `$` is a
// member at any depth: `email` = `$..email`, `card.number` = `$..card.number`.

export const MASKED_VALUE = '"****"'
export const MAX_JSON_DEPTH = 512

// The path compiler lives in src/shared/json-path.ts (policy validates mask paths with it too).
import {type JsonPath, pathMatches} from '../../shared/json-path.js'
export {compileJsonPath, type JsonPath, type JsonPathSegment as PathSegment, pathMatches} from '../../shared/json-path.js'

export interface JsonMaskResult {
  text: string
  /** Values replaced per path text. */
  fields: Record<string, number>
  /** How many strings/numbers the value masker changed. */
  values: number
}

class JsonSyntax extends Error {}

/**
 * Masks a JSON text. `maskValue` gets each string's decoded value (and each number's text) and
 * returns the replacement, or undefined to keep it. Returns a reason when the text is not JSON.
 */
export function maskJson(text: string, paths: readonly JsonPath[], maskValue?: (value: string) => string | undefined): JsonMaskResult | {error: string} {
  const s = text
  const pieces: string[] = []
  let copied = 0
  const fields: Record<string, number> = {}
  let values = 0
  const stack: (string | number)[] = []
  const numberRe = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y

  const replace = (a: number, b: number, with_: string) => {
    pieces.push(s.slice(copied, a), with_)
    copied = b
  }
  const fail = (i: number, what: string): never => {
    throw new JsonSyntax(`${what} at offset ${i}`)
  }
  const ws = (i: number): number => {
    for (;;) {
      const c = s.charCodeAt(i)
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++
      else return i
    }
  }
  const stringEnd = (i: number): number => {
    let j = i + 1
    for (;;) {
      const q = s.indexOf('"', j)
      if (q < 0) fail(i, 'unterminated string')
      let b = q - 1
      let n = 0
      while (s.charCodeAt(b) === 0x5c) {
        n++
        b--
      }
      if (n % 2 === 0) return q + 1
      j = q + 1
    }
  }
  const decode = (a: number, b: number): string => {
    const raw = s.slice(a, b)
    if (raw.indexOf('\\') < 0) {
      if (/[\x00-\x1f]/.test(raw)) fail(a, 'control character in string')
      return raw.slice(1, -1)
    }
    try {
      return JSON.parse(raw) as string
    } catch {
      return fail(a, 'invalid string')
    }
  }
  const matched = (): JsonPath | undefined => {
    for (const p of paths) if (pathMatches(p.segments, stack)) return p
    return undefined
  }

  /** Scans one value starting at `i` (no leading whitespace); returns the index after it. `quiet`: inside a masked value, only skip. */
  const value = (i: number, depth: number, quiet: boolean): number => {
    if (depth > MAX_JSON_DEPTH) fail(i, `nesting deeper than ${MAX_JSON_DEPTH}`)
    if (!quiet && paths.length > 0 && stack.length > 0) {
      const hit = matched()
      if (hit) {
        const end = value(i, depth, true)
        replace(i, end, MASKED_VALUE)
        fields[hit.text] = (fields[hit.text] ?? 0) + 1
        return end
      }
    }
    const c = s[i]
    if (c === '{') {
      i = ws(i + 1)
      if (s[i] === '}') return i + 1
      for (;;) {
        if (s[i] !== '"') fail(i, 'expected a member name')
        const kEnd = stringEnd(i)
        const key = quiet ? '' : decode(i, kEnd)
        i = ws(kEnd)
        if (s[i] !== ':') fail(i, 'expected ":"')
        if (!quiet) stack.push(key)
        i = ws(value(ws(i + 1), depth + 1, quiet))
        if (!quiet) stack.pop()
        if (s[i] === ',') i = ws(i + 1)
        else if (s[i] === '}') return i + 1
        else fail(i, 'expected "," or "}"')
      }
    }
    if (c === '[') {
      i = ws(i + 1)
      if (s[i] === ']') return i + 1
      for (let n = 0; ; n++) {
        if (!quiet) stack.push(n)
        i = ws(value(i, depth + 1, quiet))
        if (!quiet) stack.pop()
        if (s[i] === ',') i = ws(i + 1)
        else if (s[i] === ']') return i + 1
        else fail(i, 'expected "," or "]"')
      }
    }
    if (c === '"') {
      const end = stringEnd(i)
      if (!quiet && maskValue && end - i >= 10) {
        const out = maskValue(decode(i, end))
        if (out !== undefined) {
          replace(i, end, JSON.stringify(out))
          values++
        }
      }
      return end
    }
    if (s.startsWith('true', i)) return i + 4
    if (s.startsWith('false', i)) return i + 5
    if (s.startsWith('null', i)) return i + 4
    numberRe.lastIndex = i
    const m = numberRe.exec(s)
    if (!m) return fail(i, 'unexpected character')
    const end = i + m[0].length
    if (!quiet && maskValue && m[0].length >= 8) {
      const out = maskValue(m[0])
      if (out !== undefined) {
        replace(i, end, JSON.stringify(out))
        values++
      }
    }
    return end
  }

  try {
    const i = ws(0)
    if (i >= s.length) fail(i, 'empty document')
    const end = ws(value(i, 0, false))
    if (end !== s.length) fail(end, 'trailing data after the document')
    pieces.push(s.slice(copied))
    return {text: pieces.join(''), fields, values}
  } catch (err) {
    if (err instanceof JsonSyntax) return {error: err.message}
    throw err
  }
}
