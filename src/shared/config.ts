// The gateway's YAML config: where it listens, its data dir, and the connections it serves.
// Target credentials are references (an env var name or a file path), never inline values.
// Sections owned by other parts (auth, policy, audit, notifications) are passed through for them to validate.
import {readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, isAbsolute, join, resolve} from 'node:path'
import {errorMessage, HoopError} from './errors.js'
import {configError, type PathSegment, type SourceProblem, YamlSource} from './yaml-source.js'

const CONNECTION_TYPES = ['postgres', 'mysql', 'http', 'tcp'] as const
export type ConnectionType = (typeof CONNECTION_TYPES)[number]

export const DEFAULT_LOCAL_PORTS: Record<ConnectionType, number> = {postgres: 5433, mysql: 3307, http: 8081, tcp: 8999}
export const DEFAULT_LISTEN = '127.0.0.1:8009'
export const EMBEDDED_AGENT = 'embedded'

/** A reference to a secret: read when needed, never stored in config or logs. */
export type SecretRef = {env: string} | {file: string}

interface TlsSettings {
  mode: 'disable' | 'require' | 'verify-full'
  ca?: SecretRef
  serverName?: string
}

export interface ConnectionConfig {
  name: string
  type: ConnectionType
  host: string
  port: number
  /** Agent name, or "embedded" for the gateway's own agent. */
  agent: string
  description?: string
  /** Database name to open on the target (postgres, mysql). */
  database?: string
  username?: string
  password?: SecretRef
  /** For http: a bearer token or basic-auth password injected upstream. */
  token?: SecretRef
  /** For http: how `token` is sent upstream (default bearer; basic uses `username`). */
  httpAuth?: 'bearer' | 'basic'
  /** For http: pass the caller's own Authorization header upstream (default false). */
  forwardAuthorization?: boolean
  /** For http: extra headers replaced by "[redacted]" in recordings. */
  redactHeaders?: string[]
  tls: TlsSettings
}

/** Where agents, service accounts and sessions live (docs/ha.md): the data dir's SQLite file, or PostgreSQL. */
export type StoreConfig = {kind: 'sqlite'} | {kind: 'postgres'; url: SecretRef; poolSize?: number}

export interface GatewayConfig {
  file?: string
  listen?: string
  dataDir?: string
  connections: ConnectionConfig[]
  store: StoreConfig
  /** `/metrics` answers a bearer of this token; without one, loopback callers only (docs/ha.md). */
  metrics: {token?: SecretRef}
  /** Raw sections validated by their owners (identity, policy, audit). */
  auth?: unknown
  policy?: unknown
  audit?: unknown
  /** Approval notifications by webhook (src/notify/config.ts). */
  notifications?: unknown
  dev?: unknown
  /** Where the config came from, for line-numbered errors in sections validated later. */
  source?: YamlSource
}

export function defaultDataDir(): string {
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share')
  return join(base, 'hoop')
}

export function parseHostPort(value: string, defaultHost = '127.0.0.1'): {host: string; port: number} {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim())
  if (!m) throw new HoopError('INVALID_INPUT', `expected host:port, got "${value}"`)
  const port = Number(m[3])
  if (port > 65535) throw new HoopError('INVALID_INPUT', `port ${port} is out of range`)
  return {host: m[1] ?? (m[2] || defaultHost), port}
}

export function loadGatewayConfig(file: string): GatewayConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new HoopError('CONFIG_INVALID', `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`)
  }
  return parseGatewayConfig(text, file)
}

