// Assembles a gateway from command-line settings: config, policy (hot-reloaded), data dir, listen
// address, dev-mode safety checks. `hoop gateway` calls this and waits for a signal.
import {createHash} from 'node:crypto'
import {mkdirSync, readFileSync} from 'node:fs'
import {events, lastPolicyVersion, policyVersion} from '../audit/index.js'
import {join} from 'node:path'
import {PolicyHolder, checkAccess} from '../policy/index.js'
import type {ReloadCause} from '../policy/holder.js'
import type {Signal} from '../store/notify.js'
import {type GatewayConfig, DEFAULT_LISTEN, defaultDataDir, loadGatewayConfig, parseGatewayConfig, parseHostPort} from '../shared/config.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import type {AccessGuard} from './access.js'
import type {DevEnvironment} from './dev.js'
import {normaliseUrl} from '../shared/urls.js'
import {heartbeatFromEnv} from './replicas.js'
import {Gateway} from './server.js'
import {loadPgParser} from '../sql/pg-parser.js'

interface GatewaySettings {
  configFile?: string
  listen?: string
  dataDir?: string
  dev: boolean
  /** Allow --dev on a non-loopback address. */
  forceDevBind?: boolean
  logger: Logger
  version?: string
  /** Start on an audit store the gateway cannot vouch for (disaster recovery; audited). */
  acceptStoreRollback?: boolean
  /** The revocation sweep's interval (default: HOOP_REVOCATION_SWEEP_MS, else 2 s). */
  revocationSweepMs?: number
  /** The URL agents reach this replica at (`--replica-url`); default: the gateway's own URL. */
  replicaUrl?: string
}

/**
 * HOOP_REVOCATION_SWEEP_MS: how often the backstop sweep re-reads revocations (100 ms to 1 h). With
 * PostgreSQL's NOTIFY cutting links at once, a site may sweep less often; tests set it long to
 * prove that the notification alone cuts.
 */
function sweepFromEnv(): number | undefined {
  const raw = process.env.HOOP_REVOCATION_SWEEP_MS
  if (raw === undefined || raw === '') return undefined
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 100 || ms > 3_600_000) throw new HoopError('INVALID_INPUT', `HOOP_REVOCATION_SWEEP_MS must be a whole number of milliseconds from 100 to 3600000, not "${raw.slice(0, 20)}"`)
  return ms
}

interface RunningGateway {
  gateway: Gateway
  policy: PolicyHolder
  config: GatewayConfig
  dataDir: string
  /** Dev mode with no configured connections: the demo database, connection and policy. */
  dev?: DevEnvironment
  close(reason?: string): Promise<void>
}

/**
 * A policy reload on one replica reaches the others (docs/ha.md): a reload of this replica's file
 * that changed the version is announced; on hearing another replica's, this one reloads its own
 * file. Each replica enforces what its own file says. When that is not the version announced last,
 * it says so in its log and in /readyz, and keeps serving with its own: its file is what was
 * deployed to it, and one replica's reload must not take the others out of service.
 */
