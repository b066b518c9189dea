// The CLI side of approvals: calls to /v1/approvals, the long-poll loop behind `--wait` and
// `connect --request-access`, a TTY spinner, and the human renderings of requests.
import {APPROVAL_ID_RE, approvalStatusLine, type ApprovalRecord, type ApprovalState} from '../approvals/index.js'
import type {ApprovalUseView} from '../approvals/service.js'
import type {AccessRequestResponse, ApprovalView} from '../gateway/approvals-api.js'
import {formatDuration} from '../policy/glob.js'
import {HoopError} from '../shared/errors.js'
import {GatewayApi, openGatewayApi} from './api.js'
import {table} from './table.js'

export type {ApprovalView} from '../gateway/approvals-api.js'

interface ApprovalsClientOptions {
  gateway?: string
  token?: string
}

/** Long-poll slice: under GatewayApi's 15 s request timeout (the gateway caps one wait at 60 s). */
const WAIT_SLICE_S = 12

export class ApprovalsClient {
  private constructor(readonly api: GatewayApi) {}

  static async open(opts: ApprovalsClientOptions): Promise<ApprovalsClient> {
    return new ApprovalsClient(await openGatewayApi(opts))
  }

  static withApi(api: GatewayApi): ApprovalsClient {
    return new ApprovalsClient(api)
  }

  async list(opts: {state?: ApprovalState | 'all'; mine?: boolean; limit?: number} = {}): Promise<ApprovalView[]> {
    const q = new URLSearchParams()
    if (opts.state) q.set('state', opts.state)
    if (opts.mine) q.set('mine', '1')
    if (opts.limit) q.set('limit', String(opts.limit))
    const qs = q.toString()
    return (await this.api.get<{approvals: ApprovalView[]}>(`/v1/approvals${qs ? '?' + qs : ''}`)).approvals
  }

  async show(id: string): Promise<ApprovalView> {
    return this.api.get<ApprovalView>(`/v1/approvals/${encodeURIComponent(checkId(id))}`)
  }

  async decide(id: string, decision: 'approve' | 'reject', reason: string): Promise<ApprovalView> {
    return this.api.request<ApprovalView>('POST', `/v1/approvals/${encodeURIComponent(checkId(id))}/${decision}`, {reason})
  }

  requestAccess(connection: string, reason: string, duration?: string): Promise<AccessRequestResponse> {
    return this.api.request<AccessRequestResponse>('POST', '/v1/approvals', {connection, reason, ...(duration ? {duration} : {})})
  }

  /** The approvals the caller's statements used in one run (`request`: the id sent in the OPEN meta). */
  async usesOf(request: string): Promise<ApprovalUseView[]> {
    return (await this.api.get<{uses: ApprovalUseView[]}>(`/v1/approvals/used?request=${encodeURIComponent(request)}`)).uses
  }

  /** One long-poll: returns the request when decided, or still pending after `timeoutS`. */
  async waitOnce(id: string, timeoutS = WAIT_SLICE_S): Promise<ApprovalView> {
    return this.api.get<ApprovalView>(`/v1/approvals/${encodeURIComponent(checkId(id))}/wait?timeout=${Math.min(timeoutS, WAIT_SLICE_S)}`)
  }

  /**
   * Waits until the request is decided. Resolves with an approved request; throws
   * APPROVAL_REQUIRED (rejected / expired / used) otherwise. `onTick` runs after every poll.
   */
  async waitForDecision(id: string, opts: {onTick?: (rec: ApprovalView) => void; signal?: AbortSignal} = {}): Promise<ApprovalView> {
    // The current state first, so a spinner has something to say before the first long-poll ends.
    let rec = await this.show(id)
    for (;;) {
      opts.onTick?.(rec)
      if (rec.state === 'approved') return rec
      if (rec.state !== 'pending') throw new HoopError('APPROVAL_REQUIRED', rec.message)
      if (opts.signal?.aborted) throw new HoopError('APPROVAL_REQUIRED', `stopped waiting for ${id}; it is still pending`)
      rec = await this.waitOnce(id)
    }
  }
}

function checkId(id: string): string {
  if (!new RegExp(`^${APPROVAL_ID_RE.source}$`).test(id)) throw new HoopError('INVALID_INPUT', `"${id}" is not an approval id (apr_ followed by 12 characters)`)
  return id
}

/** Finds an approval id in a refusal message ("... request apr_XXXXXXXXXXXX is pending ..."). */
export function approvalIdIn(text: string): string | undefined {
  return APPROVAL_ID_RE.exec(text)?.[0]
}

// ---------------------------------------------------------------------------------------------
// Rendering.

export function approvalsTable(list: ApprovalRecord[], nowMs = Date.now()): string {
  return table(
    ['id', 'state', 'requester', 'connection', 'rule', 'approvals', 'age', 'what'],
    list.map((r) => [
      r.id,
      r.state,
      r.requester.name,
      r.connection,
      r.ruleId,
      `${r.decisions.filter((d) => d.decision === 'approve').length}/${r.approvalsRequired}`,
      formatDuration(Math.max(0, Math.round((nowMs - Date.parse(r.createdAt)) / 1000))),
      clip(r.scope === 'session' ? `access ${formatDuration(r.durationSeconds ?? r.ttlSeconds)}: ${r.requestReason ?? ''}` : (r.statement ?? '').replace(/\s+/g, ' '), 60),
    ]),
  )
}

