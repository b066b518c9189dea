import {Flags} from '@oclif/core'
import {HoopCommand} from '../../src/client/command.js'
import {table} from '../../src/client/table.js'
import {sendTestNotification, type TestSendResult} from '../../src/notify/test-send.js'
import {loadGatewayConfig} from '../../src/shared/config.js'
import {HoopError} from '../../src/shared/errors.js'

export default class NotifyTest extends HoopCommand {
  static override summary = 'Send a test notification to the webhooks in a gateway config.'
  static override description = `Sends one notification of type notification.test to every webhook under notifications.webhooks in the config (or the one named with --webhook), signed and shaped exactly as the gateway's approval notifications, without retries. Run it on the gateway host: the config's secret references (env or file) are read there. Exits 28 (NOTIFY_FAILED) when a webhook refused it or could not be reached. See docs/notifications.md.`

  static override examples = [
    {description: 'Test every webhook', command: '<%= config.bin %> admin notify-test --config /etc/hoop/gateway.yaml'},
    {description: 'Test one webhook, as JSON', command: '<%= config.bin %> admin notify-test --config gw.yaml --webhook security --json'},
  ]

  static override flags = {
    config: Flags.string({char: 'c', summary: 'Gateway config file (YAML).', env: 'HOOP_CONFIG', required: true}),
    webhook: Flags.string({summary: 'Only this webhook (its name in the config).'}),
  }

  async run(): Promise<{results: TestSendResult[]}> {
    const {flags} = await this.parse(NotifyTest)
    const results = await sendTestNotification(loadGatewayConfig(flags.config), {webhook: flags.webhook, version: this.config.version})
    this.log(table(['webhook', 'format', 'outcome', 'detail'], results.map((r) => [r.webhook, r.format, r.outcome, r.detail])))
    const failed = results.filter((r) => r.outcome === 'failed')
    if (failed.length > 0) {
      throw new HoopError('NOTIFY_FAILED', `${failed.length} of ${results.length} webhook(s) did not take the test notification: ${failed.map((r) => `${r.webhook} (${r.detail})`).join(', ')}`)
    }
    return {results}
  }
}
