// The gateway's identity runtime: how it authenticates callers, what it publishes about its auth
// settings, and any HTTP routes identity needs (the dev OpenID Provider under /oidc).
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {GatewayConfig} from '../shared/config.js'
import type {Logger} from '../shared/log.js'
import type {Store} from '../store/types.js'
import {DEFAULT_SCOPES, parseAuthConfig, parseDevConfig, type AuthConfig} from './auth-config.js'
import {createAuthenticator} from './authenticator.js'
import {mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import type {JWK} from 'jose'
import type {DevIdp} from './dev-idp.js'
import type {Authenticator} from './types.js'

interface IdentityRuntimeOptions {
  config: GatewayConfig
  store: Store
  logger: Logger
  /** The gateway's own base URL, e.g. http://127.0.0.1:8009. */
  publicUrl: string
  dev: boolean
  /** Where dev mode keeps its identity provider's signing key. */
  dataDir?: string
}

/** Public auth settings served at /.well-known/hoop-configuration. */
interface PublicAuthSettings {
  issuer?: string
  clientId?: string
  audience?: string
  scopes?: string[]
  /** Where `HOOP_CLIENT_ID`/`HOOP_CLIENT_SECRET` are exchanged for a token. */
  clientCredentials?: {issuer: string; audience: string; scopes?: string[]}
  /** True when the login issuer is the embedded dev IdP (demo users). */
  dev?: boolean
}

export interface IdentityRuntime {
  /** Authenticates people, service accounts, client-credential and CI tokens (not agents). */
  authenticator: Authenticator
  publicSettings(): PublicAuthSettings
  /** Handles identity HTTP routes; resolves true when it answered the request. */
  handleHttp(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  close(): Promise<void>
  /** The validated auth settings in effect (dev mode fills in `oidc`). */
  readonly auth?: AuthConfig
}

const DEV_MOUNT_PATH = '/oidc'

export async function createIdentityRuntime(opts: IdentityRuntimeOptions): Promise<IdentityRuntime> {
  const auth = parseAuthConfig(opts.config)
  let devIdp: DevIdp | undefined
  if (opts.dev) {
    const dev = parseDevConfig(opts.config)
    // Imported lazily: oidc-provider is only loaded when dev mode asks for it.
    const {createDevIdp, DEV_AUDIENCE, DEV_CLIENT_ID, DEV_CONSOLE_CLIENT_ID, generateSigningJwks} = await quietly(() => import('./dev-idp.js'))
    // The dev provider's signing key lives in the data dir, so tokens survive a gateway restart.
    const jwks = opts.dataDir ? await loadOrCreateJwks(join(opts.dataDir, 'dev-idp-jwks.json'), generateSigningJwks) : undefined
    const issuer = `${opts.publicUrl.replace(/\/+$/, '')}${DEV_MOUNT_PATH}`
    const consoleRedirectUri = `${opts.publicUrl.replace(/\/+$/, '')}/console/callback`
    devIdp = await createDevIdp({issuer, users: dev.users, accessTokenTtl: dev.accessTokenTtl, jwks, consoleRedirectUri})
    if (auth.oidc) opts.logger.warn('dev mode: the embedded identity provider replaces auth.oidc for logins', {configured: auth.oidc.issuer, dev: issuer})
    auth.oidc = {issuer, clientId: DEV_CLIENT_ID, audience: DEV_AUDIENCE, scopes: DEFAULT_SCOPES, groupsClaim: 'groups', algorithms: ['RS256'], clockSkew: 60, consoleClientId: DEV_CONSOLE_CLIENT_ID}
    opts.logger.info('dev identity provider: `hoop login` shows a page to pick one of these demo users', {
      issuer,
      users: dev.users.map((u) => `${u.email} [${u.groups.join(', ')}]`),
    })
  }
  const authenticator = createAuthenticator(auth, {store: opts.store})
  const settings: PublicAuthSettings = {}
  if (auth.oidc) {
    Object.assign(settings, {issuer: auth.oidc.issuer, clientId: auth.oidc.clientId, audience: auth.oidc.audience, scopes: auth.oidc.scopes})
  }
  if (auth.clientCredentials) {
    const cc = auth.clientCredentials
    settings.clientCredentials = {issuer: cc.issuer, audience: cc.audience, ...(cc.scopes.length ? {scopes: cc.scopes} : {})}
  }
  if (devIdp) settings.dev = true

  return {
    auth,
    authenticator,
    publicSettings: () => structuredClone(settings),
    handleHttp: async (req, res) => (devIdp ? devIdp.handle(req, res) : false),
    close: async () => {
      await devIdp?.close()
    },
  }
}

/**
 * oidc-provider warns on import that Node 20 is not its preferred runtime; it works here (the
 * tests prove it), and in dev mode the warning only buries the banner.
 */
async function quietly<T>(load: () => Promise<T>): Promise<T> {
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).includes('Unsupported runtime')) warn(...args)
  }
  try {
    return await load()
  } finally {
    console.warn = warn
  }
}

async function loadOrCreateJwks(file: string, generate: () => Promise<{keys: JWK[]}>): Promise<{keys: JWK[]}> {
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as {keys?: JWK[]}
    if (Array.isArray(stored.keys) && stored.keys.length > 0) return {keys: stored.keys}
  } catch {
    // absent or unreadable: make a new one
  }
  const jwks = await generate()
  mkdirSync(dirname(file), {recursive: true, mode: 0o700})
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(jwks), {mode: 0o600})
  renameSync(tmp, file)
  return jwks
}
