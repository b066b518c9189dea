// The embedded development OpenID Provider (`hoop gateway --dev`, and the tests' issuers): a real
// oidc-provider with the device authorization grant (RFC 8628), JWT access tokens for the hoop
// audience (RFC 9068, through resource indicators, RFC 8707), refresh tokens, revocation and
// client credentials. Logins are a plain HTML "pick a demo user" page: it is dev only, and the
// gateway binds it to loopback only. Nothing here is used unless dev mode or a test starts it.
import {randomBytes} from 'node:crypto'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import {exportJWK, generateKeyPair, type JWK} from 'jose'
import Provider, {type Adapter, type AdapterPayload, type ClientMetadata, type Configuration, type KoaContextWithOIDC} from 'oidc-provider'
import {errorMessage} from '../shared/errors.js'
import type {DevUser} from './auth-config.js'

export const DEV_CLIENT_ID = 'hoop-cli'
/** The web console's public client: authorization code with PKCE (RFC 7636), nothing else. */
export const DEV_CONSOLE_CLIENT_ID = 'hoop-console'
export const DEV_AUDIENCE = 'hoop'
/** The resource indicator the dev IdP issues JWT access tokens for (RFC 8707 wants an absolute URI). */
const DEV_RESOURCE = 'urn:hoop:gateway'

interface DevIdpOptions {
  /** Full issuer URL, e.g. http://127.0.0.1:8009/oidc. Its path is where the provider is mounted. */
  issuer: string
  users: DevUser[]
  audience?: string
  /** Public client for the device flow; set to null to have none. */
  deviceClientId?: string | null
  /** Where the web console's public client (DEV_CONSOLE_CLIENT_ID) gets its codes; no console client without it. */
  consoleRedirectUri?: string
  /** Extra clients, e.g. confidential clients for client credentials in tests. */
  clients?: ClientMetadata[]
  /** Extra claims put in a client-credentials token, per client id (a CI platform's claims in tests). */
  clientClaims?: Record<string, Record<string, unknown>>
  accessTokenTtl?: number
  refreshTokenTtl?: number
  /** Device-flow poll interval announced to clients, in seconds. */
  pollInterval?: number
  /** Private signing keys (JWKS with `d`); a fresh RS256 key is made when absent. */
  jwks?: {keys: JWK[]}
}

export interface DevIdp {
  readonly issuer: string
  readonly mountPath: string
  /** Answers requests under the mount path; resolves false for anything else. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  /** Ends every session and token (in-memory state). */
  close(): Promise<void>
}

