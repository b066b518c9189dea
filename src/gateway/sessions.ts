// One client stream = one session: resolve the connection, check access, reach the target through
// its agent, then hand both streams to the connection type's engine (PostgreSQL: policy, masking,
// credential injection) or carry raw bytes (tcp). Every session is recorded and audited.
import type Database from 'better-sqlite3'
import type {Duplex} from 'node:stream'
import type {ApprovalResolver} from '../approvals/resolver.js'
import {events, finishOrphanRecording, PgAuditLog, policyVersion, type AuditWriter, SessionRecorder} from '../audit/index.js'
import {finishOrphanPgRecording, recordedHere} from '../audit/pg-recordings.js'
import {type SessionMarks, sessionMarksOf} from '../audit/session-marks.js'
import {type AuditMode, type GateHooks, policyHooks, StatementGate, type SessionResult} from '../engines/gate.js'
import {runHttpSession, type HttpRequestView} from '../engines/http/session.js'
import {runMysqlSession} from '../engines/mysql/session.js'
import {runPgSession} from '../engines/postgres/session.js'
import {runTcpSession} from '../engines/tcp/session.js'
import type {Identity} from '../identity/types.js'
import type {Operation, Policy} from '../policy/index.js'
import type {RelayStream} from '../relay/mux.js'
import {type ConnectionConfig, readSecret} from '../shared/config.js'
import {asHoopError, errorMessage, type ErrorCode, HoopError} from '../shared/errors.js'
import {newSessionId} from '../shared/ids.js'
import type {Logger} from '../shared/log.js'
import type {Store} from '../store/types.js'
import type {AccessGuard} from './access.js'
import type {AgentRegistry} from './agents.js'
import type {AuthFailureAudit} from './auth-failures.js'
import type {GatewayMetrics} from './metrics.js'
import {mysqlAnalysis, pgAnalysis} from './sql-analysis.js'

export interface SessionContext {
  connections: () => ConnectionConfig[]
  access: AccessGuard
  policy: () => Policy
  agents: AgentRegistry
  store: Store
  /** The data dir's SQLite file, where recordings are kept. */
  db: Database.Database
  audit: AuditWriter
  approvals?: ApprovalResolver
  logger: Logger
  /** Per-session recording cap in bytes. */
  recordingCap?: number
  /** When statements' records must be durable (docs/audit.md); hold by default. */
  auditMode?: AuditMode
  /** Where access denials are counted (one event per source and interval, then a count). */
  authFailures: AuthFailureAudit
  metrics?: GatewayMetrics
}

/** Longest client-supplied name quoted back in an error: a peer must not make us echo 16 KiB per OPEN. */
const MAX_QUOTED_NAME = 128

function quoted(name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED_NAME ? `${name.slice(0, MAX_QUOTED_NAME)}…` : name)
}

interface EngineResult {
  reason: string
  bytesUp: number
  bytesDown: number
  statements?: number
}

