// Request targets: what path and query a request names, normalised so that policy judges exactly
// what the upstream will serve. Percent-encoded unreserved characters are decoded and dot segments
// removed (RFC 3986 §6.2.2, §5.2.4); the engine forwards the normalised form, so "/a/../admin" or
// "/%61dmin" cannot slip past a rule written for "/admin". Encoded "/" (%2F) and other reserved
// characters stay encoded: they change meaning when decoded.
// Spec: https://www.rfc-editor.org/rfc/rfc9112#section-3.2

export interface ParsedTarget {
  /** Normalised path, always starting with "/" ("*" for OPTIONS *). */
  path: string
  /** Raw query string without "?" ("" when absent). */
  rawQuery: string
  /** Decoded query parameters (application/x-www-form-urlencoded rules). */
  query: Record<string, string[]>
  /** What to send upstream: path plus "?" query when there was one. */
  target: string
}

const UNRESERVED = /[A-Za-z0-9\-._~]/

function decodeUnreserved(path: string): string | undefined {
  let bad = false
  const out = path.replace(/%([0-9A-Fa-f]{2})|%/g, (m, hex: string | undefined) => {
    if (hex === undefined) {
      bad = true
      return m
    }
    const ch = String.fromCharCode(parseInt(hex, 16))
    return UNRESERVED.test(ch) ? ch : '%' + hex.toUpperCase()
  })
  return bad ? undefined : out
}

/** RFC 3986 §5.2.4 remove_dot_segments. */
export function removeDotSegments(path: string): string {
  const input = path.split('/')
  const out: string[] = []
  for (let i = 0; i < input.length; i++) {
    const seg = input[i]
    const last = i === input.length - 1
    if (seg === '.') {
      if (last) out.push('')
    } else if (seg === '..') {
      if (out.length > 1) out.pop()
      if (last) out.push('')
    } else out.push(seg)
  }
  const joined = out.join('/')
  return joined.startsWith('/') ? joined : '/' + joined
}

export function parseQuery(raw: string): Record<string, string[]> {
  const query: Record<string, string[]> = Object.create(null) as Record<string, string[]>
  if (!raw) return query
  for (const [k, v] of new URLSearchParams(raw)) (query[k] ??= []).push(v)
  return query
}

/**
 * Parses an origin-form ("/p?q") or absolute-form ("http://h/p?q") target; asterisk-form only for
 * OPTIONS. Authority-form (CONNECT) is the caller's to refuse. Returns a reason when unusable.
 */
export function parseTarget(method: string, target: string): ParsedTarget | string {
  if (target === '*') {
    if (method !== 'OPTIONS') return 'asterisk-form target is only valid for OPTIONS'
    return {path: '*', rawQuery: '', query: parseQuery(''), target: '*'}
  }
  let t = target
  if (!t.startsWith('/')) {
    const m = /^https?:\/\/[^/?#]*(.*)$/i.exec(t)
    if (!m) return 'request target must be a path ("/...") or an absolute http URL'
    t = m[1] || '/'
    if (!t.startsWith('/')) t = '/' + t
  }
  if (t.includes('#')) return 'request target must not contain a fragment'
  const q = t.indexOf('?')
  const rawPath = q < 0 ? t : t.slice(0, q)
  const rawQuery = q < 0 ? '' : t.slice(q + 1)
  const decoded = decodeUnreserved(rawPath)
  if (decoded === undefined) return 'malformed percent-encoding in the request path'
  const path = removeDotSegments(decoded)
  return {path, rawQuery, query: parseQuery(rawQuery), target: q < 0 ? path : `${path}?${rawQuery}`}
}

const SECRET_PARAM = /token|secret|password|passwd|api[-_]?key|signature|^sig$|^key$|auth|credential|session/i

/** The target for logs and audit: values of secret-looking query parameters replaced. */
export function redactTarget(t: ParsedTarget): string {
  if (!t.rawQuery) return t.path
  const parts = t.rawQuery.split('&').map((p) => {
    const eq = p.indexOf('=')
    if (eq < 0) return p
    let name = p.slice(0, eq)
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '))
    } catch {
      // keep the raw name
    }
    return SECRET_PARAM.test(name) ? `${p.slice(0, eq)}=[redacted]` : p
  })
  return `${t.path}?${parts.join('&')}`
}
