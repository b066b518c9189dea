// What a webhook receives (docs/notifications.md): the generic JSON payload, the Slack
// incoming-webhook payload, and the HMAC signature over the raw body. Pure functions: no sockets,
// no clock of their own, so receivers' verification can be tested against exactly these bytes.
//
// Neither payload carries anything the gateway masks or keeps secret: an approval holds who asked,
// for what statement, under which rule and who decided why — never result rows, never target
// credentials. Statements are capped (a Slack message far shorter) and can be left out entirely.
import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto'
import type {ApprovalDecisionRecord, ApprovalEventKind, ApprovalRecord, ApprovalUse} from '../approvals/types.js'
import type {Identity} from '../identity/types.js'
import type {NotifyEventType} from './config.js'

/** One approval state change, as every webhook that subscribed to its type receives it. */
export interface NotifyEvent {
  /** `evt_...`: the same for every webhook and every retry; receivers dedupe on it. */
  id: string
  type: NotifyEventType
  /** ISO 8601, when the gateway saw the change. */
  time: string
  approval: ApprovalRecord
  /** The decision that made this event (partial, approved, rejected). */
  decision?: ApprovalDecisionRecord
  /** The statement run that made this event (used). */
  use?: ApprovalUse
}

export interface PayloadOptions {
  /** The approval's page in the web console. */
  consoleUrl: string
  /** Whether statement text goes in (its SHA-256 always does). */
  statement: boolean
}

/** Statement characters in a JSON payload; the full text is in the audit log and the console. */
export const MAX_JSON_STATEMENT = 64 * 1024
/** Statement characters in a Slack message (a section's text is limited to 3000). */
export const MAX_SLACK_STATEMENT = 500
const MAX_SLACK_FIELD = 300

const TYPE_OF: Record<ApprovalEventKind, NotifyEventType> = {
  requested: 'approval.requested',
  approval: 'approval.partial',
  approved: 'approval.approved',
  rejected: 'approval.rejected',
  expired: 'approval.expired',
  used: 'approval.used',
}

export function notifyEvent(kind: ApprovalEventKind, approval: ApprovalRecord, decision?: ApprovalDecisionRecord, use?: ApprovalUse, now = Date.now()): NotifyEvent {
  return {id: 'evt_' + randomBytes(12).toString('base64url'), type: TYPE_OF[kind], time: new Date(now).toISOString(), approval, decision, use}
}

