import {Args} from '@oclif/core'
import {adminClient} from '../../../src/client/admin.js'
import {adminFlags, adminTarget} from '../../../src/client/admin-flags.js'
import {HoopCommand} from '../../../src/client/command.js'

export default class Create extends HoopCommand {
  static override summary = 'Create an agent and print its secret once.'
  static override description = `The secret is shown only now; the gateway keeps a SHA-256 hash of it. Store it in your secret manager. With --data-dir (or --config, for a gateway whose config names a PostgreSQL store) this works on the gateway host without any credential, which is how the first admin credential is made.`

  static override examples = [
    {description: 'On a running gateway (admin identity)', command: '<%= config.bin %> admin agents create db-agent'},
    {description: 'On the gateway host, before any admin exists', command: '<%= config.bin %> admin agents create db-agent --data-dir ~/.local/share/hoop --json'},
  ]

  static override args = {name: Args.string({description: 'Name (lower-case letters, digits, "-", "_", ".").', required: true})}
  static override flags = {...adminFlags}

  async run(): Promise<{name: string; token: string}> {
    const {args, flags} = await this.parse(Create)
    const client = await adminClient(adminTarget(flags))
    const created = await client.createAgent(args.name)
    this.log(`Created an agent "${created.name}". Its secret, shown only once:`)
    this.log('')
    this.log(`  ${created.token}`)
    this.log('')
    this.log('Run the agent with:  HOOP_AGENT_TOKEN=<secret> hoop agent --gateway <url>')
    return created
  }
}
