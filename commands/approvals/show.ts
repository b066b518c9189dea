import {Args} from '@oclif/core'
import {ApprovalsClient, approvalDetail, type ApprovalView} from '../../src/client/approvals.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'

export default class ApprovalsShow extends HoopCommand {
  static override summary = 'Show one approval request: statement, requester, rule and decisions.'
  static override description = `Shows what was asked (the statement, or the time-boxed access requested), who asked and why, the policy rule that sent it for review, how many approvals it needs, the decisions so far and when it expires. Requesters may see their own requests; approvers those they may decide.`
  static override examples = ['<%= config.bin %> approvals show apr_Xk3v9QpL2mZa', '<%= config.bin %> approvals show apr_Xk3v9QpL2mZa --json']
  static override args = {id: Args.string({description: 'Approval id (apr_...).', required: true})}
  static override flags = {
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<ApprovalView> {
    const {args, flags} = await this.parse(ApprovalsShow)
    const approval = await (await ApprovalsClient.open(flags)).show(args.id)
    this.log(approvalDetail(approval))
    return approval
  }
}
