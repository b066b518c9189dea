// A tiny "browser" for tests that play the user in the device flow: a cookie jar, manual redirect
// following, and form submission by element id. Only what the dev IdP's plain HTML pages need.

export class TestBrowser {
  private readonly cookies = new Map<string, string>()
  lastUrl = ''

  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

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

  /** Requests a URL and follows redirects; returns the final page's status and HTML. */
  async request(url: string, init: {method?: string; form?: Record<string, string>} = {}): Promise<{status: number; html: string; url: string}> {
    let method = init.method ?? 'GET'
    let body: string | undefined = init.form ? new URLSearchParams(init.form).toString() : undefined
    let current = url
    for (let hops = 0; hops < 20; hops++) {
      const res = await fetch(current, {
        method,
        redirect: 'manual',
        headers: {
          cookie: this.cookieHeader(),
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
      this.lastUrl = current
      return {status: res.status, html: await res.text(), url: current}
    }
    throw new Error(`too many redirects from ${url}`)
  }

  /** Submits the form with the given id on `html` (hidden inputs included), plus extra fields. */
  async submit(page: {html: string; url: string}, formId: string, extra: Record<string, string> = {}): Promise<{status: number; html: string; url: string}> {
    const idPart = formId ? `[^>]*id="${formId.replace('.', '\\.')}"` : ''
    const re = new RegExp(`<form${idPart}[^>]*>([\\s\\S]*?)</form>`)
    const m = re.exec(page.html)
    if (!m) throw new Error(`form #${formId} not found on ${page.url}:\n${page.html.slice(0, 2000)}`)
    const action = /action="([^"]*)"/.exec(m[0])?.[1] ?? page.url
    const form: Record<string, string> = {}
    for (const input of m[1].matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]*)"/.exec(input[1])?.[1]
      const value = /value="([^"]*)"/.exec(input[1])?.[1] ?? ''
      if (name && /type="hidden"/.test(input[1])) form[name] = value.replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c)))
    }
    return this.request(new URL(action, page.url).href, {method: 'POST', form: {...form, ...extra}})
  }
}

/** Plays the user: open the verification URL, pick the demo user, allow (or deny) the request. */
export async function completeDeviceLogin(verificationUriComplete: string, email: string, opts: {deny?: boolean} = {}): Promise<string> {
  const b = new TestBrowser()
  let confirm = await b.request(verificationUriComplete)
  // With the code in the URL, the provider first shows a self-submitting form (JS in a browser).
  if (confirm.html.includes('Submitting Callback')) confirm = await b.submit(confirm, '')
  if (!confirm.html.includes('op.deviceConfirmForm')) throw new Error(`expected the device confirm page, got:\n${confirm.html.slice(0, 1500)}`)
  const login = await b.submit(confirm, 'op.deviceConfirmForm')
  if (!login.html.includes('id="login"')) throw new Error(`expected the login page, got:\n${login.html.slice(0, 1500)}`)
  const consent = await b.submit(login, 'login', {email})
  if (!consent.html.includes('id="consent"')) throw new Error(`expected the consent page, got:\n${consent.html.slice(0, 1500)}`)
  const done = await b.submit(consent, opts.deny ? 'abort' : 'consent')
  return done.html
}
