import {adminClient} from '../../../src/client/admin.js'
import {adminFlags, adminTarget} from '../../../src/client/admin-flags.js'
import {HoopCommand} from '../../../src/client/command.js'
import {table} from '../../../src/client/table.js'
import type {ServiceAccountRecord} from '../../../src/store/types.js'

export default class List extends HoopCommand {
  static override summary = 'List service accounts and their groups.'
  static override description = `Lists every service account with its groups (which policy rules match on), whether it is active or revoked, and when it was created. Secrets are never shown again after creation.`
  static override examples = ['<%= config.bin %> admin service-accounts list', '<%= config.bin %> admin service-accounts list --json']
  static override flags = {...adminFlags}

  async run(): Promise<{serviceAccounts: ServiceAccountRecord[]}> {
    const {flags} = await this.parse(List)
    const serviceAccounts = await (await adminClient(adminTarget(flags))).listServiceAccounts()
    this.log(
      table(['name', 'groups', 'status', 'created'], serviceAccounts.map((s) => [s.name, s.groups.join(',') || '-', s.revokedAt ? 'revoked' : 'active', s.createdAt])),
    )
    return {serviceAccounts}
  }
}
