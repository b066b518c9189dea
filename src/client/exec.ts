// `hoop exec`: one-off SQL through the gateway, under the same policy as any session. Opens ONE
// relay stream (like `hoop connect` does for each local socket) and drives it with the `pg`
// driver, so the gateway's PostgreSQL engine sees an ordinary client. The input is sent as one
// simple-protocol Query (psql -c semantics): policy judges it, and an approval binds to that exact
// text, so re-running the same input is what a one-time approval covers. Given several replicas
// of one gateway, the run uses the first in list order that answers, and stays on it.
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {userInfo} from 'node:os'
import pg from 'pg'
import {approvalStatusLine} from '../approvals/message.js'
import type {ConnectionView} from '../gateway/api.js'
import {Mux, type RelayStream} from '../relay/mux.js'
import {HoopError, asHoopError, errorMessage} from '../shared/errors.js'
import {silentLogger, type Logger} from '../shared/log.js'
import {RELAY_PATHS} from '../shared/routes.js'
import {GatewayApi} from './api.js'
import {ApprovalsClient, approvalIdIn, type ApprovalView} from './approvals.js'
import {dialRelay} from './dial.js'
import {firstAnswering} from './gateways.js'

const MAX_SQL_INPUT = 1024 * 1024
/** SQLSTATE insufficient_privilege: the gateway answers refusals with it. */
const SQLSTATE_REFUSED = '42501'
/** How many times `--wait` re-runs after an approval before giving up (a statement can meet several review rules). */
const MAX_APPROVAL_ROUNDS = 5

export interface StatementOutput {
  /** Command tag, e.g. SELECT, UPDATE, CREATE TABLE. */
  command: string
  rowCount: number | null
  fields: string[]
  /** Cells as PostgreSQL's text format (strings), or null. */
  rows: Array<Array<string | null>>
}

export interface ExecResult {
  connection: string
  statements: StatementOutput[]
  /** The approval that authorised the statement (a one-time approval, or a time-boxed grant), when one did. */
  approvalId?: string
  /** Every approval the run used, in order (more than one when the input met several review rules). */
  approvals: string[]
}

interface ExecOptions {
  /** The replicas of one gateway (one URL is a list of one). */
  gateways: string[]
  connection: string
  bearer: () => Promise<string>
  sql: string
  user?: string
  database?: string
  /** Wait for approval when review is required, then run the statement again. */
  wait?: boolean
  /** Progress while waiting (spinner). */
  onWaiting?: (approval: ApprovalView) => void
  onApproved?: (approval: ApprovalView) => void
  logger?: Logger
  signal?: AbortSignal
}

