// JSON paths (a small JSONPath subset), shared by the HTTP engine (masking response fields) and
// policy (validating `mask.fields`, matching request body fields). Pure: no I/O.
//
// Paths: `$` the root; `.name` or `['name']` a member; `.*` or `[*]` any member or element; `[3]`
// one element; `..name` the member at any depth. A path without `$` is a member at any depth:
// `email` = `$..email`, `card.number` = `$..card.number`.

export type JsonPathSegment = {kind: 'key'; name: string} | {kind: 'index'; index: number} | {kind: 'any'} | {kind: 'descend'}

export interface JsonPath {
  text: string
  segments: JsonPathSegment[]
}

/** Compiles a path; returns a reason when it is not one. */
export function compileJsonPath(text: string): JsonPath | string {
  let src = text.trim()
  if (!src) return 'empty JSON path'
  if (!src.startsWith('$')) src = '$..' + src
  const segments: JsonPathSegment[] = []
  let i = 1
  const name = /[^.[\]\s]+/y
  while (i < src.length) {
    if (src.startsWith('..', i)) {
      segments.push({kind: 'descend'})
      i += 2
      if (src[i] === '[') continue
      name.lastIndex = i
      const m = name.exec(src)
      if (!m) return `expected a member name after ".." at offset ${i} in ${JSON.stringify(text)}`
      segments.push(m[0] === '*' ? {kind: 'any'} : {kind: 'key', name: m[0]})
      i += m[0].length
    } else if (src[i] === '.') {
      i++
      name.lastIndex = i
      const m = name.exec(src)
      if (!m) return `expected a member name after "." at offset ${i} in ${JSON.stringify(text)}`
      segments.push(m[0] === '*' ? {kind: 'any'} : {kind: 'key', name: m[0]})
      i += m[0].length
    } else if (src[i] === '[') {
      const close = src.indexOf(']', i)
      if (close < 0) return `unclosed "[" in ${JSON.stringify(text)}`
      const inner = src.slice(i + 1, close).trim()
      if (inner === '*') segments.push({kind: 'any'})
      else if (/^\d{1,9}$/.test(inner)) segments.push({kind: 'index', index: Number(inner)})
      else if (/^'[^']*'$|^"[^"]*"$/.test(inner)) segments.push({kind: 'key', name: inner.slice(1, -1)})
      else return `unsupported selector [${inner}] in ${JSON.stringify(text)} (use [*], [N] or ['name'])`
      i = close + 1
    } else return `unexpected ${JSON.stringify(src[i])} at offset ${i} in ${JSON.stringify(text)}`
  }
  if (segments.length === 0) return 'the root "$" cannot be masked as a whole; name a member'
  if (segments[segments.length - 1].kind === 'descend') return `path ${JSON.stringify(text)} ends with ".."`
  return {text, segments}
}

/** Does the location `stack` (member names and element indexes from the root) match the path? */
export function pathMatches(segs: readonly JsonPathSegment[], stack: readonly (string | number)[], si = 0, ki = 0): boolean {
  if (si === segs.length) return ki === stack.length
  const seg = segs[si]
  if (seg.kind === 'descend') {
    for (let k = ki; k <= stack.length; k++) if (pathMatches(segs, stack, si + 1, k)) return true
    return false
  }
  if (ki >= stack.length) return false
  const part = stack[ki]
  const ok = seg.kind === 'any' || (seg.kind === 'key' ? part === seg.name : part === seg.index)
  return ok && pathMatches(segs, stack, si + 1, ki + 1)
}

/** Work allowed for one selection (values visited); a parsed 1 MiB body stays far below it. */
const MAX_SELECT_STEPS = 2_000_000

/**
 * The values a path names in a parsed JSON document (as JSON.parse returns it), in no particular
 * order. Iterative, so a deeply nested document cannot overflow the stack. Returns undefined when
 * the selection would take more than `maxSteps` steps: the caller cannot tell what the path names
 * and should fail closed.
 */
export function selectJsonValues(doc: unknown, path: JsonPath, maxSteps = MAX_SELECT_STEPS): unknown[] | undefined {
  let current: unknown[] = [doc]
  let steps = 0
  const segs = path.segments
  for (let si = 0; si < segs.length; si++) {
    const seg = segs[si]
    const next: unknown[] = []
    if (seg.kind === 'descend') {
      // ".." and the selector after it, applied to every container at or below each value. A parsed
      // document is a tree, so a container already visited in this step had its subtree visited
      // too: skipping it keeps "$..a..b" linear in the document's size.
      const then = segs[++si]
      const seen = new Set<object>()
      const todo: object[] = []
      for (const v of current) if (typeof v === 'object' && v !== null) todo.push(v)
      while (todo.length > 0) {
        const x = todo.pop()!
        if (seen.has(x)) continue
        seen.add(x)
        steps += apply(then, x, next)
        const children = Array.isArray(x) ? x : Object.values(x)
        steps += children.length + 1
        if (steps > maxSteps) return undefined
        for (const c of children) if (typeof c === 'object' && c !== null) todo.push(c)
      }
    } else {
      for (const v of current) {
        steps += apply(seg, v, next) + 1
        if (steps > maxSteps) return undefined
      }
    }
    current = next
  }
  return current
}

/** Adds what one selector names in `v` to `out`; returns how many values it looked at. */
function apply(seg: JsonPathSegment, v: unknown, out: unknown[]): number {
  if (seg.kind === 'any') {
    if (Array.isArray(v)) {
      for (const x of v) out.push(x)
      return v.length
    }
    if (isRecord(v)) {
      const keys = Object.keys(v)
      for (const k of keys) out.push(v[k])
      return keys.length
    }
  } else if (seg.kind === 'index') {
    if (Array.isArray(v) && seg.index < v.length) out.push(v[seg.index])
  } else if (seg.kind === 'key') {
    if (isRecord(v) && Object.hasOwn(v, seg.name)) out.push(v[seg.name])
  }
  // A "descend" directly after another cannot be written ("...."), so it never reaches here.
  return 0
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
