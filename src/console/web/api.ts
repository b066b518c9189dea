// The console's calls to the gateway: its own API under /console/api/v1 (the same routes and
// checks as /v1), with the session cookie, and the CSRF token on every state change.
export interface Identity {
  kind: string
  subject: string
  name: string
  email?: string
  groups: string[]
}

export interface Session {
  identity: Identity
  csrf: string
  expiresAt: string
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

let csrf = ''

export async function loadSession(): Promise<Session> {
  const s = await call<Session>('GET', '/console/api/session')
  csrf = s.csrf
  return s
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {accept: 'application/json'}
  if (method !== 'GET') {
    headers['x-hoop-csrf'] = csrf
    headers['content-type'] = 'application/json'
  }
  const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin'})
  const data = (await res.json().catch(() => ({}))) as {error?: {code: string; message: string}}
  if (!res.ok) {
    // An expired session: log in again and come back here.
    if (res.status === 401) location.assign(`/console/login?next=${encodeURIComponent(location.pathname)}`)
    throw new ApiError(res.status, data.error?.code ?? 'HTTP_' + res.status, data.error?.message ?? `HTTP ${res.status}`)
  }
  return data as T
}

export const get = <T>(path: string) => call<T>('GET', `/console/api${path}`)
export const post = <T>(path: string, body: unknown) => call<T>('POST', `/console/api${path}`, body)

export async function logout(): Promise<void> {
  await call('POST', '/console/logout', {})
}
