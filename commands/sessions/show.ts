import {Args, Flags} from '@oclif/core'
import type {SessionDetail} from '../../src/audit/sessions.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'
import {showSession} from '../../src/client/sessions.js'

export default class SessionsShow extends HoopCommand {
  static override summary = 'Replay a recorded session as the client saw it.'
  static override description = `Prints who connected to what and when, then every recorded exchange in order with its offset from the session start: what the client sent (>) and what the gateway answered (<), as it left the gateway, so masked values stay masked. Asks the gateway (as an auditor), or reads its data dir on the gateway host (--data-dir). --json gives the session record and its chunks instead of the text.`
  static override examples = ['<%= config.bin %> sessions show ses_AbCdEfGhIjKl', '<%= config.bin %> sessions show ses_AbCdEfGhIjKl --data-dir /var/lib/hoop', '<%= config.bin %> sessions show ses_AbCdEfGhIjKl --json']
  static override args = {id: Args.string({description: 'Session id (from `hoop sessions list`).', required: true})}
  static override flags = {
    'data-dir': Flags.string({char: 'd', summary: "Read this gateway data dir directly (on the gateway host). Without it, ask the gateway (auditor identity).", env: 'HOOP_DATA_DIR'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<SessionDetail> {
    const {args, flags} = await this.parse(SessionsShow)
    const {replay, ...detail} = await showSession({dataDir: flags['data-dir'], gateway: flags.gateway, token: flags.token, id: args.id})
    if (!this.jsonEnabled()) process.stdout.write(replay)
    return detail
  }
}
