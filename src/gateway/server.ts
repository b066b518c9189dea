// The gateway: one HTTP + WebSocket port. Agents dial /v1/agent, clients dial /v1/connect; both
// present a bearer token in the Authorization header (never in the URL, so never in logs).
// Shutdown stops accepting, tells every peer why (GOAWAY) and closes every stream.
import type Database from 'better-sqlite3'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {Socket} from 'node:net'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {WebSocketServer, type WebSocket} from 'ws'
import {ApprovalService, approvalAuditEvents, approvalResolver, approvalStoreFor} from '../approvals/index.js'
import {AuditLog, type AuditWriter, events, flushRecordings, PgAuditLog, WITNESS_FILE} from '../audit/index.js'
import {flushPgRecordings} from '../audit/pg-recordings.js'
import {markAuditStore} from '../audit/schema.js'
import {createConsole, type Console} from '../console/handler.js'
import {consoleStoreFor} from '../console/store-for.js'
import type {AuditMode} from '../engines/gate.js'
import {Notifier, parseNotifySettings} from '../notify/index.js'
import type {Policy} from '../policy/index.js'
import {createIdentityRuntime, type IdentityRuntime} from '../identity/runtime.js'
import {authenticateServiceKey} from '../identity/service-keys.js'
import type {Identity} from '../identity/types.js'
import {MAX_FRAME_SIZE} from '../relay/frame.js'
import {Mux} from '../relay/mux.js'
import {type GatewayConfig, parseHostPort, readSecret, type StoreConfig} from '../shared/config.js'
import {type ErrorCode, HoopError, asHoopError, errorMessage} from '../shared/errors.js'
import {bearerFrom, sendError} from '../shared/http.js'
import type {Logger} from '../shared/log.js'
import {RELAY_PATHS} from '../shared/routes.js'
import {openSignals, type Signal, type Signals} from '../store/notify.js'
import {PostgresStore} from '../store/postgres.js'
import {SqliteStore} from '../store/sqlite.js'
import type {Store} from '../store/types.js'
import type {AccessGuard} from './access.js'
import {AgentRegistry} from './agents.js'
import {AuthFailureAudit} from './auth-failures.js'
import {handleApi, routeApi, type ApiContext} from './api.js'
import {parseAuditSettings} from './audit-config.js'
import {GatewayMetrics} from './metrics.js'
import {handleOps} from './ops.js'
import {liveReplicaUrls, ReplicaHeartbeat, unroutable} from './replicas.js'
import {closeUnendedSessions, serveClientStream, type SessionContext} from './sessions.js'

interface GatewayOptions {
  config: GatewayConfig
  listen: string
  dataDir: string
  dev: boolean
  logger: Logger
  access: AccessGuard
  policy: () => Policy
  /** Per-session recording cap in bytes (default 10 MiB). */
  recordingCap?: number
  /** When statements' records must be durable (default: the config's `audit.mode`, else hold). */
  auditMode?: AuditMode
  /** Overrides the URL clients should use (default: http://<listen>). */
  publicUrl?: string
  version?: string
  /** Start on an audit store the gateway cannot vouch for (disaster recovery); recorded as an audit event. */
  acceptStoreRollback?: boolean
  /** How often live links are checked against the store's revocations (default 2 s; the backstop to NOTIFY). */
  revocationSweepMs?: number
  /** How often this replica beats its row on the PostgreSQL store (default 5 s; replicas.ts). */
  heartbeatMs?: number
  /** The URL agents reach this replica at, in the store's `replicas` row (default: the gateway's URL). */
  replicaUrl?: string
}

/** The operator's --accept-store-rollback, as an audit event, and a head published right after it. */
async function recordAcceptedStore(audit: AuditWriter, a: NonNullable<AuditWriter['accepted']>): Promise<void> {
  let operator = 'unknown'
  try {
    operator = userInfo().username
  } catch {
    // no passwd entry (a container's arbitrary uid): the event still says what was accepted
  }
  await audit.append(
    events.storeAccepted({
      operator,
      problem: a.kind,
      reason: a.message,
      witness: a.witness,
      head: a.head && {tree_size: a.head.tree_size, root_hash: a.head.root_hash, timestamp: a.head.timestamp},
      storeSize: audit.size,
      storeRoot: audit.rootHash,
    }),
  )
  // The witness's last line is now this store's head: the next start vouches for it.
  await audit.signHead()
}