export async function serveClientStream(ctx: SessionContext, identity: Identity, stream: RelayStream, clientAddress: string): Promise<void> {
  // Every refusal the client gets is counted by its code.
  const reject = (code: ErrorCode, message: string) => {
    ctx.metrics?.errors.inc({code})
    stream.reject(code, message)
  }
  const name = typeof stream.meta.connection === 'string' ? stream.meta.connection : ''
  const conn = ctx.connections().find((c) => c.name === name)
  if (!conn) {
    reject('UNKNOWN_CONNECTION', `unknown connection ${quoted(name)}`)
    return
  }
  const decision = ctx.access.check(identity, conn)
  if (!decision.allowed) {
    const failure = {method: 'access', reason: `access denied by rule ${decision.ruleId}`, clientAddress, claimedSubject: identity.subject, connection: conn.name}
    if (ctx.authFailures.note(failure)) ctx.logger.info('access denied', {connection: conn.name, subject: identity.subject, rule: decision.ruleId})
    reject('ACCESS_DENIED', `access to "${conn.name}" denied for ${identity.name} (rule ${decision.ruleId})`)
    return
  }
  if (!ctx.agents.isOnline(conn.agent)) {
    reject('AGENT_OFFLINE', `agent "${conn.agent}" serving connection "${conn.name}" is offline`)
    return
  }
  const sessionId = newSessionId()
  const log = ctx.logger.child({session: sessionId, connection: conn.name, subject: identity.subject})
  // The client's own id for this run (`hoop exec` sends one), so it can ask which approval it used.
  const clientRequest = typeof stream.meta.request === 'string' && /^[A-Za-z0-9_-]{8,64}$/.test(stream.meta.request) ? stream.meta.request : undefined
  const openUpstream = () => ctx.agents.openTarget(conn, sessionId)
  const engine = conn.type === 'tcp' ? 'raw' : conn.type

  // Raw streams are accepted only once the target answered, so the client learns why it could not be reached.
  let upstream: Duplex | undefined
  if (engine === 'raw') {
    try {
      upstream = await openUpstream()
    } catch (err) {
      const e = asHoopError(err)
      log.warn('target unavailable', {code: e.code, error: e.message})
      reject(e.code, e.message)
      return
    }
    if (stream.destroyed) {
      upstream.destroy()
      return
    }
  }
  stream.accept()

  const startedAt = new Date()
  try {
    await ctx.store.startSession({id: sessionId, subject: identity.subject, identityKind: identity.kind, connection: conn.name, agent: conn.agent, clientAddress, startedAt: startedAt.toISOString()})
    // The session start is durable before any byte reaches the target.
    const appending = performance.now()
    await ctx.audit.append(
      events.sessionStart({session: sessionId, identity, connection: conn.name, connectionType: conn.type, agent: conn.agent, clientAddress, ruleId: decision.ruleId, policyVersion: policyVersion(ctx.policy())}),
    )
    ctx.metrics?.auditAppend.observe((performance.now() - appending) / 1000)
  } catch (err) {
    // A store that cannot write (full disk) refuses the session: fail closed, drop the target.
    log.error('session start could not be recorded; refusing the session', {error: errorMessage(err)})
    upstream?.destroy()
    // Its row, if written, is ended now: on a shared store no other replica would end it.
    await ctx.store.endSession(sessionId, {endedAt: new Date().toISOString(), bytesUp: 0, bytesDown: 0, endReason: REFUSED_START}).catch(() => undefined)
    const e = err instanceof HoopError && (err.code === 'AUDIT_UNAVAILABLE' || err.code === 'STORE_UNAVAILABLE') ? err : new HoopError('AUDIT_UNAVAILABLE', 'the audit store cannot write; the session was refused')
    ctx.metrics?.errors.inc({code: e.code})
    if (!stream.destroyed) stream.reset(e.code, e.message)
    return
  }
  const type = {type: conn.type}
  ctx.metrics?.sessionsTotal.inc(type)
  ctx.metrics?.sessionsActive.inc(type)
  // With the one audit log on PostgreSQL, the recording goes there too, under this replica's id.
  const pg = ctx.audit instanceof PgAuditLog ? {store: ctx.audit.pgStore, replica: ctx.audit.fingerprint()} : undefined
  const recorder = new SessionRecorder({db: ctx.db, pg, sessionId, connection: conn.name, connectionType: conn.type, capBytes: ctx.recordingCap, logger: log})
  log.info('session started', {agent: conn.agent, engine})

  let timer: NodeJS.Timeout | undefined
  if (decision.limits.maxSessionSeconds) {
    timer = setTimeout(() => {
      stream.reset('ACCESS_DENIED', `session duration limit of ${decision.limits.maxSessionSeconds} s reached (rule ${decision.ruleId})`)
      upstream?.destroy()
    }, decision.limits.maxSessionSeconds * 1000)
    timer.unref()
  }

  let result: EngineResult
  try {
    if (engine === 'raw') {
      result = await runTcpSession(stream, upstream!, {agent: conn.agent, recorder, logger: log})
    } else if (engine === 'http') {
      const hooks = metered(ctx, policyHooks<HttpRequestView>({
        session: sessionId,
        identity,
        connection: conn,
        policy: ctx.policy,
        analyze: (view) => ({engine: 'http', statements: [], http: view}),
        // One-time approvals bind to the exact request: method, target and body fingerprint.
        describe: (view) => `${view.method} ${view.target} (request sha256 ${view.fingerprint})`,
        audit: ctx.audit,
        approvals: ctx.approvals,
        recorder,
        recordExchange: 'all',
        logger: log,
        protocol: 'http',
        clientRequest,
      }))
      const t = targetOf(conn)
      const r = await runHttpSession({
        client: stream,
        openUpstream,
        target: {host: conn.host, port: conn.port, token: conn.token ? readSecret(conn.token) : undefined, auth: conn.httpAuth, username: conn.username, forwardAuthorization: conn.forwardAuthorization, tls: t.tls},
        gate: new StatementGate(hooks, log, ctx.auditMode),
        redactHeaders: conn.redactHeaders,
        logger: log,
      })
      result = {reason: 'closed', bytesUp: r.bytesUp, bytesDown: r.bytesDown, statements: r.statements}
    } else {
      const sqlGate = (analyze: (sql: string) => Operation) =>
        new StatementGate(
          metered(ctx, policyHooks({
            session: sessionId,
            identity,
            connection: conn,
            policy: ctx.policy,
            analyze,
            describe: (sql: string) => sql,
            audit: ctx.audit,
            approvals: ctx.approvals,
            recorder,
            recordExchange: 'results',
            logger: log,
            protocol: engine,
            clientRequest,
          })),
          log,
          ctx.auditMode,
        )
      // The analysers' per-session state (prepared statements, MySQL sql_mode and variables) and
      // parses are shared by the judge and the engine's masking (sql-analysis.ts).
      let r: SessionResult
      if (engine === 'postgres') {
        const pg = pgAnalysis()
        r = await runPgSession({client: stream, openUpstream, target: targetOf(conn), gate: sqlGate(pg.analyze), logger: log, parses: pg.parses, prepared: pg.prepared})
      } else {
        const my = mysqlAnalysis()
        r = await runMysqlSession({client: stream, openUpstream, target: targetOf(conn), gate: sqlGate(my.analyze), logger: log, sqlSession: my.sqlSession})
      }
      result = {reason: 'closed', bytesUp: r.bytesUp, bytesDown: r.bytesDown, statements: r.statements}
    }
  } catch (err) {
    log.error('session engine failed', {error: errorMessage(err)})
    result = {reason: `engine error: ${asHoopError(err).message}`, bytesUp: stream.bytesIn, bytesDown: stream.bytesOut}
    ctx.metrics?.errors.inc({code: 'INTERNAL'})
    if (!stream.destroyed) stream.reset('INTERNAL', 'internal error')
  }
  ctx.metrics?.sessionsActive.dec(type)
  ctx.metrics?.relayBytes.inc({direction: 'up'}, result.bytesUp)
  ctx.metrics?.relayBytes.inc({direction: 'down'}, result.bytesDown)
  if (timer) clearTimeout(timer)
  const recording = await recorder.finishStored()
  try {
    await ctx.store.endSession(sessionId, {endedAt: new Date().toISOString(), bytesUp: result.bytesUp, bytesDown: result.bytesDown, endReason: result.reason})
  } catch (err) {
    // The session.end event below still carries everything; the row only serves listings.
    log.error('session end could not be stored', {error: errorMessage(err)})
  }
  await ctx.audit
    .append(
      events.sessionEnd({
        session: sessionId,
        identity,
        connection: conn.name,
        agent: conn.agent,
        clientAddress,
        startedAt,
        bytesUp: result.bytesUp,
        bytesDown: result.bytesDown,
        reason: result.reason,
        statements: result.statements,
        recording,
      }),
    )
    .catch((err) => log.error('audit append failed', {error: errorMessage(err)}))
  log.info('session ended', {reason: result.reason, bytesUp: result.bytesUp, bytesDown: result.bytesDown, ms: Date.now() - startedAt.getTime()})
}

