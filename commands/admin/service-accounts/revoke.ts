import {Args} from '@oclif/core'
import {adminClient} from '../../../src/client/admin.js'
import {adminFlags, adminTarget} from '../../../src/client/admin-flags.js'
import {HoopCommand} from '../../../src/client/command.js'

export default class Revoke extends HoopCommand {
  static override summary = 'Revoke a service account: its secret stops working at once.'
  static override description = `Every request made with the account's key is refused from now on (CI jobs and applications get exit code 11, TOKEN_REJECTED). Through the gateway the revocation is recorded in the audit log as an admin change. Create a new account with \`hoop admin service-accounts create\` to rotate a key.`
  static override examples = ['<%= config.bin %> admin service-accounts revoke NAME', '<%= config.bin %> admin service-accounts revoke NAME --data-dir /var/lib/hoop']
  static override args = {name: Args.string({description: 'Name to revoke.', required: true})}
  static override flags = {...adminFlags}

  async run(): Promise<{name: string; revokedAt?: string}> {
    const {args, flags} = await this.parse(Revoke)
    const rec = await (await adminClient(adminTarget(flags))).revokeServiceAccount(args.name)
    this.log(`Revoked a service account "${rec.name}" at ${rec.revokedAt}.`)
    return rec
  }
}