/**
 * The configured store: the data dir's SQLite file (the default), or PostgreSQL, migrated and
 * reachable, or a STORE_UNAVAILABLE error naming the URL with its password redacted.
 */
async function openStore(config: StoreConfig, local: SqliteStore, logger: Logger): Promise<Store> {
  if (config.kind === 'sqlite') return local
  return PostgresStore.open({url: readSecret(config.url), poolSize: config.poolSize, logger: logger.child({component: 'store'})})
}

/**
 * The audit writer for the store: the data dir's SQLite file (the default, as before), or the one
 * log every replica shares on PostgreSQL (pg-log.ts). Either way, a store behind, forked from or
 * replacing what this gateway published is refused.
 */
async function openAudit(store: Store, local: SqliteStore, opts: GatewayOptions, settings: ReturnType<typeof parseAuditSettings>): Promise<AuditWriter> {
  const logger = opts.logger.child({component: 'audit'})
  const witness = settings.witness ?? join(opts.dataDir, WITNESS_FILE)
  if (store instanceof PostgresStore) {
    const log = await PgAuditLog.open({
      store,
      dataDir: opts.dataDir,
      signingKeyFile: settings.signingKeyFile,
      checkpointEvery: settings.checkpointEvery,
      // Every replica is configured alike; one at a time drives each sink and retention (pg-locks.ts).
      anchors: {witness, timestamp: settings.timestamp},
      sinks: settings.sinks,
      retention: settings.retention,
      vouch: {acceptRollback: opts.acceptStoreRollback},
      logger,
    })
    // Offline commands on this data dir (`--data-dir`) would find an empty log: they say where it is.
    markAuditStore(local.db, 'postgres')
    return log
  }
  markAuditStore(local.db, 'sqlite')
  return AuditLog.open({
    db: local.db,
    dataDir: opts.dataDir,
    signingKeyFile: settings.signingKeyFile,
    checkpointEvery: settings.checkpointEvery,
    retention: settings.retention,
    durability: settings.durability,
    sinks: settings.sinks,
    anchors: {witness, timestamp: settings.timestamp},
    // A store behind, forked from or replacing what the gateway published is refused; while
    // it runs, a database file swapped or cut short fails every statement closed.
    vouch: {acceptRollback: opts.acceptStoreRollback},
    guardStore: true,
    absorbPending: true,
    logger,
  })
}


/** How long a stopping gateway gives queued notifications (docs/notifications.md). */
const NOTIFY_DRAIN_MS = 2000

/** How often live links are checked against revocations made elsewhere (the backstop to NOTIFY). */
export const REVOCATION_SWEEP_MS = 2000

export class Gateway {
  private closing = false
  /** This replica's policy file gives another version than the last reload on another replica (main.ts). */
  policyDiffers = false
  private readonly clientLinks = new Map<Mux, Identity>()
  private sweeper?: NodeJS.Timeout
  private sweeping = false
  /** This replica's row in the store's `replicas` table (PostgreSQL only). */
  private heartbeat?: ReplicaHeartbeat
  private signingKeyFile?: string
  private metricsToken?: string
  private notifier?: Notifier
  /** The web console at /console/ (src/console): its calls go through routeApi like the API's. */
  private readonly console: Console
  /** Bad tokens and access denials: the first per source and interval on its own, the rest counted. */
  readonly authFailures: AuthFailureAudit

