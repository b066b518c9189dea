import {Args, Flags} from '@oclif/core'
import {approvalStatusLine} from '../../src/approvals/message.js'
import {decideApproval, type ApprovalView} from '../../src/client/approvals.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'

export default class ApprovalsReject extends HoopCommand {
  static override summary = 'Reject a request; it ends at once.'
  static override description = `You must be one of the rule's approvers and not the requester. One rejection ends the request; the requester has to ask again. Your identity, reason and the time are recorded.`

  static override examples = [
    '<%= config.bin %> approvals reject apr_Xk3v9QpL2mZa --reason "change ticket OPS-1234"',
    {description: 'Prompts for the reason on a terminal', command: '<%= config.bin %> approvals reject apr_Xk3v9QpL2mZa'},
  ]

  static override args = {id: Args.string({description: 'Approval id (apr_...).', required: true})}
  static override flags = {
    reason: Flags.string({char: 'r', summary: 'Justification, recorded with your decision (max 1000 characters).'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<ApprovalView> {
    const {args, flags} = await this.parse(ApprovalsReject)
    const approval = await decideApproval({...flags, id: args.id, decision: 'reject'})
    this.log(`${approval.id} ${approvalStatusLine(approval)}`)
    return approval
  }
}
