// `hoop login --dev-user EMAIL`: completes the device flow against the embedded dev OpenID Provider
// (dev-idp.ts) without a browser, by doing what a person does on its plain HTML pages: open the
// verification URL, confirm the code, pick the demo user, allow. A cookie jar, manual redirects
// and form submission by element id are all those pages need. It only ever talks to the issuer's
// own loopback origin; runLogin checks first that the gateway is in dev mode on loopback.
import {HoopError} from '../shared/errors.js'
import {isLoopbackUrl} from './auth-config.js'

interface Page {
  status: number
  html: string
  url: string
}

export class DevBrowser {
  private readonly cookies = new Map<string, string>()

  /** @param origin every request must stay on this origin (the dev issuer's). */
  constructor(private readonly origin: string) {}

  private remember(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  /** Requests a URL and follows redirects (on the same origin only); returns the final page. */
  async request(url: string, init: {method?: string; form?: Record<string, string>} = {}): Promise<Page> {
    let method = init.method ?? 'GET'
    let body: string | undefined = init.form ? new URLSearchParams(init.form).toString() : undefined
    let current = url
    for (let hops = 0; hops < 20; hops++) {
      if (new URL(current).origin !== this.origin) {
        throw new HoopError('LOGIN_FAILED', `the dev identity provider sent the login to ${new URL(current).origin}, not to its own ${this.origin}; log in with the browser instead`)
      }
      const res = await fetch(current, {
        method,
        redirect: 'manual',
        signal: AbortSignal.timeout(15_000),
        headers: {
          cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
          ...(body ? {'content-type': 'application/x-www-form-urlencoded'} : {}),
        },
        body,
      })
      this.remember(res)
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.arrayBuffer()
        current = new URL(res.headers.get('location')!, current).href
        method = 'GET'
        body = undefined
        continue
      }
      return {status: res.status, html: await res.text(), url: current}
    }
    throw new HoopError('LOGIN_FAILED', `too many redirects from ${url}`)
  }

  /** Submits the form with the given id on `page` (its hidden inputs included), plus extra fields. */
  async submit(page: Page, formId: string, extra: Record<string, string> = {}): Promise<Page> {
    const idPart = formId ? `[^>]*id="${formId.replace('.', '\\.')}"` : ''
    const m = new RegExp(`<form${idPart}[^>]*>([\\s\\S]*?)</form>`).exec(page.html)
    if (!m) throw unexpected(`a form #${formId}`, page)
    const action = /action="([^"]*)"/.exec(m[0])?.[1] ?? page.url
    const form: Record<string, string> = {}
    for (const input of m[1].matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]*)"/.exec(input[1])?.[1]
      const value = /value="([^"]*)"/.exec(input[1])?.[1] ?? ''
      if (name && /type="hidden"/.test(input[1])) form[name] = unescape(value)
    }
    return this.request(new URL(unescape(action), page.url).href, {method: 'POST', form: {...form, ...extra}})
  }
}

const unescape = (s: string) => s.replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c))).replace(/&amp;/g, '&')

function unexpected(what: string, page: Page): HoopError {
  const error = /id="error">([^<]*)</.exec(page.html)?.[1]
  return new HoopError('LOGIN_FAILED', `the dev identity provider did not show ${what} (${error ? `it said: ${unescape(error)}` : `HTTP ${page.status} at ${page.url}`})`)
}

/**
 * Plays the person at the browser for one device login: confirm the code, pick `email`, allow (or
 * deny, for tests). Throws LOGIN_FAILED naming the demo users when `email` is not one of them.
 */
export async function completeDevLogin(verificationUriComplete: string, email: string, opts: {deny?: boolean} = {}): Promise<void> {
  if (!isLoopbackUrl(verificationUriComplete)) {
    throw new HoopError('LOGIN_FAILED', `the verification page ${verificationUriComplete} is not on this machine; --dev-user only signs in to a dev identity provider on loopback`)
  }
  const b = new DevBrowser(new URL(verificationUriComplete).origin)
  let confirm = await b.request(verificationUriComplete)
  // With the code in the URL, the provider first shows a self-submitting form (JS in a browser).
  if (confirm.html.includes('Submitting Callback')) confirm = await b.submit(confirm, '')
  if (!confirm.html.includes('op.deviceConfirmForm')) throw unexpected('the device confirmation page', confirm)
  const login = await b.submit(confirm, 'op.deviceConfirmForm')
  if (!login.html.includes('id="login"')) throw unexpected('the page to pick a demo user', login)
  const users = [...login.html.matchAll(/name="email" value="([^"]*)"/g)].map((m) => unescape(m[1]))
  if (!users.includes(email)) {
    throw new HoopError('INVALID_INPUT', `${email} is not a demo user of this gateway; its demo users are ${users.join(', ') || '(none)'}`)
  }
  const consent = await b.submit(login, 'login', {email})
  if (!consent.html.includes('id="consent"')) throw unexpected('the consent page', consent)
  const done = await b.submit(consent, opts.deny ? 'abort' : 'consent')
  if (!opts.deny && !done.html.includes('id="done"')) throw unexpected('the "signed in" page', done)
}
