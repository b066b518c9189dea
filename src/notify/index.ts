// Approval notifications by webhook: config, payloads and signatures, delivery (docs/notifications.md).
export {NOTIFY_EVENTS, type NotifyEventType, type NotifySettings, parseNotifySettings, type WebhookSettings} from './config.js'
export {consoleUrlOf, jsonPayload, MAX_JSON_STATEMENT, MAX_SLACK_STATEMENT, type NotifyEvent, notifyEvent, SIGNATURE_HEADER, signatureHeader, slackPayload, verifySignature} from './payload.js'
export {type DeliveryOutcome, Notifier, type NotifierOptions} from './webhooks.js'