function followOtherReplicas(gateway: Gateway, policy: PolicyHolder, inForce: () => string, logger: Logger): void {
  const signals = gateway.signals
  let announced: {version: string; replica: string} | undefined
  const compare = () => {
    const differs = announced !== undefined && announced.version !== inForce()
    if (differs && !gateway.policyDiffers) {
      logger.warn('this replica enforces another policy than the last one reloaded elsewhere; update its policy file', {enforced: inForce(), announced: announced?.version, replica: announced?.replica})
    } else if (!differs && gateway.policyDiffers) logger.info('this replica enforces the policy last reloaded elsewhere again', {version: inForce()})
    gateway.policyDiffers = differs
  }
  policy.on('reload', (r: {ok: boolean}, cause: ReloadCause) => {
    if (cause === 'watch' && r.ok && announced?.version !== inForce()) {
      announced = {version: inForce(), replica: signals.replica}
      void signals.publish({kind: 'policy', version: inForce()})
    }
    compare()
  })
  signals.on('signal', (signal: Signal, from?: string) => {
    if (signal.kind !== 'policy' || from === signals.replica) return
    announced = {version: signal.version, replica: from ?? 'unknown'}
    // reload() emits 'reload', whose handler above compares the outcome with what was announced.
    if (signal.version !== inForce()) policy.reload('signal')
    else compare()
  })
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

export async function startGateway(s: GatewaySettings): Promise<RunningGateway> {
  const config = s.configFile ? loadGatewayConfig(s.configFile) : parseGatewayConfig('{}', '<defaults>')
  const listen = s.listen ?? config.listen ?? DEFAULT_LISTEN
  const {host} = parseHostPort(listen)
  if (s.dev && !isLoopback(host) && !s.forceDevBind) {
    throw new HoopError(
      'INVALID_INPUT',
      `dev mode serves demo users without passwords and must stay on loopback; refusing to bind ${listen} (use --force-dev-bind to override)`,
    )
  }
  const dataDir = s.dataDir ?? config.dataDir ?? (s.dev ? join(defaultDataDir(), 'dev') : defaultDataDir())
  mkdirSync(dataDir, {recursive: true, mode: 0o700})

  // Dev mode with nothing configured: serve the demo database with its connection and policy.
  let dev: DevEnvironment | undefined
  if (s.dev && config.connections.length === 0) {
    const {startDevEnvironment} = await import('./dev.js')
    dev = await startDevEnvironment({dataDir, logger: s.logger})
    config.connections.push(...dev.connections)
    config.policy ??= dev.policyFile
  }

  let policy: PolicyHolder
  try {
    policy = new PolicyHolder(config)
  } catch (err) {
    await dev?.demoDb.close()
    throw err
  }
  policy.on('reload', (r: {ok: boolean; error?: HoopError}) => {
    if (r.ok) s.logger.info('policy reloaded', {file: policy.watchedFile})
    else s.logger.error('policy reload failed; keeping the last good policy', {error: r.error?.message})
  })
  policy.watch()
  const access: AccessGuard = {check: (identity, conn) => checkAccess(policy.current, identity, conn)}

  let gateway: Gateway
  try {
    await loadPgParser()
    gateway = await Gateway.start({config, listen, dataDir, dev: s.dev, logger: s.logger, access, policy: () => policy.current, version: s.version, acceptStoreRollback: s.acceptStoreRollback, revocationSweepMs: s.revocationSweepMs ?? sweepFromEnv(), heartbeatMs: heartbeatFromEnv(), replicaUrl: s.replicaUrl && normaliseUrl(s.replicaUrl)})
  } catch (err) {
    policy.close()
    await dev?.demoDb.close()
    throw err
  }
  // Every decision records the version of the policy that made it; every change of version is a
  // policy.reload event with the old and the new one (at start: the version last recorded before).
  const source = policy.watchedFile ?? (config.policy ? 'inline' : 'none')
  const fileHash = () => {
    try {
      return policy.watchedFile ? createHash('sha256').update(readFileSync(policy.watchedFile)).digest('hex') : ''
    } catch {
      return '' // the file vanished between the reload and now; the event still records the outcome
    }
  }
  const record = (event: ReturnType<typeof events.policyReload>) =>
    gateway.audit.append(event).catch((err) => s.logger.error('audit append failed', {kind: event.kind, error: errorMessage(err)}))
  let inForce = policyVersion(policy.current)
  record(
    events.policyReload({source, sha256: fileHash(), rules: policy.current.rules.length, ok: true, oldVersion: lastPolicyVersion(gateway.db), newVersion: inForce, trigger: 'start'}),
  )
  policy.on('reload', (r: {ok: boolean; error?: HoopError; policy?: {rules: unknown[]}}) => {
    const old = inForce
    inForce = policyVersion(policy.current)
    const rules = r.ok ? (r.policy?.rules.length ?? 0) : policy.current.rules.length
    record(events.policyReload({source, sha256: fileHash(), rules, ok: r.ok, error: r.error?.message, oldVersion: old, newVersion: inForce, trigger: 'reload'}))
  })
  followOtherReplicas(gateway, policy, () => inForce, s.logger)
  return {
    gateway,
    policy,
    config,
    dataDir,
    dev,
    async close(reason?: string) {
      policy.close()
      await gateway.close(reason)
      await dev?.demoDb.close()
    },
  }
}
