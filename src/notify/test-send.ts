// `hoop admin notify-test`: one `notification.test` to each configured webhook (or the one named),
// through the same payloads, signatures and HTTP client the gateway uses, without retries, so an
// operator sees at once whether a receiver accepts and verifies what the gateway will send.
// Runs on the gateway host: the config's secret references are read there.
import type {ApprovalRecord} from '../approvals/types.js'
import {DEFAULT_LISTEN, type GatewayConfig} from '../shared/config.js'
import {HoopError} from '../shared/errors.js'
import {silentLogger} from '../shared/log.js'
import {parseNotifySettings, type WebhookFormat} from './config.js'
import {notifyEvent} from './payload.js'
import {Notifier} from './webhooks.js'

export interface TestSendResult {
  webhook: string
  format: WebhookFormat
  outcome: 'delivered' | 'failed'
  /** The receiver's status (`HTTP 204`) or why it failed; never the URL. */
  detail: string
}

/** A made-up request, marked as a test by its event type and its rule id. */
function sampleApproval(now: number): ApprovalRecord {
  return {
    id: 'apr_notifytest01' as ApprovalRecord['id'],
    state: 'pending',
    scope: 'statement',
    ruleId: 'hoop-notify-test',
    connection: 'example',
    requester: {kind: 'user', subject: 'hoop-notify-test', name: 'hoop admin notify-test', groups: []},
    statement: 'SELECT 1 -- test notification from hoop admin notify-test',
    approvalsRequired: 1,
    approvers: {},
    ttlSeconds: 3600,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3_600_000).toISOString(),
    decisions: [],
  }
}

export async function sendTestNotification(cfg: GatewayConfig, opts: {webhook?: string; version?: string} = {}): Promise<TestSendResult[]> {
  const settings = parseNotifySettings(cfg)
  const names = settings.webhooks.map((h) => h.name)
  if (names.length === 0) throw new HoopError('INVALID_INPUT', `${cfg.file ?? 'the config'} has no notifications.webhooks (docs/notifications.md)`)
  if (opts.webhook !== undefined && !names.includes(opts.webhook)) throw new HoopError('NOT_FOUND', `no webhook "${opts.webhook}" in ${cfg.file ?? 'the config'} (webhooks: ${names.join(', ')})`)
  const hooks = settings.webhooks.filter((h) => opts.webhook === undefined || h.name === opts.webhook).map((h) => ({...h, retries: 0}))
  const results = new Map<string, TestSendResult>()
  const notifier = new Notifier(
    {...settings, webhooks: hooks},
    {
      publicUrl: settings.publicUrl ?? `http://${cfg.listen ?? DEFAULT_LISTEN}`,
      logger: silentLogger,
      version: opts.version,
      onOutcome: (webhook, outcome, detail) => {
        if (outcome !== 'delivered' && outcome !== 'failed') return
        results.set(webhook, {webhook, format: hooks.find((h) => h.name === webhook)!.format, outcome, detail: detail ?? ''})
      },
    },
  )
  const now = Date.now()
  notifier.send({...notifyEvent('requested', sampleApproval(now), undefined, undefined, now), type: 'notification.test'}, () => true)
  await notifier.close(Math.max(...hooks.map((h) => h.timeoutMs)) + 1000)
  return hooks.map((h) => results.get(h.name) ?? {webhook: h.name, format: h.format, outcome: 'failed', detail: 'no answer in time'})
}
