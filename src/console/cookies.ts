// Cookie header parsing and Set-Cookie values for the console. The request header is bounded:
// a peer cannot make the gateway split megabytes of cookies.
const MAX_COOKIE_HEADER = 8192

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > MAX_COOKIE_HEADER) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

export interface CookieOptions {
  path: string
  maxAgeSeconds: number
  sameSite: 'Strict' | 'Lax'
  secure: boolean
}

/** Always HttpOnly: no script of ours reads a cookie, so no injected script can either. */
export function setCookie(name: string, value: string, o: CookieOptions): string {
  return `${name}=${value}; Path=${o.path}; Max-Age=${Math.max(0, Math.floor(o.maxAgeSeconds))}; HttpOnly; SameSite=${o.sameSite}${o.secure ? '; Secure' : ''}`
}
