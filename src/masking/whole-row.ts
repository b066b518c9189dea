// Masks the fields of a whole-row value (row_to_json(t), to_jsonb(t), ROW(t.*), `t` as a
// column) whose structure the catalog knows, instead of the whole value: masked fields become
// `****` (JSON: "****"), everything else stays byte for byte as the server sent it. Pure
// functions over the value's text. A value that does not have exactly the expected shape (a key or
// a field the catalog does not list, one missing, a duplicate, trailing text) is not judged here:
// the caller masks it whole (fail closed).
// https://www.postgresql.org/docs/current/rowtypes.html#ROWTYPES-IO-SYNTAX (composite text form)

/** The shape of a whole-row value: its relation's columns, and the masked ones with their report key. */
export interface RowShape {
  form: 'json' | 'composite'
  /** Column names in attribute order. */
  names: string[]
  /** Masked column name -> report key. */
  masked: ReadonlyMap<string, string>
}

/** The value with its masked fields replaced and the report keys of the fields it replaced; undefined when the shape does not hold. */
export function maskWholeRow(text: string, shape: RowShape): {text: string; maskedKeys: string[]} | undefined {
  if (shape.names.length === 0) return undefined
  const spans = shape.form === 'json' ? jsonFields(text, shape.names) : compositeFields(text, shape.names)
  if (!spans) return undefined
  let out = ''
  let last = 0
  const maskedKeys: string[] = []
  for (const s of spans) {
    const key = shape.masked.get(s.name)
    if (key === undefined || s.isNull) continue
    out += text.slice(last, s.start) + (shape.form === 'json' ? '"****"' : '****')
    last = s.end
    maskedKeys.push(key)
  }
  return {text: maskedKeys.length ? out + text.slice(last) : text, maskedKeys}
}

interface FieldSpan {
  name: string
  start: number
  end: number
  isNull: boolean
}

const WS = /[ \t\n\r]*/y
const LITERAL = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y

function skipWs(text: string, i: number): number {
  WS.lastIndex = i
  WS.exec(text)
  return WS.lastIndex
}

/** End (exclusive) of the JSON string starting at `i`, or undefined. */
function stringEnd(text: string, i: number): number | undefined {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++
    else if (text[j] === '"') return j + 1
  }
  return undefined
}

/** End (exclusive) of the JSON value starting at `i`, or undefined. */
function valueEnd(text: string, i: number): number | undefined {
  const c = text[i]
  if (c === '"') return stringEnd(text, i)
  if (c === '{' || c === '[') {
    const stack: string[] = []
    for (let j = i; j < text.length; j++) {
      const d = text[j]
      if (d === '"') {
        const e = stringEnd(text, j)
        if (e === undefined) return undefined
        j = e - 1
      } else if (d === '{') stack.push('}')
      else if (d === '[') stack.push(']')
      else if (d === '}' || d === ']') {
        if (stack.pop() !== d) return undefined
        if (stack.length === 0) return j + 1
      }
    }
    return undefined
  }
  LITERAL.lastIndex = i
  return LITERAL.exec(text) ? LITERAL.lastIndex : undefined
}

/** The fields of a JSON object whose keys are exactly `names` (in any order, each once). */
function jsonFields(text: string, names: readonly string[]): FieldSpan[] | undefined {
  const expected = new Set(names)
  const spans: FieldSpan[] = []
  let i = skipWs(text, 0)
  if (text[i] !== '{') return undefined
  i = skipWs(text, i + 1)
  for (;;) {
    if (text[i] !== '"') return undefined
    const keyEnd = stringEnd(text, i)
    if (keyEnd === undefined) return undefined
    let name: string
    try {
      name = JSON.parse(text.slice(i, keyEnd)) as string
    } catch {
      return undefined
    }
    if (!expected.delete(name)) return undefined // not a column, or a second time
    i = skipWs(text, keyEnd)
    if (text[i] !== ':') return undefined
    const start = skipWs(text, i + 1)
    const end = valueEnd(text, start)
    if (end === undefined) return undefined
    spans.push({name, start, end, isNull: text.slice(start, end) === 'null'})
    i = skipWs(text, end)
    if (text[i] === ',') {
      i = skipWs(text, i + 1)
      continue
    }
    if (text[i] !== '}') return undefined
    break
  }
  return expected.size === 0 && skipWs(text, i + 1) === text.length ? spans : undefined
}

/**
 * The fields of a composite value's text form, `(1,plain,"with, comma",)`, which has exactly one
 * field per name. An empty unquoted field is NULL; a quoted one doubles `"` and `\` inside.
 */
function compositeFields(text: string, names: readonly string[]): FieldSpan[] | undefined {
  const last = text.length - 1
  if (text[0] !== '(' || text[last] !== ')') return undefined
  const spans: FieldSpan[] = []
  let i = 1
  for (;;) {
    const start = i
    while (i < last && text[i] !== ',') {
      if (text[i] !== '"') {
        i++
        continue
      }
      // A quoted part: up to the quote that is not doubled.
      for (i++; ; ) {
        if (i >= last) return undefined
        if (text[i] === '\\') i += 2
        else if (text[i] === '"' && text[i + 1] === '"') i += 2
        else if (text[i] === '"') break
        else i++
      }
      i++
    }
    if (i > last || spans.length >= names.length) return undefined
    spans.push({name: names[spans.length], start, end: i, isNull: i === start})
    if (i === last) break
    i++
  }
  return spans.length === names.length ? spans : undefined
}