  private constructor(
    private readonly opts: GatewayOptions,
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly store: Store,
    /** The data dir's SQLite file: the audit log and recordings (and the store when it is SQLite). */
    private readonly local: SqliteStore,
    readonly audit: AuditWriter,
    readonly approvals: ApprovalService,
    readonly agents: AgentRegistry,
    readonly identity: IdentityRuntime,
    readonly url: string,
    readonly metrics: GatewayMetrics,
    /** What this replica hears from and tells the other replicas (no-op on SQLite). */
    readonly signals: Signals,
  ) {
    this.authFailures = new AuthFailureAudit(audit, opts.logger.child({component: 'audit'}))
    this.console = createConsole({
      publicUrl: url,
      oidc: identity.auth?.oidc,
      authenticator: identity.authenticator,
      api: (who, req, res) => routeApi(this.apiContext(), who, req, res),
      // Console logins live with the store too: on PostgreSQL, any replica serves any browser.
      store: consoleStoreFor(store),
      logger: opts.logger,
    })
  }

  /** The local SQLite handle the audit log and recordings use (docs/ha.md: they move next). */
  get db(): Database.Database {
    return this.local.db
  }

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const {host, port} = parseHostPort(opts.listen)
    const local = new SqliteStore(opts.dataDir)
    let store: Store
    try {
      store = await openStore(opts.config.store, local, opts.logger)
    } catch (err) {
      await local.close()
      throw err
    }
    const closeStores = async () => {
      if (store !== local) await store.close()
      await local.close()
    }
    const server = createServer()
    server.keepAliveTimeout = 5000
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new HoopError('INVALID_INPUT', `cannot listen on ${opts.listen}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`)),
      )
      server.listen(port, host, () => resolve())
    }).catch(async (err) => {
      await closeStores()
      throw err
    })
    const addr = server.address()
    const actualPort = typeof addr === 'object' && addr ? addr.port : port
    const url = opts.publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`
    let identity: IdentityRuntime
    try {
      identity = await createIdentityRuntime({config: opts.config, store, logger: opts.logger, publicUrl: url, dev: opts.dev, dataDir: opts.dataDir})
    } catch (err) {
      server.close()
      await closeStores()
      throw err
    }
    const agents = new AgentRegistry(opts.logger)
    const metrics = new GatewayMetrics(() => agents.linkCount())
    let audit: AuditWriter
    let signingKeyFile: string | undefined
    let metricsToken: string | undefined
    let notifier: Notifier
    let heartbeat: ReplicaHeartbeat | undefined
    const late: {gw?: Gateway} = {} // made below, once the audit log and the replica row exist
    // Taken for dead by another replica (replicas.ts): the sessions it ended must not go on here.
    const fenced = async (): Promise<void> => late.gw?.endClientLinks('AUDIT_UNAVAILABLE', 'this gateway replica was taken for dead by another (it stalled) and your session was ended; connect again')
    try {
      // Read now: a token that cannot be read stops the start rather than every scrape.
      metricsToken = opts.config.metrics.token && readSecret(opts.config.metrics.token)
      const settings = parseAuditSettings(opts.config)
      // Webhooks hear about approval requests and decisions, off the data path (src/notify/).
      notifier = new Notifier(parseNotifySettings(opts.config), {
        // Console links go where browsers open the console: behind a TLS proxy, its consoleUrl.
        publicUrl: identity.auth?.oidc?.consoleUrl ?? url,
        logger: opts.logger.child({component: 'notify'}),
        version: opts.version,
        onOutcome: (webhook, outcome) => metrics.notifications.inc({webhook, outcome}),
      })
      audit = await openAudit(store, local, opts, settings)
      if (audit.accepted) await recordAcceptedStore(audit, audit.accepted)
      // On PostgreSQL this replica registers first: if another is ending its sessions as dead
      // right now, registering waits for that one to finish (replicas.ts).
      if (audit instanceof PgAuditLog && store instanceof PostgresStore) {
        const log = audit
        heartbeat = await ReplicaHeartbeat.register({
          store,
          id: audit.fingerprint(),
          url: opts.replicaUrl ?? url,
          intervalMs: opts.heartbeatMs,
          logger: opts.logger.child({component: 'replicas'}),
          endSessionsOf: (id) => closeUnendedSessions(store, local.db, log, opts.logger.child({component: 'audit'}), id),
          onFenced: () => fenced(),
          onRegistered: (epoch) => log.setFence({replica: log.fingerprint(), epoch, onFenced: () => void heartbeat?.refence()}),
        })
      }
      if (heartbeat && unroutable(opts.replicaUrl ?? url)) opts.logger.warn('this replica listens on every interface and has no --replica-url: agents cannot discover it through GET /v1/replicas', {url})
      // Sessions cut by a crash get their end now, before new ones start.
      await closeUnendedSessions(store, local.db, audit, opts.logger.child({component: 'audit'}))
      opts.recordingCap ??= settings.recordingCap
      opts.auditMode ??= settings.mode
      signingKeyFile = settings.signingKeyFile
    } catch (err) {
      server.close()
      await heartbeat?.stop()
      await identity.close()
      await closeStores()
      throw err
    }
    // The other replicas' revocations, decisions and policy reloads, as they happen (notify.ts).
    // A listener that cannot connect now keeps retrying in the background: the sweep covers it.
    const signals = await openSignals(store instanceof PostgresStore ? store.listenOptions(opts.logger.child({component: 'signals'})) : undefined)
    // Every approval state change is an audit event (requested, approved, rejected, expired), and a
    // notification for the webhooks that subscribed to it (queued; never awaited here).
    // Approvals live with the store: on PostgreSQL, every replica sees (and spends) the same ones.
    const approvals = new ApprovalService(approvalStoreFor(store), {
      onEvent: (kind, rec, decision, use) => {
        for (const e of approvalAuditEvents(kind, rec, decision, use)) audit.append(e).catch((err) => opts.logger.error('audit append failed', {kind: e.kind, error: errorMessage(err)}))
        notifier.notify(kind, rec, decision, use)
      },
      announce: (id) => void signals.publish({kind: 'approval', id}),
    })
    const wss = new WebSocketServer({noServer: true, maxPayload: MAX_FRAME_SIZE, perMessageDeflate: false, clientTracking: false})
    const gw = new Gateway(opts, server, wss, store, local, audit, approvals, agents, identity, url, metrics, signals)
    late.gw = gw
    signals.on('signal', (signal: Signal, from?: string) => gw.onSignal(signal, from))
    signals.on('resync', () => gw.resync())
    server.on('request', (req, res) => void gw.onRequest(req, res))
    server.on('upgrade', (req, socket, head) => void gw.onUpgrade(req, socket as Socket, head))
    server.on('clientError', (_err, socket) => socket.destroy())
    gw.signingKeyFile = signingKeyFile
    gw.metricsToken = metricsToken
    gw.notifier = notifier
    gw.sweeper = setInterval(() => void gw.sweepRevoked(), opts.revocationSweepMs ?? REVOCATION_SWEEP_MS)
    gw.sweeper.unref()
    gw.heartbeat = heartbeat
    heartbeat?.start()
    opts.logger.info('gateway listening', {url, dataDir: opts.dataDir, store: store.kind, connections: opts.config.connections.length, dev: opts.dev})
    return gw
  }

  private apiContext(): ApiContext {
    return {
      config: this.opts.config,
      store: this.store,
      db: this.local.db,
      audit: this.audit,
      approvals: this.approvals,
      policy: this.opts.policy,
      agents: this.agents,
      access: this.opts.access,
      identity: this.identity,
      logger: this.opts.logger,
      version: this.opts.version ?? '0.0.0',
      url: this.url,
      dataDir: this.opts.dataDir,
      signingKeyFile: this.signingKeyFile,
      replicas: () => (this.store instanceof PostgresStore ? liveReplicaUrls(this.store) : Promise.resolve([this.url])),
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (this.closing) throw new HoopError('GATEWAY_SHUTDOWN', 'gateway is shutting down')
      const ops = {store: this.store, audit: this.audit, metrics: this.metrics, metricsToken: this.metricsToken, logger: this.opts.logger, policyDiffers: () => this.policyDiffers}
      if (await handleOps(ops, req, res)) return
      if (await this.identity.handleHttp(req, res)) return
      if (await this.console.handle(req, res)) return
      await handleApi(this.apiContext(), req, res)
    } catch (err) {
      const e = asHoopError(err)
      this.metrics.errors.inc({code: e.code})
      if (e.code === 'INTERNAL') this.opts.logger.error('request failed', {path: req.url, error: String(err)})
      if (!res.headersSent) sendError(res, e)
      else res.destroy()
    }
  }

  private async onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy())
    const path = (req.url ?? '').split('?')[0]
    try {
      if (this.closing) throw new HoopError('GATEWAY_SHUTDOWN', 'gateway is shutting down')
      const bearer = bearerFrom(req)
      if (!bearer) throw new HoopError('TOKEN_REJECTED', 'missing Authorization: Bearer token')
      if (path === RELAY_PATHS.agent) {
        const identity = await authenticateServiceKey(this.store, bearer, 'ag')
        this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptAgent(ws, identity, req))
      } else if (path === RELAY_PATHS.connect) {
        const identity = await this.identity.authenticator.authenticate(bearer)
        this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptClient(ws, identity, req))
      } else {
        throw new HoopError('NOT_FOUND', `no WebSocket endpoint at ${path}`)
      }
    } catch (err) {
      const e = asHoopError(err)
      this.metrics.errors.inc({code: e.code})
      const remote = req.socket.remoteAddress
      // A flood of bad tokens is counted, not written (or logged) once per attempt.
      const first = e.code !== 'TOKEN_REJECTED' || this.authFailures.note({method: path === RELAY_PATHS.agent ? 'agent-token' : 'bearer', reason: e.message, clientAddress: remote})
      if (first) this.opts.logger.warn('websocket refused', {path, code: e.code, error: e.message, remote})
      else this.opts.logger.debug('websocket refused', {path, code: e.code, error: e.message, remote})
      const body = JSON.stringify({error: {code: e.code, message: e.message}})
      const status = e.code === 'TOKEN_REJECTED' ? '401 Unauthorized' : e.code === 'NOT_FOUND' ? '404 Not Found' : '503 Service Unavailable'
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      )
    }
  }

  private acceptAgent(ws: WebSocket, identity: Identity, req: IncomingMessage): void {
    const log = this.opts.logger.child({agent: identity.subject})
    // Agents serve streams; they never open them towards the gateway.
    const mux = new Mux(ws, {side: 'acceptor', logger: log, lostMessage: `agent "${identity.subject}" disconnected`})
    this.agents.attach(identity.subject, mux)
    this.store.touchAgent(identity.subject).catch((err) => log.warn('agent last-seen time not stored', {error: errorMessage(err)}))
    log.info('agent connected', {remote: req.socket.remoteAddress})
    mux.once('close', (err: HoopError) => log.info('agent disconnected', {reason: err?.message}))
  }

  private acceptClient(ws: WebSocket, identity: Identity, req: IncomingMessage): void {
    const log = this.opts.logger.child({subject: identity.subject})
    const clientAddress = req.socket.remoteAddress ?? 'unknown'
    const ctx: SessionContext = {
      connections: () => this.opts.config.connections,
      access: this.opts.access,
      policy: this.opts.policy,
      agents: this.agents,
      store: this.store,
      db: this.local.db,
      audit: this.audit,
      approvals: approvalResolver(this.approvals),
      logger: this.opts.logger,
      recordingCap: this.opts.recordingCap,
      auditMode: this.opts.auditMode,
      authFailures: this.authFailures,
      metrics: this.metrics,
    }
    const mux = new Mux(ws, {
      side: 'acceptor',
      logger: log,
      onOpen: (stream) => {
        serveClientStream(ctx, identity, stream, clientAddress).catch((err) => {
          log.error('session failed', {error: String(err)})
          if (!stream.destroyed) stream.reset('INTERNAL', 'internal error')
        })
      },
    })
    this.clientLinks.set(mux, identity)
    mux.once('close', () => this.clientLinks.delete(mux))
  }

  /**
   * A signal from a replica (this one's own come back too): a revocation cuts this replica's links
   * at once, an approval change wakes its waits. Policy signals are the policy holder's (main.ts).
   */
  private onSignal(signal: Signal, from?: string): void {
    switch (signal.kind) {
      case 'revoked':
        if (signal.what === 'agent') this.cutAgent(signal.name)
        else this.cutServiceAccount(signal.name)
        return
      case 'approval':
        if (from !== this.signals.replica) this.approvals.changed(signal.id)
        return
      case 'policy':
        return
      default: {
        const never: never = signal
        throw new Error(`unknown signal ${JSON.stringify(never)}`)
      }
    }
  }

  /** Ends every client link (and so its sessions) and waits, up to 2 s, until they are closed. */
  async endClientLinks(code: ErrorCode, message: string): Promise<void> {
    const links = [...this.clientLinks.keys()]
    const closed = Promise.all(links.map((mux) => new Promise<void>((resolve) => mux.once('close', () => resolve()))))
    for (const mux of links) mux.goAway(code, message)
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())])
  }

  /** Notifications were lost while the listener was away: re-read what they would have said. */
  private resync(): void {
    void this.sweepRevoked()
    this.approvals.changed('*')
  }

  private cutAgent(name: string): void {
    if (name !== 'embedded' && this.agents.isOnline(name)) this.agents.disconnect(name, 'TOKEN_REJECTED', `agent token for "${name}" was revoked`)
  }

  private cutServiceAccount(name: string): void {
    for (const [mux, identity] of this.clientLinks) {
      if (identity.kind === 'service-account' && identity.subject === name) mux.goAway('TOKEN_REJECTED', `service-account key for "${name}" was revoked`)
    }
  }

  /**
   * Cuts live links whose secret was revoked since they connected, including revocations made
   * directly on the data dir (`hoop admin ... --data-dir`) rather than through this gateway.
   */
  async sweepRevoked(): Promise<void> {
    // A slow store must not pile sweeps up behind each other.
    if (this.sweeping) return
    this.sweeping = true
    try {
      const liveAgents = new Set((await this.store.listAgents()).filter((a) => !a.revokedAt).map((a) => a.name))
      for (const name of this.agents.onlineAgents()) if (!liveAgents.has(name)) this.cutAgent(name)
      const liveAccounts = new Set((await this.store.listServiceAccounts()).filter((a) => !a.revokedAt).map((a) => a.name))
      for (const identity of new Set(this.clientLinks.values())) {
        if (identity.kind === 'service-account' && !liveAccounts.has(identity.subject)) this.cutServiceAccount(identity.subject)
      }
    } catch (err) {
      this.opts.logger.error('revocation sweep failed', {error: errorMessage(err)})
    } finally {
      this.sweeping = false
    }
  }

  /** Stops accepting, tells every peer why, and closes every stream. */
  async close(reason = 'gateway is shutting down'): Promise<void> {
    if (this.closing) return
    this.closing = true
    clearInterval(this.sweeper)
    // First, so that agents stop linking here and no replica takes this one for dead.
    await this.heartbeat?.stop()
    await this.signals.close()
    this.opts.logger.info('gateway shutting down', {reason})
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const mux of this.clientLinks.keys()) mux.goAway('GATEWAY_SHUTDOWN', reason)
    this.agents.goAwayAll('GATEWAY_SHUTDOWN', reason)
    this.server.closeAllConnections()
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())])
    await this.notifier?.close(NOTIFY_DRAIN_MS)
    await this.identity.close()
    await this.authFailures.close()
    await this.audit.close()
    // Session recordings queue chunks for a shared batch write: store the tail before the store goes.
    flushRecordings(this.local.db)
    if (this.store instanceof PostgresStore) await flushPgRecordings(this.store)
    if (this.store !== this.local) await this.store.close()
    await this.local.close()
  }
}