/** -e, --file or stdin, in that order; exactly one. */
export function readSqlInput(o: {execute?: string; file?: string; stdin?: NodeJS.ReadStream}): Promise<string> | string {
  if (o.execute !== undefined && o.file !== undefined) throw new HoopError('INVALID_INPUT', 'give the SQL with -e or --file, not both')
  const check = (sql: string, from: string) => {
    if (sql.length > MAX_SQL_INPUT) throw new HoopError('INVALID_INPUT', `SQL from ${from} has ${sql.length} characters; the limit is ${MAX_SQL_INPUT}`)
    if (sql.trim() === '') throw new HoopError('INVALID_INPUT', `no SQL in ${from}`)
    return sql
  }
  if (o.execute !== undefined) return check(o.execute, '-e')
  if (o.file !== undefined) {
    try {
      return check(readFileSync(o.file, 'utf8'), o.file)
    } catch (err) {
      if (err instanceof HoopError) throw err
      throw new HoopError('INVALID_INPUT', `cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  const stdin = o.stdin ?? process.stdin
  if (stdin.isTTY) throw new HoopError('INVALID_INPUT', 'give the SQL with -e "SQL", --file FILE, or on stdin')
  return (async () => {
    const chunks: Buffer[] = []
    let size = 0
    for await (const c of stdin) {
      size += (c as Buffer).length
      if (size > MAX_SQL_INPUT * 4) throw new HoopError('INVALID_INPUT', `SQL on stdin exceeds ${MAX_SQL_INPUT} characters`)
      chunks.push(c as Buffer)
    }
    return check(Buffer.concat(chunks).toString('utf8'), 'stdin')
  })()
}

export async function execSql(o: ExecOptions): Promise<ExecResult> {
  const bearer = await o.bearer()
  const {gateway, value: info} = await firstAnswering(o.gateways, (g) => new GatewayApi(g, bearer).get<ConnectionView>(`/v1/connections/${encodeURIComponent(o.connection)}`))
  if (info.type !== 'postgres') {
    throw new HoopError('INVALID_INPUT', `hoop exec runs SQL on postgres connections; "${info.name}" is ${info.type} (use \`hoop connect ${info.name}\`)`)
  }
  const ws = await dialRelay(gateway, RELAY_PATHS.connect, bearer, {userAgent: 'hoop-exec'})
  const mux = new Mux(ws, {side: 'dialer', logger: o.logger ?? silentLogger})
  // This run's id: the gateway keeps it with each approval use, so we can ask which one ran it.
  const request = randomBytes(12).toString('base64url')
  const client = new pg.Client({
    stream: () => socketLike(mux.open({connection: o.connection, request})),
    user: o.user ?? info.username ?? userInfo().username,
    database: o.database ?? info.database,
    // Cells stay in PostgreSQL's text format: what psql prints, and lossless in JSON.
    types: {getTypeParser: () => (v: string) => v},
  } as pg.ClientConfig)
  client.on('error', () => {}) // surfaced by the pending query / connect instead
  const used: string[] = []
  try {
    try {
      await client.connect()
    } catch (err) {
      throw mapError(err)
    }
    for (let round = 0; ; round++) {
      try {
        const res = (await client.query({text: o.sql, rowMode: 'array'})) as unknown as pg.QueryArrayResult | pg.QueryArrayResult[]
        const approvals = await approvalsUsed(gateway, o, request, used)
        return {connection: info.name, statements: (Array.isArray(res) ? res : [res]).map(toOutput), approvalId: approvals.at(-1), approvals}
      } catch (err) {
        const e = mapError(err)
        const id = e.code === 'APPROVAL_REQUIRED' ? (e.details?.approvalId as string | undefined) : undefined
        if (!id || !o.wait || round >= MAX_APPROVAL_ROUNDS) throw e
        const approvals = ApprovalsClient.withApi(new GatewayApi(gateway, await o.bearer()))
        const approved = await approvals.waitForDecision(id, {onTick: o.onWaiting, signal: o.signal})
        o.onApproved?.(approved)
        used.push(id)
      }
    }
  } finally {
    await client.end().catch(() => {})
    mux.goAway('GATEWAY_SHUTDOWN', 'exec finished')
  }
}

/**
 * The approvals the run used, as the gateway recorded them (a grant or an approval given before
 * this run is only known there); what --wait saw when the gateway cannot say (an older gateway).
 */
async function approvalsUsed(gateway: string, o: ExecOptions, request: string, waited: string[]): Promise<string[]> {
  try {
    const uses = await ApprovalsClient.withApi(new GatewayApi(gateway, await o.bearer())).usesOf(request)
    return [...new Set(uses.map((u) => u.approvalId))]
  } catch {
    return waited
  }
}

/** pg expects a net.Socket: connect() that emits 'connect', setNoDelay, setKeepAlive. */
function socketLike(stream: RelayStream): RelayStream {
  const s = stream as RelayStream & {connect(): RelayStream; setNoDelay(): void; setKeepAlive(): void}
  s.connect = () => {
    process.nextTick(() => s.emit('connect'))
    return s
  }
  s.setNoDelay = () => {}
  s.setKeepAlive = () => {}
  return s
}

/** Turns a driver or relay error into the HoopError (and exit code) a user acts on. */
export function mapError(err: unknown): HoopError {
  if (err instanceof HoopError) return err
  const e = err as {code?: unknown} | null | undefined
  const message = errorMessage(err)
  if (e?.code === SQLSTATE_REFUSED && message.startsWith('hoop: AUDIT_UNAVAILABLE:')) return new HoopError('AUDIT_UNAVAILABLE', message)
  if (e?.code === SQLSTATE_REFUSED && message.startsWith('hoop:')) {
    const id = approvalIdIn(message)
    if (id) {
      return new HoopError(
        'APPROVAL_REQUIRED',
        `${message}\nApproval ${id} is pending. Once approved, run the same statement again (or use --wait).`,
        {approvalId: id},
      )
    }
    return new HoopError('POLICY_BLOCKED', message)
  }
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
    return new HoopError('STATEMENT_FAILED', `${message} (SQLSTATE ${e.code})`, {sqlstate: e.code})
  }
  if (message.includes('Connection terminated')) return new HoopError('GATEWAY_UNREACHABLE', `the session ended unexpectedly: ${message}`)
  return asHoopError(err)
}

function toOutput(r: pg.QueryArrayResult): StatementOutput {
  return {
    command: r.command ?? '',
    rowCount: r.rowCount ?? null,
    fields: (r.fields ?? []).map((f) => f.name),
    rows: (r.rows ?? []).map((row) => row.map((c) => (c === null || c === undefined ? null : String(c)))),
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

export function renderTable(statements: StatementOutput[]): string {
  return statements
    .map((s) => {
      if (s.fields.length === 0) return `${s.command}${s.rowCount === null ? '' : ' ' + s.rowCount}`
      return `${resultTable(s.fields, s.rows)}\n(${s.rows.length} row${s.rows.length === 1 ? '' : 's'})`
    })
    .join('\n\n')
}

/** Aligned columns with the column names as the database spelled them (table.ts upper-cases headers). */
function resultTable(fields: string[], rows: Array<Array<string | null>>): string {
  const text = rows.map((r) => r.map((c) => (c === null ? 'NULL' : c.replace(/\r?\n/g, '\\n'))))
  const widths = fields.map((f, i) => Math.max(f.length, ...text.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(fields), line(widths.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n')
}

/** RFC 4180: fields with a comma, quote, CR or LF are quoted, quotes doubled; NULL is empty. */
export function renderCsv(statements: StatementOutput[]): string {
  const cell = (v: string | null) => (v === null ? '' : /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v)
  return statements
    .filter((s) => s.fields.length > 0)
    .map((s) => [s.fields.map(cell).join(','), ...s.rows.map((r) => r.map(cell).join(','))].join('\r\n') + '\r\n')
    .join('\r\n')
}

export function waitingLine(a: ApprovalView): string {
  return `waiting for approval ${a.id} (${approvalStatusLine(a)}); an approver runs: hoop approvals approve ${a.id} --reason "..."`
}
