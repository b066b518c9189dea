// What `hoop login`, `hoop logout` and `hoop whoami` do. Human output goes to stderr through
// `say`, so `--json` keeps stdout for the result; the commands only parse flags and call these.
import {spawn} from 'node:child_process'
import {GatewayApi} from './api.js'
import {resolveCredential, type BearerSource} from './credentials.js'
import type {Identity} from '../identity/types.js'
import {isLoopbackUrl} from '../identity/auth-config.js'
import {completeDevLogin} from '../identity/dev-browser.js'
import {deviceLogin, fetchGatewaySettings, revokeProfile, type DevicePrompt} from '../identity/oidc-client.js'
import {HoopError} from '../shared/errors.js'
import {firstAnswering, resolveGateways} from './gateways.js'
import {commandFor, currentProfile} from './hints.js'
import {openCredentialStore, storeNotice, writeLastGateway, type CredentialStoreChoice} from '../identity/token-store.js'

export interface CliIo {
  /** A line for the person at the terminal (stderr). */
  say(line: string): void
  /** True when stderr is a terminal (spinner allowed). */
  interactive: boolean
}

const stderrIo: CliIo = {say: (line) => process.stderr.write(line + '\n'), interactive: Boolean(process.stderr.isTTY)}

export interface LoginResult {
  gateway: string
  subject: string
  email?: string
  groups: string[]
  issuer: string
  expiresAt: string
  store: {kind: 'keychain' | 'file'; location: string}
}

export async function runLogin(
  opts: {
    /** The gateway's identity: its login is stored under this URL (the first of a replica list). */
    gateway: string
    /** Every replica of that gateway, to fetch its login settings from the first that answers (default: [gateway]). */
    replicas?: string[]
    browser: boolean
    credentialStore: CredentialStoreChoice
    signal?: AbortSignal
    /** Sign in as this demo user without a browser (a dev-mode gateway on loopback only). */
    devUser?: string
  },
  io: CliIo = stderrIo,
): Promise<LoginResult> {
  const replicas = opts.replicas ?? [opts.gateway]
  if (opts.devUser !== undefined && !replicas.every(isLoopbackUrl)) {
    throw new HoopError(
      'INVALID_INPUT',
      `--dev-user signs in only to a dev-mode gateway on this machine (127.0.0.1, localhost or ::1); ${opts.gateway} is not one: run \`hoop login\` without --dev-user and sign in in the browser`,
    )
  }
  const store = await openCredentialStore(opts.credentialStore)
  io.say(storeNotice(store))
  const {value: settings} = await firstAnswering(replicas, fetchGatewaySettings)
  if (opts.devUser !== undefined && (!settings.dev || !settings.issuer || !isLoopbackUrl(settings.issuer))) {
    throw new HoopError(
      'INVALID_INPUT',
      `--dev-user needs a gateway running with --dev (demo users, no passwords); ${opts.gateway} is not in dev mode: run \`hoop login\` without --dev-user and sign in with your identity provider`,
    )
  }
  if (!settings.issuer || !settings.clientId) {
    // `hoop login` cannot help here; do not send the user back to it (issue 17: dev -> production loop).
    const stale = await store.get(opts.gateway).catch(() => undefined)
    const logout = `\`${commandFor(`logout --gateway ${opts.gateway}`)}\``
    throw new HoopError('LOGIN_FAILED', `gateway ${opts.gateway} has no login issuer: its config sets no auth.oidc, so people cannot log in to it`, {
      hint:
        (stale ? `your stored login for it (from ${stale.issuer}) is stale: remove it with ${logout}; then ` : '') +
        "use a service-account key (HOOP_TOKEN), ask the gateway's admin to configure auth.oidc (docs/configuration.md), or, to try hoop, run the gateway with --dev",
    })
  }
  const spinner = new Spinner(io)
  let profile
  try {
    profile = await deviceLogin({
      gateway: opts.gateway,
      settings,
      signal: opts.signal,
      onPrompt: async (p: DevicePrompt) => {
        const url = p.verificationUriComplete ?? p.verificationUri
        if (opts.devUser !== undefined) {
          // Headless: play the person at the dev provider's page; the device flow itself is unchanged.
          io.say(`Signing in to the dev identity provider as ${opts.devUser} (no browser: --dev-user).`)
          await completeDevLogin(url, opts.devUser)
          return
        }
        io.say(`To sign in to ${opts.gateway}, open ${url}`)
        io.say(`and check that it shows the code ${p.userCode} (valid for ${Math.round(p.expiresIn / 60)} min).`)
        if (settings.dev) io.say('This gateway runs in dev mode: pick one of the demo users (or use --dev-user EMAIL next time).')
        if (opts.browser) openBrowser(url)
        spinner.start('Waiting for you to confirm in the browser')
      },
    })
  } finally {
    spinner.stop()
  }
  await store.put(profile)
  // The whole list, so later commands without --gateway fail over too.
  writeLastGateway(replicas.join(','))
  io.say(`Logged in to ${replicas.join(', ')} as ${profile.email ?? profile.subject}${profile.groups.length ? ` (groups: ${profile.groups.join(', ')})` : ''}.`)
  const name = currentProfile()
  if (name) io.say(`Stored in profile "${name}": commands use it when HOOP_PROFILE=${name} is set.`)
  return {
    gateway: opts.gateway,
    subject: profile.subject,
    ...(profile.email ? {email: profile.email} : {}),
    groups: profile.groups,
    issuer: profile.issuer,
    expiresAt: new Date(profile.expiresAt * 1000).toISOString(),
    store: {kind: store.kind, location: store.location},
  }
}

