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
export const MAX_SELECT_STEPS = 2_000_000

/**
 * The values a path names in a parsed JSON document (as JSON.parse returns it). Iterative, so a
 * deeply nested document cannot overflow the stack. Returns undefined when the selection would
 * take more than `maxSteps` steps: the caller cannot tell what the path names and should fail closed.
 */
export function selectJsonValues(doc: unknown, path: JsonPath, maxSteps = MAX_SELECT_STEPS): unknown[] | undefined {
  let current: unknown[] = [doc]
  let steps = 0
  for (const seg of path.segments) {
    const next: unknown[] = []
    for (const v of current) {
      if (seg.kind === 'descend') {
        // The value itself and every value below it.
        const todo: unknown[] = [v]
        while (todo.length > 0) {
          if (++steps > maxSteps) return undefined
          const x = todo.pop()
          next.push(x)
          if (Array.isArray(x)) for (let i = x.length - 1; i >= 0; i--) todo.push(x[i])
          else if (isRecord(x)) for (const k of Object.keys(x).reverse()) todo.push(x[k])
        }
        continue
      }
      if (++steps > maxSteps) return undefined
      if (seg.kind === 'any') {
        if (Array.isArray(v)) for (const x of v) next.push(x)
        else if (isRecord(v)) for (const k of Object.keys(v)) next.push(v[k])
        steps += next.length
      } else if (seg.kind === 'index') {
        if (Array.isArray(v) && seg.index < v.length) next.push(v[seg.index])
      } else if (isRecord(v) && Object.hasOwn(v, seg.name)) next.push(v[seg.name])
      if (next.length > maxSteps) return undefined
    }
    current = next
  }
  return current
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
