import {adminClient} from '../../../src/client/admin.js'
import {adminFlags, adminTarget} from '../../../src/client/admin-flags.js'
import {HoopCommand} from '../../../src/client/command.js'
import {table} from '../../../src/client/table.js'
import type {AgentRecord} from '../../../src/store/types.js'

export default class List extends HoopCommand {
  static override summary = 'List agents, whether they are online, and revoked ones.'
  static override description = `Lists every agent the gateway knows: name, status (online, offline or revoked), when it was created and when it was last seen. Through the gateway (your login or an admin service account) the status is live; with --data-dir, on the gateway host, it is read from the store, which cannot tell online from offline, so a live agent shows "-".`
  static override examples = ['<%= config.bin %> admin agents list', '<%= config.bin %> admin agents list --json']
  static override flags = {...adminFlags}

  async run(): Promise<{agents: Array<AgentRecord & {online?: boolean}>}> {
    const {flags} = await this.parse(List)
    const agents = await (await adminClient(adminTarget(flags))).listAgents()
    const status = (a: AgentRecord & {online?: boolean}) => (a.revokedAt ? 'revoked' : a.online === undefined ? '-' : a.online ? 'online' : 'offline')
    this.log(table(['name', 'status', 'created', 'last seen'], agents.map((a) => [a.name, status(a), a.createdAt, a.lastSeenAt ?? '-'])))
    return {agents}
  }
}