/** `<publicUrl>/console/approvals/<id>`: the console's page for one approval. */
export function consoleUrlOf(publicUrl: string, id: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/console/approvals/${encodeURIComponent(id)}`
}

function truncate(text: string, max: number): {text: string; truncated: boolean} {
  return text.length <= max ? {text, truncated: false} : {text: text.slice(0, max - 1) + '…', truncated: true}
}

/** An identity as receivers see it: no groups, claims or token expiry. */
function person(i: Identity): {kind: string; subject: string; name: string; email?: string} {
  return {kind: i.kind, subject: i.subject, name: i.name, ...(i.email ? {email: i.email} : {})}
}

function decisionJson(d: ApprovalDecisionRecord): Record<string, unknown> {
  return {decision: d.decision, approver: person(d.approver), reason: d.reason, at: d.at}
}

/** The statement this event is about: the one that ran (used), else the request's. */
function statementOf(e: NotifyEvent): string | undefined {
  return e.use?.statement ?? e.approval.statement
}

/** The generic payload: snake_case JSON like the audit events, one object per delivery. */
export function jsonPayload(e: NotifyEvent, opts: PayloadOptions): string {
  const a = e.approval
  const stmt = statementOf(e)
  const text = stmt !== undefined && opts.statement ? truncate(stmt, MAX_JSON_STATEMENT) : undefined
  const approvals = a.decisions.filter((d) => d.decision === 'approve').length
  return JSON.stringify({
    id: e.id,
    type: e.type,
    time: e.time,
    console_url: opts.consoleUrl,
    approval: {
      id: a.id,
      state: a.state,
      scope: a.scope,
      connection: a.connection,
      rule_id: a.ruleId,
      requester: person(a.requester),
      reason: a.requestReason ?? null,
      statement: text?.text ?? null,
      statement_truncated: text?.truncated ?? false,
      statement_sha256: a.statementHash ?? null,
      approvals,
      approvals_required: a.approvalsRequired,
      duration_seconds: a.scope === 'session' ? (a.durationSeconds ?? a.ttlSeconds) : null,
      session: a.session ?? null,
      created_at: a.createdAt,
      expires_at: a.expiresAt,
      decided_at: a.decidedAt ?? null,
      valid_until: a.validUntil ?? null,
      decisions: a.decisions.map(decisionJson),
    },
    decision: e.decision ? decisionJson(e.decision) : null,
    use: e.use ? {session: e.use.session ?? null, at: e.use.at} : null,
  })
}

// ---------------------------------------------------------------------------------------------
// Slack (https://api.slack.com/messaging/webhooks, Block Kit): `text` for notifications and
// clients without blocks, blocks for the channel.

/** Slack's mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting#escaping): also stops `<!channel>` mentions. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function field(label: string, value: string): {type: 'mrkdwn'; text: string} {
  return {type: 'mrkdwn', text: `*${label}*\n${esc(truncate(value, MAX_SLACK_FIELD).text)}`}
}

const HEADLINE: Record<NotifyEventType, string> = {
  'approval.requested': 'Approval requested',
  'approval.partial': 'Approval given, more needed',
  'approval.approved': 'Approved',
  'approval.rejected': 'Rejected',
  'approval.expired': 'Approval expired',
  'approval.used': 'Approval used',
  'notification.test': 'Test notification from hoop',
}

function who(i: Identity): string {
  return i.name || i.subject
}

export function slackPayload(e: NotifyEvent, opts: PayloadOptions): string {
  const a = e.approval
  const approvals = a.decisions.filter((d) => d.decision === 'approve').length
  const what = a.scope === 'session' ? `time-boxed access (${a.durationSeconds ?? a.ttlSeconds}s)` : 'a statement'
  const summary = `${HEADLINE[e.type]}: ${who(a.requester)} asks for ${what} on ${a.connection} (rule ${a.ruleId}), ${a.id}`
  const fields = [
    field('Requester', who(a.requester)),
    field('Connection', a.connection),
    field('Rule', a.ruleId),
    field('Approvals', `${approvals} of ${a.approvalsRequired}`),
  ]
  if (e.decision) fields.push(field(e.decision.decision === 'approve' ? 'Approved by' : 'Rejected by', who(e.decision.approver)), field('Why', e.decision.reason))
  else if (a.state === 'pending') fields.push(field('Expires', a.expiresAt))
  if (a.requestReason) fields.push(field('Reason', a.requestReason))
  const blocks: unknown[] = [
    {type: 'section', text: {type: 'mrkdwn', text: `*${esc(HEADLINE[e.type])}* · \`${esc(a.id)}\` on *${esc(a.connection)}*`}},
    {type: 'section', fields: fields.slice(0, 10)},
  ]
  const stmt = statementOf(e)
  if (stmt !== undefined && opts.statement) {
    // A statement cannot close the code block early: break up any ``` in it.
    const shown = esc(truncate(stmt, MAX_SLACK_STATEMENT).text).replace(/```/g, '`\u200b``')
    blocks.push({type: 'section', text: {type: 'mrkdwn', text: '```' + shown + '```'}})
  }
  blocks.push({type: 'actions', elements: [{type: 'button', action_id: 'hoop-open-approval', text: {type: 'plain_text', text: 'Open in hoop'}, url: opts.consoleUrl}]})
  return JSON.stringify({text: esc(summary), blocks})
}

// ---------------------------------------------------------------------------------------------
// Signature: `Hoop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
// The timestamp is signed with the body, so a receiver that refuses old timestamps refuses replays.

export const SIGNATURE_HEADER = 'hoop-signature'

export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.`).update(body).digest('hex')
  return `t=${unixSeconds},v1=${mac}`
}

/**
 * What a receiver does (docs/notifications.md): recompute the MAC over the raw body, compare in
 * constant time, and refuse a timestamp further than `toleranceS` from its own clock.
 */
export function verifySignature(secret: string, header: string, body: string | Buffer, nowS = Math.floor(Date.now() / 1000), toleranceS = 300): boolean {
  const parts = new Map(header.split(',').map((p) => p.trim().split('=', 2) as [string, string]))
  const t = Number(parts.get('t'))
  const v1 = parts.get('v1') ?? ''
  if (!Number.isSafeInteger(t) || Math.abs(nowS - t) > toleranceS || !/^[0-9a-f]{64}$/.test(v1)) return false
  const want = createHmac('sha256', secret).update(`${t}.`).update(body).digest()
  return timingSafeEqual(want, Buffer.from(v1, 'hex'))
}
