// One client stream = one session: resolve the connection, check access, reach the target through
// its agent, then hand both streams to the connection type's engine (PostgreSQL: policy, masking,
// credential injection) or carry raw bytes (tcp). Every session is recorded and audited.
import type {Duplex} from 'node:stream'
import type {ApprovalResolver} from '../approvals/resolver.js'
import {events, finishOrphanRecording, policyVersion, type AuditLog, SessionRecorder} from '../audit/index.js'
import {type AuditMode, policyHooks, StatementGate} from '../engines/gate.js'
import {runHttpSession, type HttpRequestView} from '../engines/http/session.js'
import {runMysqlSession} from '../engines/mysql/session.js'
import {runPgSession} from '../engines/postgres/session.js'
import {runTcpSession} from '../engines/tcp/session.js'
import type {Identity} from '../identity/types.js'
import type {Operation, Policy, Statement} from '../policy/index.js'
import type {RelayStream} from '../relay/mux.js'
import {analyzeMysql} from '../sql/mysql-analyze.js'
import {analyzePostgres} from '../sql/pg-analyze.js'
import {mysqlSessionOf} from '../sql/mysql-session.js'
import {forgetPrepared, rememberPrepared} from '../sql/prepared.js'
import {type ConnectionConfig, readSecret} from '../shared/config.js'
import {asHoopError, errorMessage, HoopError} from '../shared/errors.js'
import {newSessionId} from '../shared/ids.js'
import type {Logger} from '../shared/log.js'
import type {SqliteStore} from '../store/sqlite.js'
import type {AccessGuard} from './access.js'
import type {AgentRegistry} from './agents.js'
import type {AuthFailureAudit} from './auth-failures.js'

