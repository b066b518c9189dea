import {Flags} from '@oclif/core'
import type {SessionListItem} from '../../src/audit/sessions.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'
import {formatSessions, listSessions} from '../../src/client/sessions.js'

export default class SessionsList extends HoopCommand {
  static override summary = 'List recorded sessions, newest first.'
  static override description = `Asks the gateway (as an auditor), or reads its data dir on the gateway host (--data-dir), and lists sessions: id, start time, who connected to which connection, how it ended and how much was recorded. Filter by connection or subject; replay one with \`hoop sessions show ID\`.`
  static override examples = ['<%= config.bin %> sessions list', '<%= config.bin %> sessions list --data-dir /var/lib/hoop', '<%= config.bin %> sessions list --connection prod-db --limit 20 --json']
  static override flags = {
    limit: Flags.integer({summary: 'At most this many sessions.', default: 50}),
    connection: Flags.string({summary: 'Only this connection.'}),
    user: Flags.string({summary: 'Only this subject.'}),
    'data-dir': Flags.string({char: 'd', summary: "Read this gateway data dir directly (on the gateway host). Without it, ask the gateway (auditor identity).", env: 'HOOP_DATA_DIR'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<SessionListItem[]> {
    const {flags} = await this.parse(SessionsList)
    const list = await listSessions({dataDir: flags['data-dir'], gateway: flags.gateway, token: flags.token, limit: flags.limit, connection: flags.connection, user: flags.user})
    if (!this.jsonEnabled()) this.log(formatSessions(list))
    return list
  }
}
