import {Flags} from '@oclif/core'
import {runErase} from '../../src/audit/cli.js'
import type {ErasureResult} from '../../src/audit/retention.js'
import {HoopCommand} from '../../src/client/command.js'

export default class AuditErase extends HoopCommand {
  static override summary = "Erase the payloads (statement text, justifications, recordings) of a session or a user's events, keeping every proof."
  static override description = `Run on the gateway host by its operator (admin). Events commit to their payloads by hash, so erasing them leaves the hash chain, the Merkle proofs and the signed tree heads valid; each erasure is itself an audit event (audit.erasure: who, what, why, how many), and \`hoop audit verify\` reports "payload erased on DATE (event seq N)" for every erased payload. Payloads under a legal hold (\`hoop audit hold\`) are kept and counted. Events written before payloads were kept apart (envelope v1) cannot be erased without breaking the chain and are left as they are.`

  static override examples = [
    {description: 'One session', command: '<%= config.bin %> audit erase --session ses_01HX... --reason "GDPR request #12" --data-dir /var/lib/hoop'},
    {description: 'On the PostgreSQL store of a gateway (and its replicas)', command: '<%= config.bin %> audit erase --session ses_01HX... --reason "GDPR request #12" --config /etc/hoop/gateway.yaml'},
    {description: "Everything a user typed", command: '<%= config.bin %> audit erase --user alice@example.com --reason "left the company; data minimisation" --data-dir /var/lib/hoop --json'},
  ]

  static override flags = {
    session: Flags.string({summary: 'Erase the payloads of this session.', exclusive: ['user']}),
    user: Flags.string({summary: "Erase the payloads of this user's events (the identity's subject).", exclusive: ['session']}),
    reason: Flags.string({summary: 'Why (recorded in the audit.erasure event).', required: true}),
    'data-dir': Flags.string({char: 'd', summary: 'The gateway data dir (on the gateway host).', env: 'HOOP_DATA_DIR'}),
    config: Flags.string({summary: "Work on the store this gateway config names (its PostgreSQL store, or SQLite in its data dir); the config's legal holds apply."}),
  }

  async run(): Promise<ErasureResult> {
    const {flags} = await this.parse(AuditErase)
    const r = await runErase({dataDir: flags['data-dir'], config: flags.config, session: flags.session, user: flags.user, reason: flags.reason})
    this.log(`Erased ${r.removed} payload(s)${r.firstSeq ? ` (events seq ${r.firstSeq}..${r.lastSeq})` : ''} and ${r.recordings} recording(s) of ${r.scope} ${r.target}`)
    if (r.held > 0) this.log(`  ${r.held} payload(s) kept: under a legal hold`)
    this.log(flags.config ? '  recorded as an audit.erasure event' : '  recorded as an audit.erasure event (the gateway appends it within a second, or when it next starts)')
    return r
  }
}