export function approvalDetail(r: ApprovalView, nowMs = Date.now()): string {
  const lines = [
    `${r.id}  ${approvalStatusLine(r, nowMs)}`,
    `  requester   ${r.requester.name} (${r.requester.kind}${r.requester.groups.length ? `; groups ${r.requester.groups.join(', ')}` : ''})`,
    `  connection  ${r.connection}`,
    `  rule        ${r.ruleId} (${r.approvalsRequired} approval${r.approvalsRequired === 1 ? '' : 's'} needed, scope ${r.scope})`,
    `  requested   ${r.createdAt}`,
    `  expires     ${r.expiresAt}`,
  ]
  if (r.decidedAt) lines.push(`  decided     ${r.decidedAt}`)
  if (r.validUntil) lines.push(`  valid until ${r.validUntil}`)
  if (r.usedAt) lines.push(`  used        ${r.usedAt}`)
  if (r.scope === 'session') lines.push(`  duration    ${formatDuration(r.durationSeconds ?? r.ttlSeconds)}`)
  if (r.requestReason) lines.push(`  reason      ${r.requestReason}`)
  if (r.statement !== undefined) lines.push('  statement', ...r.statement.split('\n').map((l) => `    ${l}`))
  if (r.decisions.length) {
    lines.push('  decisions')
    for (const d of r.decisions) lines.push(`    ${d.at}  ${d.decision === 'approve' ? 'approved' : 'rejected'} by ${d.approver.name} (${d.approver.kind}): ${d.reason}`)
  }
  return lines.join('\n')
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s
}

// ---------------------------------------------------------------------------------------------
// A spinner on a TTY, nothing otherwise.

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

interface Spinner {
  update(text: string): void
  stop(final?: string): void
}

export function spinner(stream: NodeJS.WriteStream = process.stderr, text = ''): Spinner {
  if (!stream.isTTY) {
    // No animation off a terminal: the first status line once, then the outcome.
    let said = Boolean(text)
    if (text) stream.write(text + '\n')
    return {
      update(t) {
        if (!said) stream.write(t + '\n')
        said = true
      },
      stop: (final) => void (final && stream.write(final + '\n')),
    }
  }
  let i = 0
  let current = text
  const draw = () => stream.write(`\r\x1b[2K${FRAMES[i++ % FRAMES.length]} ${current}`)
  draw()
  const timer = setInterval(draw, 100)
  timer.unref()
  return {
    update(t) {
      current = t
    },
    stop(final) {
      clearInterval(timer)
      stream.write('\r\x1b[2K' + (final ? final + '\n' : ''))
    },
  }
}

/** --reason, or a prompt on a terminal; elsewhere a missing reason is an error. */
async function reasonOrPrompt(flag: string | undefined, what: string, interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY)): Promise<string> {
  if (flag !== undefined) return flag
  if (!interactive) {
    throw new HoopError('INVALID_INPUT', `a justification is required: pass --reason "why" (${what})`)
  }
  const {input} = await import('@inquirer/prompts')
  return input({message: `Reason (${what}):`, required: true, validate: (v) => (v.trim().length > 0 && v.trim().length <= 1000) || 'between 1 and 1000 characters'})
}

/** `hoop approvals approve|reject ID`: one call, with the reason prompted for on a TTY. */
export async function decideApproval(opts: ApprovalsClientOptions & {id: string; decision: 'approve' | 'reject'; reason?: string}): Promise<ApprovalView> {
  checkId(opts.id)
  const client = await ApprovalsClient.open(opts)
  const reason = await reasonOrPrompt(opts.reason, `why you ${opts.decision} ${opts.id}`)
  return client.decide(opts.id, opts.decision, reason)
}

/**
 * `hoop connect NAME --request-access --reason ... --duration 1h`: asks for time-boxed access and
 * waits (spinner on a TTY) until it is approved; throws APPROVAL_REQUIRED when rejected or expired.
 * Returns at once when a grant is already live.
 */
export async function requestAccessAndWait(
  opts: ApprovalsClientOptions & {connection: string; reason?: string; duration?: string; signal?: AbortSignal; interactive?: boolean},
): Promise<ApprovalView> {
  const client = await ApprovalsClient.open(opts)
  const reason = await reasonOrPrompt(opts.reason, `why you need time-boxed access to ${opts.connection}`, opts.interactive)
  const r = await client.requestAccess(opts.connection, reason, opts.duration)
  if (r.status === 'approved') return r.approval
  const spin = spinner(process.stderr)
  const line = (a: ApprovalView) =>
    `waiting for approval ${a.id} of time-boxed access to ${a.connection} (${approvalStatusLine(a)}); an approver runs: hoop approvals approve ${a.id} --reason "..."`
  spin.update(line(r.approval))
  try {
    const approved = await client.waitForDecision(r.approval.id, {onTick: (a) => spin.update(line(a)), signal: opts.signal})
    spin.stop(`✔ ${approved.id} approved by ${approved.decisions.map((d) => d.approver.name).join(', ')}; access until ${approved.validUntil}`)
    return approved
  } catch (err) {
    spin.stop()
    throw err
  }
}