export interface SessionContext {
  connections: () => ConnectionConfig[]
  access: AccessGuard
  policy: () => Policy
  agents: AgentRegistry
  store: SqliteStore
  audit: AuditLog
  approvals?: ApprovalResolver
  logger: Logger
  /** Per-session recording cap in bytes. */
  recordingCap?: number
  /** When statements' records must be durable (docs/audit.md); hold by default. */
  auditMode?: AuditMode
  /** Where access denials are counted (one event per source and interval, then a count). */
  authFailures: AuthFailureAudit
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
  const name = typeof stream.meta.connection === 'string' ? stream.meta.connection : ''
  const conn = ctx.connections().find((c) => c.name === name)
  if (!conn) {
    stream.reject('UNKNOWN_CONNECTION', `unknown connection ${quoted(name)}`)
    return
  }
  const decision = ctx.access.check(identity, conn)
  if (!decision.allowed) {
    const failure = {method: 'access', reason: `access denied by rule ${decision.ruleId}`, clientAddress, claimedSubject: identity.subject, connection: conn.name}
    if (ctx.authFailures.note(failure)) ctx.logger.info('access denied', {connection: conn.name, subject: identity.subject, rule: decision.ruleId})
    stream.reject('ACCESS_DENIED', `access to "${conn.name}" denied for ${identity.name} (rule ${decision.ruleId})`)
    return
  }
  if (!ctx.agents.isOnline(conn.agent)) {
    stream.reject('AGENT_OFFLINE', `agent "${conn.agent}" serving connection "${conn.name}" is offline`)
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
      stream.reject(e.code, e.message)
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
    ctx.store.startSession({id: sessionId, subject: identity.subject, identityKind: identity.kind, connection: conn.name, agent: conn.agent, clientAddress, startedAt: startedAt.toISOString()})
    // The session start is durable before any byte reaches the target.
    await ctx.audit.append(
      events.sessionStart({session: sessionId, identity, connection: conn.name, connectionType: conn.type, agent: conn.agent, clientAddress, ruleId: decision.ruleId, policyVersion: policyVersion(ctx.policy())}),
    )
  } catch (err) {
    // A store that cannot write (full disk) refuses the session: fail closed, drop the target.
    log.error('session start could not be recorded; refusing the session', {error: errorMessage(err)})
    upstream?.destroy()
    const e = err instanceof HoopError && err.code === 'AUDIT_UNAVAILABLE' ? err : new HoopError('AUDIT_UNAVAILABLE', 'the audit store cannot write; the session was refused')
    if (!stream.destroyed) stream.reset(e.code, e.message)
    return
  }
  const recorder = new SessionRecorder({db: ctx.store.db, sessionId, connection: conn.name, connectionType: conn.type, capBytes: ctx.recordingCap, logger: log})
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
      const hooks = policyHooks<HttpRequestView>({
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
      })
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
      // Per-session state the analyzers need: prepared statements (and MySQL user variables), so
      // EXECUTE is judged as the statement it runs.
      const prepared = new Map<string, Statement[]>()
      const variables = new Map<string, string>()
      // A named Parse is judged, then remembered as prepared: the judge's analysis serves both (used
      // once, since analysing again could differ: PREPARE and EXECUTE change the session's state).
      let lastPg: {sql: string; op: Operation} | undefined
      const analyzePg = (sql: string): Operation => (lastPg = {sql, op: analyzePostgres(sql, {prepared})}).op
      const judgedPg = (sql: string): Operation => {
        const op = lastPg?.sql === sql ? lastPg.op : analyzePostgres(sql, {prepared})
        lastPg = undefined
        return op
      }
      const analyze = engine === 'postgres' ? analyzePg : (sql: string) => analyzeMysql(sql, {prepared, variables})
      const hooks = policyHooks({
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
      })
      const gate = new StatementGate(hooks, log, ctx.auditMode)
      const r =
        engine === 'postgres'
          ? await runPgSession({
              client: stream,
              openUpstream,
              target: targetOf(conn),
              gate,
              logger: log,
              // SQL EXECUTE may name a protocol-prepared statement: the analyser judges it as what it runs.
              prepared: {
                parsed: (name, sql) => rememberPrepared(prepared, name, judgedPg(sql).statements),
                closed: (name) => forgetPrepared(prepared, name),
              },
            })
          : // Masking lexes statements as policy's analysis does (sql_mode, variables): one session view.
            await runMysqlSession({client: stream, openUpstream, target: targetOf(conn), gate, logger: log, sqlSession: mysqlSessionOf({variables})})
      result = {reason: 'closed', bytesUp: r.bytesUp, bytesDown: r.bytesDown, statements: r.statements}
    }
  } catch (err) {
    log.error('session engine failed', {error: errorMessage(err)})
    result = {reason: `engine error: ${asHoopError(err).message}`, bytesUp: stream.bytesIn, bytesDown: stream.bytesOut}
    if (!stream.destroyed) stream.reset('INTERNAL', 'internal error')
  }
  if (timer) clearTimeout(timer)
  const recording = recorder.finish()
  try {
    ctx.store.endSession(sessionId, {endedAt: new Date().toISOString(), bytesUp: result.bytesUp, bytesDown: result.bytesDown, endReason: result.reason})
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

/** Why a session has no end of its own: the gateway stopped (a crash, kill -9, power loss) while it ran. */
export const UNRECORDED_END = 'gateway restarted; session ended without a record of its end'

/**
 * On start: every session the store still has open was cut by the gateway stopping. Each whose
 * start is in the audit log gets its session.end now, with UNRECORDED_END as the reason, the time of
 * its last recorded event, and its recording closed over the chunks that were stored.
 */
export async function closeUnendedSessions(store: SqliteStore, audit: AuditLog, logger: Logger): Promise<number> {
  const db = store.db
  const open = db.prepare('SELECT id, started_at FROM sessions WHERE ended_at IS NULL ORDER BY started_at').all() as {id: string; started_at: string}[]
  const eventsOf = db.prepare("SELECT kind, body FROM audit_events WHERE session = ? AND kind IN ('session.start', 'session.end') ORDER BY seq")
  const lastAt = db.prepare('SELECT max(time) AS t FROM audit_events WHERE session = ?')
  let closed = 0
  for (const {id, started_at} of open) {
    const at = new Date().toISOString()
    const rows = eventsOf.all(id) as {kind: string; body: string}[]
    const start = rows.find((r) => r.kind === 'session.start')
    if (start && !rows.some((r) => r.kind === 'session.end')) {
      const e = JSON.parse(start.body) as {actor?: {kind: string; subject: string; name: string; email?: string; groups: string[]; issuer?: string}; connection?: string; data: {agent?: string; client_address?: string}}
      const last = (lastAt.get(id) as {t: string | null}).t ?? started_at
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
          recording: finishOrphanRecording(db, id, UNRECORDED_END),
        }),
      )
      closed++
    }
    store.endSession(id, {endedAt: at, bytesUp: 0, bytesDown: 0, endReason: UNRECORDED_END})
  }
  if (closed > 0) logger.warn('closed sessions the gateway left open when it stopped', {sessions: closed, reason: UNRECORDED_END})
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