/** A private RS256 signing key, e.g. for tests that must sign tokens the way the IdP does. */
export async function generateSigningJwks(kid = `dev-${randomBytes(4).toString('hex')}`): Promise<{keys: JWK[]}> {
  const {privateKey} = await generateKeyPair('RS256', {extractable: true})
  return {keys: [{...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig'}]}
}

/** In-memory storage for the provider: one Map per model, honouring expiry. Dev only. */
function memoryAdapterFactory(): new (name: string) => Adapter {
  const stores = new Map<string, Map<string, {payload: AdapterPayload; expiresAt?: number}>>()
  return class MemoryAdapter implements Adapter {
    private readonly store: Map<string, {payload: AdapterPayload; expiresAt?: number}>
    constructor(readonly name: string) {
      let s = stores.get(name)
      if (!s) stores.set(name, (s = new Map()))
      this.store = s
    }
    private live(id: string) {
      const e = this.store.get(id)
      if (e?.expiresAt && e.expiresAt < Date.now()) {
        this.store.delete(id)
        return undefined
      }
      return e
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
      this.store.set(id, {payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined})
    }
    async find(id: string) {
      return this.live(id)?.payload
    }
    async findByUserCode(userCode: string) {
      for (const [id, e] of this.store) if (e.payload.userCode === userCode) return this.live(id)?.payload
      return undefined
    }
    async findByUid(uid: string) {
      for (const [id, e] of this.store) if (e.payload.uid === uid) return this.live(id)?.payload
      return undefined
    }
    async consume(id: string) {
      const e = this.live(id)
      if (e) e.payload.consumed = Math.floor(Date.now() / 1000)
    }
    async destroy(id: string) {
      this.store.delete(id)
    }
    async revokeByGrantId(grantId: string) {
      for (const s of stores.values()) for (const [id, e] of s) if (e.payload.grantId === grantId) s.delete(id)
    }
  }
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}button{margin:.3em 0;padding:.5em 1em}.dev{color:#a60}</style>
</head><body><h1>${esc(title)}</h1><p class="dev">hoop development identity provider: demo users only.</p>${body}</body></html>`
}

export async function createDevIdp(opts: DevIdpOptions): Promise<DevIdp> {
  const issuerUrl = new URL(opts.issuer)
  const mountPath = issuerUrl.pathname.replace(/\/+$/, '')
  const users = new Map(opts.users.map((u) => [u.email, u]))
  const audience = opts.audience ?? DEV_AUDIENCE
  const deviceClientId = opts.deviceClientId === undefined ? DEV_CLIENT_ID : opts.deviceClientId
  const jwks = opts.jwks ?? (await generateSigningJwks())
  const clients: ClientMetadata[] = [...(opts.clients ?? [])]
  if (deviceClientId) {
    clients.push({
      client_id: deviceClientId,
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    })
  }
  if (opts.consoleRedirectUri) {
    clients.push({
      client_id: DEV_CONSOLE_CLIENT_ID,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [opts.consoleRedirectUri],
    })
  }

  const configuration: Configuration = {
    adapter: memoryAdapterFactory(),
    clients,
    jwks: jwks as Configuration['jwks'],
    cookies: {keys: [randomBytes(32).toString('base64url')]},
    claims: {openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups']},
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    ttl: {
      AccessToken: opts.accessTokenTtl ?? 600,
      ClientCredentials: opts.accessTokenTtl ?? 600,
      DeviceCode: 600,
      IdToken: 3600,
      RefreshToken: opts.refreshTokenTtl ?? 86400,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
    async findAccount(_ctx, id) {
      const u = users.get(id)
      if (!u) return undefined
      return {
        accountId: id,
        async claims() {
          return {sub: id, email: u.email, email_verified: true, name: u.name, groups: u.groups}
        },
      }
    },
    // Access tokens carry who the user is, so the gateway needs no userinfo round trip.
    async extraTokenClaims(_ctx, token) {
      if ('accountId' in token && typeof token.accountId === 'string') {
        const u = users.get(token.accountId)
        if (u) return {email: u.email, name: u.name, groups: u.groups}
      }
      const clientId = (token as {clientId?: string}).clientId
      if (clientId && opts.clientClaims?.[clientId]) return {...opts.clientClaims[clientId]}
      return undefined
    },
    interactions: {url: (_ctx, interaction) => `${mountPath}/interaction/${interaction.uid}`},
    features: {
      devInteractions: {enabled: false},
      revocation: {
        enabled: true,
        // A client may revoke only its own tokens.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      clientCredentials: {enabled: true},
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        async userCodeInputSource(ctx, form, _out, err) {
          const msg = err ? '<p>The code is incorrect or expired. Try again.</p>' : '<p>Enter the code shown by <code>hoop login</code>.</p>'
          ctx.body = page('Device login', `${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`)
        },
        async userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
          ctx.body = page(
            'Confirm device',
            `<p><b>${esc(client.clientId)}</b> asks to sign in. Make sure this code matches the one in your terminal: <b id="user-code">${esc(userCode)}</b></p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`,
          )
        },
        async successSource(ctx) {
          ctx.body = page('Signed in', '<p id="done">You are signed in. Return to your terminal.</p>')
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => DEV_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== DEV_RESOURCE) throw new Provider.errors.InvalidTarget(`unknown resource ${indicator}`)
          return {
            scope: 'hoop',
            audience,
            accessTokenTTL: opts.accessTokenTtl ?? 600,
            accessTokenFormat: 'jwt',
            jwt: {sign: {alg: 'RS256'}},
          }
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html'
      ctx.body = page('Error', `<p id="error">${esc(String(out.error))}: ${esc(String(out.error_description ?? ''))}</p>`)
    },
    // The dev IdP has one first-party client; no need to ask every time after the first consent.
    // The console's code flow always sends PKCE (S256); the device flow has no use for it.
    pkce: {required: (_ctx, client) => (client as {clientId?: string}).clientId === DEV_CONSOLE_CLIENT_ID},
  }

  const provider = new Provider(opts.issuer, configuration)
  // RFC 8628 §3.2 lets the server name the polling interval; a short one keeps dev logins snappy.
  provider.on('device_authorization.success', (_ctx: KoaContextWithOIDC, body: Record<string, unknown>) => {
    body.interval = opts.pollInterval ?? 1
  })
  const callback = provider.callback()

  const interactionRe = new RegExp(`^${mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/interaction/([A-Za-z0-9_-]+)(?:/(login|consent|abort))?$`)

  async function interaction(req: IncomingMessage, res: ServerResponse, action: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(req, res)
    const {uid, prompt, params} = details
    if (req.method === 'GET' && !action) {
      const base = `${mountPath}/interaction/${uid}`
      if (prompt.name === 'login') {
        const buttons = [...users.values()]
          .map((u) => `<button type="submit" name="email" value="${esc(u.email)}">${esc(u.name)} &lt;${esc(u.email)}&gt; (${esc(u.groups.join(', ') || 'no groups')})</button><br>`)
          .join('')
        return send(res, 200, page('Sign in', `<p>Pick a demo user:</p><form id="login" method="post" action="${base}/login">${buttons}</form>`))
      }
      const scopes = String(params.scope ?? '')
      return send(
        res,
        200,
        page(
          'Authorize',
          `<p><b>${esc(String(params.client_id))}</b> asks for: ${esc(scopes)}</p>
<form id="consent" method="post" action="${base}/consent"><button type="submit">Allow</button></form>
<form id="abort" method="post" action="${base}/abort"><button type="submit">Deny</button></form>`,
        ),
      )
    }
    if (req.method !== 'POST') return send(res, 405, page('Error', '<p>method not allowed</p>'))
    const form = new URLSearchParams(await readBody(req))
    if (action === 'login') {
      const email = form.get('email') ?? ''
      if (prompt.name !== 'login' || !users.has(email)) return send(res, 400, page('Error', '<p id="error">unknown demo user</p>'))
      await provider.interactionFinished(req, res, {login: {accountId: email}}, {mergeWithLastSubmission: false})
      return
    }
    if (action === 'abort') {
      await provider.interactionFinished(req, res, {error: 'access_denied', error_description: 'the user denied the request'}, {mergeWithLastSubmission: false})
      return
    }
    if (action === 'consent' && prompt.name === 'consent') {
      const grant = details.grantId
        ? (await provider.Grant.find(details.grantId))!
        : new provider.Grant({accountId: details.session!.accountId, clientId: String(params.client_id)})
      const d = prompt.details as {missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]>}
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '))
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims)
      for (const [indicator, scope] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scope.join(' '))
      await provider.interactionFinished(req, res, {consent: {grantId: await grant.save()}}, {mergeWithLastSubmission: true})
      return
    }
    return send(res, 400, page('Error', '<p id="error">unexpected step</p>'))
  }

  return {
    issuer: opts.issuer.replace(/\/+$/, ''),
    mountPath,
    async handle(req, res) {
      const url = req.url ?? '/'
      const path = url.split('?')[0]
      if (mountPath && path !== mountPath && !path.startsWith(mountPath + '/')) return false
      const m = interactionRe.exec(path)
      try {
        if (m) {
          await interaction(req, res, m[2])
          return true
        }
        // Mount like connect/express does: the provider sees the path below the mount point and
        // derives its absolute URLs from originalUrl (oidc-provider "mounting" docs).
        ;(req as IncomingMessage & {originalUrl?: string}).originalUrl = url
        req.url = url.slice(mountPath.length) || '/'
        await callback(req, res)
      } catch (err) {
        if (!res.headersSent) send(res, 400, page('Error', `<p id="error">${esc(errorMessage(err))}</p>`))
      }
      return true
    },
    async close() {},
  }
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store'})
  res.end(html)
}

async function readBody(req: IncomingMessage, limit = 16 * 1024): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new Error(`form body exceeds ${limit} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Runs a dev IdP on its own loopback port (tests, and a standalone second issuer). */
export async function startDevIdpServer(opts: Omit<DevIdpOptions, 'issuer'> & {mountPath?: string; host?: string}): Promise<DevIdp & {url: string; server: Server}> {
  const host = opts.host ?? '127.0.0.1'
  // Assigned once the server's port is known; the request handler reads it later.
  // eslint-disable-next-line prefer-const
  let idp: DevIdp | undefined
  const server = createServer((req, res) => {
    if (!idp) return void res.writeHead(503).end()
    void idp.handle(req, res).then((handled) => {
      if (!handled && !res.headersSent) res.writeHead(404).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const url = `http://${host}:${(server.address() as AddressInfo).port}`
  idp = await createDevIdp({...opts, issuer: `${url}${opts.mountPath ?? '/oidc'}`})
  const inner = idp
  return {
    ...inner,
    issuer: inner.issuer,
    mountPath: inner.mountPath,
    handle: inner.handle,
    url,
    server,
    async close() {
      await inner.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
