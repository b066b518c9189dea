import {Args, Flags} from '@oclif/core'
import {adminClient} from '../../../src/client/admin.js'
import {adminFlags, adminTarget} from '../../../src/client/admin-flags.js'
import {HoopCommand} from '../../../src/client/command.js'

export default class Create extends HoopCommand {
  static override summary = 'Create a service account and print its secret once.'
  static override description = `The secret is shown only now; the gateway keeps a SHA-256 hash of it. Store it in your secret manager. With --data-dir (or --config, for a gateway whose config names a PostgreSQL store) this works on the gateway host without any credential, which is how the first admin credential is made.`

  static override examples = [
    {description: 'A CI identity in the ci group', command: '<%= config.bin %> admin service-accounts create ci-deploy --group ci'},
    {description: 'The first admin, on the gateway host', command: '<%= config.bin %> admin service-accounts create root-admin --group admins --data-dir ~/.local/share/hoop'},
  ]

  static override args = {name: Args.string({description: 'Name (lower-case letters, digits, "-", "_", ".").', required: true})}
  static override flags = {...adminFlags,
    group: Flags.string({char: 'g', summary: 'Group membership (repeatable); policy rules match groups.', multiple: true, default: []}),}

  async run(): Promise<{name: string; token: string}> {
    const {args, flags} = await this.parse(Create)
    const client = await adminClient(adminTarget(flags))
    const created = await client.createServiceAccount(args.name, flags.group)
    this.log(`Created a service account "${created.name}". Its secret, shown only once:`)
    this.log('')
    this.log(`  ${created.token}`)
    this.log('')
    this.log('Use it with:  HOOP_TOKEN=<secret> hoop connect NAME')
    return created
  }
}
