import {Args} from '@oclif/core'
import {adminClient} from '../../../src/client/admin.js'
import {adminFlags, adminTarget} from '../../../src/client/admin-flags.js'
import {HoopCommand} from '../../../src/client/command.js'

export default class Revoke extends HoopCommand {
  static override summary = 'Revoke an agent: its secret stops working at once.'
  static override description = `The agent's secret is refused from now on, and a running gateway cuts the agent's live link within a few seconds; sessions it was carrying end. Through the gateway the revocation is recorded in the audit log as an admin change. Create a new agent with \`hoop admin agents create\` to replace it.`
  static override examples = ['<%= config.bin %> admin agents revoke NAME', '<%= config.bin %> admin agents revoke NAME --data-dir /var/lib/hoop']
  static override args = {name: Args.string({description: 'Name to revoke.', required: true})}
  static override flags = {...adminFlags}

  async run(): Promise<{name: string; revokedAt?: string}> {
    const {args, flags} = await this.parse(Revoke)
    const rec = await (await adminClient(adminTarget(flags))).revokeAgent(args.name)
    this.log(`Revoked an agent "${rec.name}" at ${rec.revokedAt}.`)
    return rec
  }
}