export interface LogoutResult {
  gateway: string
  /** A stored login existed and was deleted. */
  removed: boolean
  /** The issuer confirmed revocation of the tokens. */
  revoked: boolean
}

export async function runLogout(opts: {gateway: string; credentialStore: CredentialStoreChoice; revoke: boolean}, io: CliIo = stderrIo): Promise<LogoutResult> {
  const store = await openCredentialStore(opts.credentialStore)
  const profile = await store.get(opts.gateway)
  if (!profile) {
    const name = currentProfile()
    io.say(`Not logged in to ${opts.gateway}${name ? ` in profile "${name}" (HOOP_PROFILE)` : ''}; nothing to do.`)
    return {gateway: opts.gateway, removed: false, revoked: false}
  }
  const revoked = opts.revoke ? await revokeProfile(profile) : false
  const removed = await store.delete(opts.gateway)
  io.say(
    `Logged out of ${opts.gateway}: tokens deleted from ${store.location}` +
      (opts.revoke ? (revoked ? ' and revoked at the issuer.' : ' (the issuer does not support revocation or refused it; they expire on their own).') : '.'),
  )
  return {gateway: opts.gateway, removed, revoked}
}

export interface WhoamiResult {
  gateway: string
  kind: Identity['kind']
  subject: string
  name: string
  email?: string
  groups: string[]
  issuer?: string
  expiresAt?: string
  /** Which credential the CLI presented. */
  credential: BearerSource
  /** The replica that answered, when --gateway lists several (the first one unless it was down). */
  replica?: string
  claims?: Record<string, string>
}

/**
 * Asks the gateway which identity it verified for the credential this CLI would send. `gateway`:
 * --gateway as given (a replica list fails over like every single-request command).
 */
export async function runWhoami(opts: {gateway?: string; token?: string; credentialStore: CredentialStoreChoice}): Promise<WhoamiResult> {
  const {identity: gateway, replicas} = resolveGateways(opts.gateway)
  const cred = await resolveCredential({gateway, replicas, token: opts.token, credentialStore: opts.credentialStore})
  const api = new GatewayApi(gateway, cred.bearer, replicas)
  const id = await api.get<Identity>('/v1/whoami')
  const exp = id.expiresAt ?? cred.expiresAt
  return {
    gateway,
    ...(replicas.length > 1 ? {replica: api.answered} : {}),
    kind: id.kind,
    subject: id.subject,
    name: id.name,
    ...(id.email ? {email: id.email} : {}),
    groups: id.groups ?? [],
    ...(id.issuer ? {issuer: id.issuer} : {}),
    ...(exp ? {expiresAt: new Date(exp * 1000).toISOString()} : {}),
    credential: cred.source,
    ...(id.claims ? {claims: id.claims} : {}),
  }
}

export function formatWhoami(r: WhoamiResult): string[] {
  const lines = [
    `gateway:    ${r.gateway}${r.replica && r.replica !== r.gateway ? ` (answered by replica ${r.replica})` : ''}`,
    `identity:   ${r.name} (${r.kind})`,
    `subject:    ${r.subject}`,
  ]
  if (r.email) lines.push(`email:      ${r.email}`)
  lines.push(`groups:     ${r.groups.length ? r.groups.join(', ') : '(none)'}`)
  if (r.issuer) lines.push(`issuer:     ${r.issuer}`)
  if (r.expiresAt) lines.push(`expires:    ${r.expiresAt}`)
  lines.push(`credential: ${r.credential}`)
  return lines
}

/** Best effort: a missing opener or a headless machine just means the user opens the URL. */
function openBrowser(url: string): void {
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]]
  try {
    const child = spawn(cmd, args as string[], {stdio: 'ignore', detached: true})
    child.on('error', () => {})
    child.unref()
  } catch {
    // ignore: the URL is printed
  }
}

class Spinner {
  private timer?: NodeJS.Timeout
  private frame = 0
  constructor(private readonly io: CliIo) {}
  start(text: string): void {
    if (!this.io.interactive) {
      this.io.say(`${text}…`)
      return
    }
    const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
    this.timer = setInterval(() => {
      process.stderr.write(`\r${frames[this.frame++ % frames.length]} ${text}…`)
    }, 100)
  }
  stop(): void {
    if (this.timer) {
      clearInterval(this.timer)
      this.timer = undefined
      process.stderr.write('\r\x1b[K')
    }
  }
}

