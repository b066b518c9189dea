// Resolves the bearer credential a CLI command presents to the gateway. Order:
//   1. --token / HOOP_TOKEN (a service-account key, sent as is),
//   2. HOOP_CLIENT_ID + HOOP_CLIENT_SECRET (OAuth client credentials at the issuer named by the
//      gateway's well-known settings; the short-lived token is cached in memory),
//   3. a CI ID token (HOOP_ID_TOKEN, or a file named by HOOP_ID_TOKEN_FILE), sent as is for the
//      gateway to verify against its trusted workload issuers,
//   4. the stored `hoop login` profile for this gateway URL, renewed silently when it expires
//      within 60 s; a failed renewal is NOT_LOGGED_IN "session expired, run `hoop login`".
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {HoopError} from '../shared/errors.js'
import {clientCredentialsToken, fetchGatewaySettings, refreshProfile} from '../identity/oidc-client.js'
import {openCredentialStore, parseStoreChoice, type CredentialStore, type CredentialStoreChoice} from '../identity/token-store.js'
import {firstAnswering, resolveGateways} from './gateways.js'
import {currentProfile, noteCredential} from './hints.js'

/** Renew a stored access token when it has less than this many seconds left. */
const REFRESH_MARGIN_S = 60

interface CredentialOptions {
  /** The gateway's identity: the URL its login is stored under (the first of a replica list). */
  gateway: string
  /** Every replica of that gateway, to fetch its settings from the first that answers (default: [gateway]). */
  replicas?: string[]
  /** From --token or HOOP_TOKEN. */
  token?: string
  /** From --client-id / HOOP_CLIENT_ID and --client-secret / HOOP_CLIENT_SECRET. */
  clientId?: string
  clientSecret?: string
  /** A CI ID token, or a path to one (default: HOOP_ID_TOKEN, HOOP_ID_TOKEN_FILE). */
  idToken?: string
  idTokenFile?: string
  /** Where `hoop login` stored tokens (default: HOOP_CREDENTIAL_STORE, then auto). */
  credentialStore?: CredentialStoreChoice
  /** An already opened store (tests, or a command that also prints the store notice). */
  store?: CredentialStore
  /** Environment to read HOOP_* from (default process.env). */
  env?: NodeJS.ProcessEnv
}

export type BearerSource = 'token' | 'client-credentials' | 'ci-token' | 'login'

interface ResolvedBearer {
  bearer: string
  source: BearerSource
  /** Seconds since epoch, when known. */
  expiresAt?: number
}

const clientTokens = new Map<string, {accessToken: string; expiresAt: number}>()

export async function resolveBearer(opts: CredentialOptions): Promise<string> {
  return (await resolveCredential(opts)).bearer
}

export async function resolveCredential(opts: CredentialOptions): Promise<ResolvedBearer> {
  const resolved = await resolve(opts)
  noteCredential({gateway: opts.gateway, source: resolved.source, ...(resolved.issuer ? {issuer: resolved.issuer} : {})})
  return resolved
}

async function resolve(opts: CredentialOptions): Promise<ResolvedBearer & {issuer?: string}> {
  const env = opts.env ?? process.env
  const token = opts.token ?? env.HOOP_TOKEN
  if (token) return {bearer: token, source: 'token'}

  const clientId = opts.clientId ?? env.HOOP_CLIENT_ID
  const clientSecret = opts.clientSecret ?? env.HOOP_CLIENT_SECRET
  if (clientId || clientSecret) {
    if (!clientId || !clientSecret) throw new HoopError('INVALID_INPUT', 'client credentials need both HOOP_CLIENT_ID and HOOP_CLIENT_SECRET')
    return clientCredentials(opts.gateway, opts.replicas ?? [opts.gateway], clientId, clientSecret)
  }

  const idToken = opts.idToken ?? env.HOOP_ID_TOKEN
  if (idToken) return {bearer: idToken.trim(), source: 'ci-token'}
  const idTokenFile = opts.idTokenFile ?? env.HOOP_ID_TOKEN_FILE
  if (idTokenFile) {
    let text: string
    try {
      text = readFileSync(idTokenFile, 'utf8').trim()
    } catch (err) {
      throw new HoopError('NOT_LOGGED_IN', `cannot read CI ID token file ${idTokenFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    }
    if (!text) throw new HoopError('NOT_LOGGED_IN', `CI ID token file ${idTokenFile} is empty`)
    return {bearer: text, source: 'ci-token'}
  }

  const store = opts.store ?? (await openCredentialStore(parseStoreChoice(opts.credentialStore ?? env.HOOP_CREDENTIAL_STORE)))
  const profile = await store.get(opts.gateway)
  if (!profile) {
    noteCredential({gateway: opts.gateway, source: 'none'})
    const name = currentProfile(env)
    throw new HoopError(
      'NOT_LOGGED_IN',
      name
        ? `no credential for ${opts.gateway} in profile "${name}" (HOOP_PROFILE): that profile has not logged in to this gateway, and HOOP_TOKEN is not set`
        : `no credential for ${opts.gateway}: not logged in, and HOOP_TOKEN is not set`,
    )
  }
  noteCredential({gateway: opts.gateway, source: 'login', issuer: profile.issuer})
  if (profile.expiresAt - Math.floor(Date.now() / 1000) > REFRESH_MARGIN_S) {
    return {bearer: profile.accessToken, source: 'login', expiresAt: profile.expiresAt, issuer: profile.issuer}
  }
  const renewed = await refreshProfile(profile)
  await store.put(renewed)
  return {bearer: renewed.accessToken, source: 'login', expiresAt: renewed.expiresAt, issuer: renewed.issuer}
}

async function clientCredentials(gateway: string, replicas: string[], clientId: string, clientSecret: string): Promise<ResolvedBearer> {
  // Keyed by the secret's hash too: a changed secret must not reuse a token minted for the old one.
  const key = `${gateway}\n${clientId}\n${createHash('sha256').update(clientSecret).digest('hex')}`
  const cached = clientTokens.get(key)
  if (cached && cached.expiresAt - Math.floor(Date.now() / 1000) > REFRESH_MARGIN_S) {
    return {bearer: cached.accessToken, source: 'client-credentials', expiresAt: cached.expiresAt}
  }
  const {value: settings} = await firstAnswering(replicas, fetchGatewaySettings)
  const cc = settings.clientCredentials
  if (!cc) throw new HoopError('NOT_LOGGED_IN', `gateway ${gateway} accepts no client credentials (auth.clientCredentials is not configured)`)
  const t = await clientCredentialsToken(cc, clientId, clientSecret)
  clientTokens.set(key, t)
  return {bearer: t.accessToken, source: 'client-credentials', expiresAt: t.expiresAt}
}

/**
 * The gateway a single-request command talks to: the first URL of --gateway / HOOP_GATEWAY (a
 * comma-separated replica list is allowed; see gateways.ts), then the last login, then the default.
 */
export function resolveGatewayUrl(flag?: string): string {
  return resolveGateways(flag).identity
}
