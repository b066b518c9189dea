// Where `hoop login` keeps tokens: the OS keychain (Secret Service, macOS Keychain, Windows
// Credential Manager, through @napi-rs/keyring), or, where no keychain exists (headless Linux, CI),
// a JSON file under the user's config dir: dir 0700, file 0600, replaced atomically (write a temp
// file, fsync, rename) so a crash never leaves half a file. One profile per gateway URL.
import {randomBytes} from 'node:crypto'
import {chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {errorMessage, HoopError} from '../shared/errors.js'

const KEYCHAIN_SERVICE = 'hoop'
export const CREDENTIAL_STORE_CHOICES = ['auto', 'keychain', 'file'] as const
export type CredentialStoreChoice = (typeof CREDENTIAL_STORE_CHOICES)[number]

/** What `hoop login` stores for one gateway. Claims are copied from the access token for display. */
export interface LoginProfile {
  gateway: string
  issuer: string
  clientId: string
  audience?: string
  accessToken: string
  refreshToken?: string
  idToken?: string
  /** Seconds since epoch when the access token expires. */
  expiresAt: number
  subject: string
  email?: string
  name?: string
  groups: string[]
  scope?: string
  /** Seconds since epoch of the login (not of the last refresh). */
  loggedInAt: number
}

export interface CredentialStore {
  readonly kind: 'keychain' | 'file'
  /** Human-readable location, for the one-line notice. */
  readonly location: string
  /** Why `auto` chose this store, when it fell back. */
  readonly reason?: string
  get(gateway: string): Promise<LoginProfile | undefined>
  put(profile: LoginProfile): Promise<void>
  delete(gateway: string): Promise<boolean>
  list(): Promise<LoginProfile[]>
}

/**
 * Several people (or roles) on one machine: HOOP_PROFILE names a profile, so `HOOP_PROFILE=approver
 * hoop login` and a plain `hoop login` against the same gateway keep separate tokens.
 */
function profileKey(gateway: string, env: NodeJS.ProcessEnv = process.env): string {
  const name = env.HOOP_PROFILE?.trim()
  return name ? `${gateway}#${name}` : gateway
}

function configDir(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config')
  return join(base, 'hoop')
}

function parseProfile(text: string | null | undefined): LoginProfile | undefined {
  if (!text) return undefined
  try {
    const p = JSON.parse(text) as LoginProfile
    return typeof p.accessToken === 'string' && typeof p.gateway === 'string' ? p : undefined
  } catch {
    return undefined
  }
}

interface CredentialFile {
  version: 1
  profiles: Record<string, LoginProfile>
}

/** The file fallback. Safe against crashes (atomic rename); last writer wins between processes. */
export class FileCredentialStore implements CredentialStore {
  readonly kind = 'file' as const
  readonly file: string

  constructor(
    readonly dir = configDir(),
    readonly reason?: string,
  ) {
    this.file = join(dir, 'credentials.json')
  }

  get location(): string {
    return this.file
  }

  private read(): CredentialFile {
    let text: string
    try {
      text = readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {version: 1, profiles: {}}
      throw new HoopError('NOT_LOGGED_IN', `cannot read credential file ${this.file}: ${(err as NodeJS.ErrnoException).code}`)
    }
    try {
      const data = JSON.parse(text) as CredentialFile
      if (data && typeof data.profiles === 'object' && data.profiles !== null) return {version: 1, profiles: data.profiles}
    } catch {
      // fall through
    }
    throw new HoopError('NOT_LOGGED_IN', `credential file ${this.file} is not valid; delete it and run \`hoop login\``)
  }

  private write(data: CredentialFile): void {
    mkdirSync(this.dir, {recursive: true, mode: 0o700})
    // mkdir's mode only applies to a new dir; tighten an existing one too.
    if ((statSync(this.dir).mode & 0o077) !== 0) chmodSync(this.dir, 0o700)
    const tmp = join(this.dir, `.credentials.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
    const fd = openSync(tmp, 'wx', 0o600)
    try {
      writeSync(fd, JSON.stringify(data, null, 2) + '\n')
      fsyncSync(fd)
    } catch (err) {
      closeSync(fd)
      rmSync(tmp, {force: true})
      throw err
    }
    closeSync(fd)
    renameSync(tmp, this.file)
    try {
      const dfd = openSync(this.dir, 'r')
      fsyncSync(dfd)
      closeSync(dfd)
    } catch {
      // some filesystems cannot fsync a directory; the rename is still atomic
    }
  }

  async get(gateway: string): Promise<LoginProfile | undefined> {
    return this.read().profiles[profileKey(gateway)]
  }

  async put(profile: LoginProfile): Promise<void> {
    const data = this.read()
    data.profiles[profileKey(profile.gateway)] = profile
    this.write(data)
  }

  async delete(gateway: string): Promise<boolean> {
    const data = this.read()
    const key = profileKey(gateway)
    if (!data.profiles[key]) return false
    delete data.profiles[key]
    this.write(data)
    return true
  }

  async list(): Promise<LoginProfile[]> {
    return Object.values(this.read().profiles)
  }
}

type KeyringModule = typeof import('@napi-rs/keyring')

/** The OS keychain: one entry per gateway URL under service "hoop". */
class KeychainCredentialStore implements CredentialStore {
  readonly kind = 'keychain' as const
  readonly location = `OS keychain (service "${KEYCHAIN_SERVICE}")`

  private constructor(private readonly keyring: KeyringModule) {}

  /** Loads the binding and proves the keychain answers; throws with the reason otherwise. */
  static async open(): Promise<KeychainCredentialStore> {
    let keyring: KeyringModule
    try {
      keyring = await import('@napi-rs/keyring')
    } catch (err) {
      throw new Error(`keychain binding unavailable (${errorMessage(err).split('\n')[0]})`)
    }
    try {
      // Listing talks to the keychain service and fails without one (a plain read of a missing
      // entry answers null even when no Secret Service is reachable, so it proves nothing).
      keyring.findCredentials(KEYCHAIN_SERVICE)
    } catch (err) {
      throw new Error(`no OS keychain available (${errorMessage(err).split('\n')[0]})`)
    }
    return new KeychainCredentialStore(keyring)
  }

  private entry(gateway: string) {
    return new this.keyring.Entry(KEYCHAIN_SERVICE, profileKey(gateway))
  }

  async get(gateway: string): Promise<LoginProfile | undefined> {
    return parseProfile(this.entry(gateway).getPassword())
  }

  async put(profile: LoginProfile): Promise<void> {
    this.entry(profile.gateway).setPassword(JSON.stringify(profile))
  }

  async delete(gateway: string): Promise<boolean> {
    try {
      return this.entry(gateway).deletePassword()
    } catch {
      return false
    }
  }

  async list(): Promise<LoginProfile[]> {
    return this.keyring
      .findCredentials(KEYCHAIN_SERVICE)
      .map((c) => parseProfile(c.password))
      .filter((p): p is LoginProfile => p !== undefined)
  }
}

/** `auto` writes to the keychain when there is one, and reads from both so a profile stored with --credential-store file is still found. */
class AutoCredentialStore implements CredentialStore {
  readonly kind = 'keychain' as const
  constructor(
    private readonly primary: KeychainCredentialStore,
    private readonly file: FileCredentialStore,
  ) {}
  get location(): string {
    return this.primary.location
  }
  async get(gateway: string) {
    return (await this.primary.get(gateway)) ?? (await this.file.get(gateway))
  }
  async put(profile: LoginProfile) {
    await this.primary.put(profile)
    await this.file.delete(profile.gateway).catch(() => false)
  }
  async delete(gateway: string) {
    const a = await this.primary.delete(gateway)
    const b = await this.file.delete(gateway).catch(() => false)
    return a || b
  }
  async list() {
    const seen = new Map<string, LoginProfile>()
    for (const p of [...(await this.file.list().catch(() => [])), ...(await this.primary.list())]) seen.set(p.gateway, p)
    return [...seen.values()]
  }
}

export function parseStoreChoice(value: string | undefined): CredentialStoreChoice {
  const v = value || process.env.HOOP_CREDENTIAL_STORE || 'auto'
  if (!(CREDENTIAL_STORE_CHOICES as readonly string[]).includes(v)) {
    throw new HoopError('INVALID_INPUT', `credential store must be one of ${CREDENTIAL_STORE_CHOICES.join(', ')}, got "${v}"`)
  }
  return v as CredentialStoreChoice
}

export async function openCredentialStore(choice: CredentialStoreChoice = parseStoreChoice(undefined), dir = configDir()): Promise<CredentialStore> {
  if (choice === 'file') return new FileCredentialStore(dir)
  try {
    const keychain = await KeychainCredentialStore.open()
    return choice === 'keychain' ? keychain : new AutoCredentialStore(keychain, new FileCredentialStore(dir))
  } catch (err) {
    if (choice === 'keychain') throw new HoopError('INVALID_INPUT', `--credential-store keychain: ${errorMessage(err)}`)
    return new FileCredentialStore(dir, errorMessage(err))
  }
}

/** The one-line notice naming the store in use. */
export function storeNotice(store: CredentialStore): string {
  if (store.kind === 'file') {
    return `Credentials are stored in ${store.location} (file, mode 0600)${store.reason ? `: ${store.reason}` : ''}.`
  }
  return `Credentials are stored in the ${store.location}.`
}

/** Non-secret CLI state (the last gateway logged in to), next to the credential file. */
export function readLastGateway(dir = configDir()): string | undefined {
  try {
    const v = (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {lastGateway?: unknown}).lastGateway
    return typeof v === 'string' ? v : undefined
  } catch {
    return undefined
  }
}

export function writeLastGateway(gateway: string | undefined, dir = configDir()): void {
  mkdirSync(dir, {recursive: true, mode: 0o700})
  const tmp = join(dir, `.state.${process.pid}.tmp`)
  const fd = openSync(tmp, 'w', 0o600)
  writeSync(fd, JSON.stringify({lastGateway: gateway}) + '\n')
  closeSync(fd)
  renameSync(tmp, join(dir, 'state.json'))
}