/** The gate's hooks, counted and timed when the gateway keeps metrics. */
function metered<Op>(ctx: SessionContext, hooks: GateHooks<Op>): GateHooks<Op> {
  return ctx.metrics ? ctx.metrics.metered(hooks) : hooks
}

/** Why a session row ended at once: its start could not be recorded, so it never ran. */
const REFUSED_START = 'refused: the session start could not be recorded'

/** Why a session has no end of its own: the gateway stopped (a crash, kill -9, power loss) while it ran. */
export const UNRECORDED_END = 'gateway restarted; session ended without a record of its end'

/**
 * On start: every session the store still has open was cut by the gateway stopping. Each whose
 * start is in the audit log gets its session.end now, with UNRECORDED_END as the reason, the time of
 * its last recorded event, and its recording closed over the chunks that were stored. On a shared
 * store, a session another replica may still be serving is left alone (docs/ha.md): with a log of
 * its own, one whose start is not in it; with the one log on PostgreSQL, one whose recording
 * another replica was writing. `ofReplica` names another replica, found dead by its heartbeat
 * (replicas.ts): its sessions are closed the same way, by this one.
 */
export async function closeUnendedSessions(store: Store, db: Database.Database, audit: AuditWriter, logger: Logger, ofReplica?: string): Promise<number> {
  const open = await store.listOpenSessions()
  // The data dir's tables hold the log only when the log is there (not on PostgreSQL).
  const local = audit instanceof PgAuditLog ? undefined : sessionMarksOf(db)
  const marks = async (id: string): Promise<SessionMarks> => (local ? local(id) : (audit as PgAuditLog).sessionMarks(id))
  let closed = 0
  for (const {id, startedAt: started_at} of open) {
    const at = new Date().toISOString()
    if (audit instanceof PgAuditLog && !(await recordedHere(audit.pgStore, id, ofReplica ?? audit.fingerprint()))) continue
    const {rows, last: lastEvent} = await marks(id)
    const start = rows.find((r) => r.kind === 'session.start')
    if (!start && store.shared) continue
    if (start && !rows.some((r) => r.kind === 'session.end')) {
      const e = JSON.parse(start.body) as {actor?: {kind: string; subject: string; name: string; email?: string; groups: string[]; issuer?: string}; connection?: string; data: {agent?: string; client_address?: string}}
      const last = lastEvent ?? started_at
      await audit.append(
        events.sessionEndUnrecorded({
          session: id,
          actor: e.actor,
          connection: e.connection,
          agent: e.data.agent,
          clientAddress: e.data.client_address,
          startedAt: started_at,
          lastEventAt: last,
          reason: UNRECORDED_END,
          recording: audit instanceof PgAuditLog ? await finishOrphanPgRecording(audit.pgStore, id, UNRECORDED_END) : finishOrphanRecording(db, id, UNRECORDED_END),
        }),
      )
      closed++
    }
    await store.endSession(id, {endedAt: at, bytesUp: 0, bytesDown: 0, endReason: UNRECORDED_END})
  }
  if (closed > 0) logger.warn(ofReplica ? 'closed sessions a dead replica left open' : 'closed sessions the gateway left open when it stopped', {sessions: closed, reason: UNRECORDED_END, ...(ofReplica ? {replica: ofReplica} : {})})
  return closed
}

/** Target settings for an engine, with the secret read from its reference only now. */
function targetOf(conn: ConnectionConfig) {
  return {
    host: conn.host,
    database: conn.database,
    username: conn.username,
    password: conn.password ? readSecret(conn.password) : undefined,
    tls: {mode: conn.tls.mode, ca: conn.tls.ca ? readSecret(conn.tls.ca) : undefined, serverName: conn.tls.serverName},
  }
}
