// What `hoop login`, `hoop logout` and `hoop whoami` do. Human output goes to stderr through
// `say`, so `--json` keeps stdout for the result; the commands only parse flags and call these.
import {spawn} from 'node:child_process'
import {GatewayApi} from './api.js'
import {resolveCredential, type BearerSource} from './credentials.js'
import type {Identity} from '../identity/types.js'
import {deviceLogin, fetchGatewaySettings, revokeProfile, type DevicePrompt} from '../identity/oidc-client.js'
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
  opts: {gateway: string; browser: boolean; credentialStore: CredentialStoreChoice; signal?: AbortSignal},
  io: CliIo = stderrIo,
): Promise<LoginResult> {
  const store = await openCredentialStore(opts.credentialStore)
  io.say(storeNotice(store))
  const settings = await fetchGatewaySettings(opts.gateway)
  const spinner = new Spinner(io)
  let profile
  try {
    profile = await deviceLogin({
      gateway: opts.gateway,
      settings,
      signal: opts.signal,
      onPrompt: (p: DevicePrompt) => {
        const url = p.verificationUriComplete ?? p.verificationUri
        io.say(`To sign in to ${opts.gateway}, open ${url}`)
        io.say(`and check that it shows the code ${p.userCode} (valid for ${Math.round(p.expiresIn / 60)} min).`)
        if (settings.dev) io.say('This gateway runs in dev mode: pick one of the demo users.')
        if (opts.browser) openBrowser(url)
        spinner.start('Waiting for you to confirm in the browser')
      },
    })
  } finally {
    spinner.stop()
  }
  await store.put(profile)
  writeLastGateway(opts.gateway)
  io.say(`Logged in to ${opts.gateway} as ${profile.email ?? profile.subject}${profile.groups.length ? ` (groups: ${profile.groups.join(', ')})` : ''}.`)
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
    io.say(`Not logged in to ${opts.gateway}; nothing to do.`)
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
  claims?: Record<string, string>
}

/** Asks the gateway which identity it verified for the credential this CLI would send. */
export async function runWhoami(opts: {gateway: string; token?: string; credentialStore: CredentialStoreChoice}): Promise<WhoamiResult> {
  const cred = await resolveCredential({gateway: opts.gateway, token: opts.token, credentialStore: opts.credentialStore})
  const id = await new GatewayApi(opts.gateway, cred.bearer).get<Identity>('/v1/whoami')
  const exp = id.expiresAt ?? cred.expiresAt
  return {
    gateway: opts.gateway,
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
    `gateway:    ${r.gateway}`,
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