export function parseGatewayConfig(text: string, file = '<config>'): GatewayConfig {
  const src = YamlSource.parse(text, file)
  const raw = src.toJS() ?? {}
  const problems: SourceProblem[] = []
  const fail = (path: PathSegment[], msg: string) => problems.push(src.problem(path, msg))
  if (!isObject(raw)) throw configError([src.problem([], 'config must be a mapping')])

  const known = new Set(['listen', 'dataDir', 'connections', 'store', 'metrics', 'auth', 'policy', 'audit', 'notifications', 'dev'])
  for (const key of Object.keys(raw)) if (!known.has(key)) fail([key], `unknown key "${key}"`)

  const baseDir = file.startsWith('<') ? process.cwd() : dirname(resolve(file))
  const cfg: GatewayConfig = {file, connections: [], store: {kind: 'sqlite'}, metrics: {}, auth: raw.auth, policy: raw.policy, audit: raw.audit, notifications: raw.notifications, dev: raw.dev, source: src}
  if (raw.listen !== undefined) {
    if (typeof raw.listen !== 'string') fail(['listen'], 'listen must be "host:port"')
    else cfg.listen = raw.listen
  }
  if (raw.dataDir !== undefined) {
    if (typeof raw.dataDir !== 'string') fail(['dataDir'], 'dataDir must be a path')
    else cfg.dataDir = isAbsolute(raw.dataDir) ? raw.dataDir : resolve(baseDir, raw.dataDir)
  }

  if (raw.store !== undefined) cfg.store = parseStore(raw.store, fail, baseDir) ?? cfg.store
  if (raw.metrics !== undefined) cfg.metrics = parseMetrics(raw.metrics, fail, baseDir)

  const conns = raw.connections ?? []
  if (!Array.isArray(conns)) fail(['connections'], 'connections must be a list')
  else {
    const seen = new Set<string>()
    conns.forEach((c, i) => {
      const conn = parseConnection(c, ['connections', i], fail, baseDir)
      if (!conn) return
      if (seen.has(conn.name)) fail(['connections', i, 'name'], `duplicate connection name "${conn.name}"`)
      seen.add(conn.name)
      cfg.connections.push(conn)
    })
  }
  if (problems.length > 0) throw configError(problems)
  return cfg
}

const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/

const STORE_SHAPE = 'store must be {sqlite: {}} or {postgres: {url: {env: VAR} | {file: PATH}, poolSize?: N}}'

function parseStore(v: unknown, fail: (path: PathSegment[], msg: string) => void, baseDir: string): StoreConfig | undefined {
  if (!isObject(v) || Object.keys(v).length !== 1) {
    fail(['store'], STORE_SHAPE)
    return undefined
  }
  if ('sqlite' in v) {
    if (v.sqlite !== null && !(isObject(v.sqlite) && Object.keys(v.sqlite).length === 0)) fail(['store', 'sqlite'], 'store.sqlite takes no settings (the file is hoop.db in the data dir)')
    return {kind: 'sqlite'}
  }
  const pgs = v.postgres
  if (!isObject(pgs)) {
    fail(['store'], STORE_SHAPE)
    return undefined
  }
  for (const key of Object.keys(pgs)) if (key !== 'url' && key !== 'poolSize') fail(['store', 'postgres', key], `unknown key "${key}" in store.postgres`)
  // The URL holds the database password: a reference like every other secret, never inline.
  const url = parseSecretRef(pgs.url, baseDir)
  if (!url) fail(['store', 'postgres', 'url'], 'store.postgres.url must be a reference, {env: VAR} or {file: PATH}; the URL holds a password and is never written inline')
  const poolSize = pgs.poolSize
  if (poolSize !== undefined && !(Number.isInteger(poolSize) && (poolSize as number) >= 1 && (poolSize as number) <= 100)) {
    fail(['store', 'postgres', 'poolSize'], 'store.postgres.poolSize must be a whole number from 1 to 100')
  }
  return url ? {kind: 'postgres', url, poolSize: poolSize as number | undefined} : undefined
}

function parseMetrics(v: unknown, fail: (path: PathSegment[], msg: string) => void, baseDir: string): GatewayConfig['metrics'] {
  if (!isObject(v) || Object.keys(v).some((k) => k !== 'token')) {
    fail(['metrics'], 'metrics must be {token?: {env: VAR} | {file: PATH}}')
    return {}
  }
  if (v.token === undefined) return {}
  const token = parseSecretRef(v.token, baseDir)
  if (!token) fail(['metrics', 'token'], 'metrics.token must be a reference, {env: VAR} or {file: PATH}')
  return token ? {token} : {}
}

