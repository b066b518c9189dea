import {Flags} from '@oclif/core'
import {APPROVAL_STATES} from '../../src/approvals/types.js'
import {ApprovalsClient, approvalsTable, type ApprovalView} from '../../src/client/approvals.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'

export default class ApprovalsList extends HoopCommand {
  static override summary = 'List approval requests you made or may decide.'
  static override description = `Shows pending requests by default: statements waiting for review and time-boxed access requests, with requester, connection, rule, approvals so far and age. Approvers see the requests they may decide; requesters see their own.`

  static override examples = [
    '<%= config.bin %> approvals list',
    {description: 'Everything, as JSON', command: '<%= config.bin %> approvals list --state all --json'},
    {description: 'Only your own requests', command: '<%= config.bin %> approvals list --mine --state all'},
  ]

  static override flags = {
    state: Flags.string({summary: 'Which requests to list.', options: [...APPROVAL_STATES, 'all'], default: 'pending'}),
    mine: Flags.boolean({summary: 'Only requests you made.'}),
    limit: Flags.integer({summary: 'At most this many (newest first).', min: 1, max: 1000, default: 100}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<{approvals: ApprovalView[]}> {
    const {flags} = await this.parse(ApprovalsList)
    const client = await ApprovalsClient.open(flags)
    const approvals = await client.list({state: flags.state as (typeof APPROVAL_STATES)[number] | 'all', mine: flags.mine, limit: flags.limit})
    this.log(approvals.length === 0 ? `No ${flags.state === 'all' ? '' : flags.state + ' '}approval requests for you.` : approvalsTable(approvals))
    return {approvals}
  }
}
