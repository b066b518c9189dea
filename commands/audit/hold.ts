import {Flags} from '@oclif/core'
import {runHold} from '../../src/audit/cli.js'
import type {HoldResult} from '../../src/audit/retention.js'
import {HoopCommand} from '../../src/client/command.js'

export default class AuditHold extends HoopCommand {
  static override summary = 'Place or release a legal hold: the payloads of a connection or a user do not expire and are not erased.'
  static override description = `Run on the gateway host by its operator (admin). A hold stops payload retention (audit.retention.payloads) and erasure for every event of the connection or user until it is released; placing and releasing it are audit events (audit.hold), listed in the evidence package's summary. Holds can also be set in the gateway config (audit.retention.holds).`

  static override examples = [
    {description: 'Hold a connection', command: '<%= config.bin %> audit hold --connection prod-db --reason "litigation 2024-17" --data-dir /var/lib/hoop'},
    {description: 'On the PostgreSQL store of a gateway (and its replicas)', command: '<%= config.bin %> audit hold --user alice@example.com --reason "litigation 2024-17" --config /etc/hoop/gateway.yaml'},
    {description: 'Release it', command: '<%= config.bin %> audit hold --connection prod-db --release --reason "case closed" --data-dir /var/lib/hoop --json'},
  ]

  static override flags = {
    connection: Flags.string({summary: 'Hold the payloads of this connection.', exclusive: ['user']}),
    user: Flags.string({summary: "Hold the payloads of this user's events (the identity's subject).", exclusive: ['connection']}),
    release: Flags.boolean({summary: 'Release the hold instead of placing it.'}),
    reason: Flags.string({summary: 'Why (recorded in the audit.hold event).', required: true}),
    'data-dir': Flags.string({char: 'd', summary: 'The gateway data dir (on the gateway host).', env: 'HOOP_DATA_DIR'}),
    config: Flags.string({summary: "Work on the store this gateway config names (its PostgreSQL store, or SQLite in its data dir); the config's legal holds apply."}),
  }

  async run(): Promise<HoldResult> {
    const {flags} = await this.parse(AuditHold)
    const r = await runHold({dataDir: flags['data-dir'], config: flags.config, connection: flags.connection, user: flags.user, reason: flags.reason, release: flags.release})
    this.log(`${r.action === 'place' ? 'Placed' : 'Released'} a legal hold on ${r.scope} ${r.target}`)
    this.log(`  holds in force: ${r.holds.length ? r.holds.map((h) => `${h.scope} ${h.target}`).join(', ') : 'none'}`)
    return r
  }
}