function parseConnection(
  c: unknown,
  at: PathSegment[],
  fail: (path: PathSegment[], msg: string) => void,
  baseDir: string,
): ConnectionConfig | undefined {
  if (!isObject(c)) {
    fail(at, 'each connection must be a mapping')
    return undefined
  }
  const known = new Set(['name', 'type', 'target', 'agent', 'description', 'database', 'username', 'password', 'token', 'tls', 'httpAuth', 'forwardAuthorization', 'redactHeaders'])
  for (const key of Object.keys(c)) if (!known.has(key)) fail([...at, key], `unknown key "${key}" in connection`)
  let ok = true
  const bad = (key: string, msg: string) => {
    fail([...at, key], msg)
    ok = false
  }
  if (typeof c.name !== 'string' || !NAME_RE.test(c.name)) bad('name', 'name must be lower-case letters, digits, "-", "_" or "." (max 63)')
  if (typeof c.type !== 'string' || !(CONNECTION_TYPES as readonly string[]).includes(c.type)) {
    bad('type', `type must be one of ${CONNECTION_TYPES.join(', ')}`)
  }
  let host = ''
  let port = 0
  if (typeof c.target !== 'string') bad('target', 'target must be "host:port"')
  else {
    try {
      ;({host, port} = parseHostPort(c.target))
      if (port === 0) bad('target', 'target port must not be 0')
    } catch (err) {
      bad('target', errorMessage(err))
    }
  }
  const agent = c.agent ?? EMBEDDED_AGENT
  if (typeof agent !== 'string' || !NAME_RE.test(agent)) bad('agent', 'agent must be an agent name or "embedded"')
  for (const key of ['description', 'database', 'username'] as const) {
    if (c[key] !== undefined && typeof c[key] !== 'string') bad(key, `${key} must be a string`)
  }
  const secret = (key: string): SecretRef | undefined => {
    const v = c[key]
    if (v === undefined) return undefined
    const ref = parseSecretRef(v, baseDir)
    if (!ref) {
      bad(key, `${key} must be a reference, {env: VAR} or {file: PATH}; secrets are never written inline in the config`)
    }
    return ref
  }
  if (c.httpAuth !== undefined && c.httpAuth !== 'bearer' && c.httpAuth !== 'basic') bad('httpAuth', 'httpAuth must be bearer or basic')
  if (c.forwardAuthorization !== undefined && typeof c.forwardAuthorization !== 'boolean') bad('forwardAuthorization', 'forwardAuthorization must be true or false')
  if (c.redactHeaders !== undefined && (!Array.isArray(c.redactHeaders) || !c.redactHeaders.every((h) => typeof h === 'string' && /^[A-Za-z0-9-]+$/.test(h)))) {
    bad('redactHeaders', 'redactHeaders must be a list of header names')
  }
  if ((c.httpAuth !== undefined || c.forwardAuthorization !== undefined || c.redactHeaders !== undefined) && c.type !== 'http') {
    bad('type', 'httpAuth, forwardAuthorization and redactHeaders apply to http connections only')
  }
  const password = secret('password')
  const token = secret('token')
  let tls: TlsSettings = {mode: 'disable'}
  if (c.tls !== undefined) {
    if (!isObject(c.tls) || !['disable', 'require', 'verify-full'].includes(String(c.tls.mode))) {
      bad('tls', 'tls must be {mode: disable | require | verify-full, ca?: {file: PATH}, serverName?: NAME}')
    } else {
      tls = {mode: c.tls.mode as TlsSettings['mode']}
      if (c.tls.ca !== undefined) {
        const ca = parseSecretRef(c.tls.ca, baseDir)
        if (ca) tls.ca = ca
        else bad('tls', 'tls.ca must be {file: PATH} or {env: VAR}')
      }
      if (typeof c.tls.serverName === 'string') tls.serverName = c.tls.serverName
    }
  }
  if (!ok) return undefined
  return {
    name: c.name as string,
    type: c.type as ConnectionType,
    host,
    port,
    agent: agent as string,
    description: c.description as string | undefined,
    database: c.database as string | undefined,
    username: c.username as string | undefined,
    password,
    token,
    httpAuth: c.httpAuth as ConnectionConfig['httpAuth'],
    forwardAuthorization: c.forwardAuthorization as boolean | undefined,
    redactHeaders: c.redactHeaders as string[] | undefined,
    tls,
  }
}

/** A `{env: VAR}` or `{file: PATH}` mapping (a relative path against the config file), else undefined. */
export function parseSecretRef(v: unknown, baseDir: string): SecretRef | undefined {
  if (!isObject(v)) return undefined
  const keys = Object.keys(v)
  if (keys.length !== 1) return undefined
  if (typeof v.env === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(v.env)) return {env: v.env}
  if (typeof v.file === 'string' && v.file.length > 0) return {file: isAbsolute(v.file) ? v.file : resolve(baseDir, v.file)}
  return undefined
}

/** Reads a referenced secret. The error names the reference, never a value. */
export function readSecret(ref: SecretRef): string {
  if ('env' in ref) {
    const v = process.env[ref.env]
    if (v === undefined) throw new HoopError('CONFIG_INVALID', `secret environment variable ${ref.env} is not set`)
    return v
  }
  try {
    return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    throw new HoopError('CONFIG_INVALID', `cannot read secret file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
