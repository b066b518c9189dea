import {Flags} from '@oclif/core'
import {HoopCommand} from '../../src/client/command.js'
import {formatPolicyTest, type PolicyTestResult, testPolicy} from '../../src/client/policy.js'

export default class PolicyTest extends HoopCommand {
  static override summary = 'Ask a policy offline: may this subject use this connection, and run this statement or request?'
  static override description = `Prints the access decision and, with --sql (postgres, mysql) or --method/--path/--body (http), the statement or request decision (allow, block or review), each with the id of the rule that made it, the statements as the analyzer saw them, and the masking plan. The exit code is 0 whatever the decision; use --json and read "effect" in scripts. Name one subject: --user (with --group as often as needed), --service-account, or a CI identity (--ci-issuer and --claim NAME=VALUE).`

  static override examples = [
    '<%= config.bin %> policy test --policy policy.yaml --connection prod-db --user alice@example.com --group engineering',
    '<%= config.bin %> policy test --policy policy.yaml --connection prod-db --user alice@example.com --group engineering --sql "DELETE FROM orders"',
    '<%= config.bin %> policy test --config gateway.yaml --connection prod-db --service-account ci-bot --sql "select 1; drop table t" --json',
    '<%= config.bin %> policy test --policy policy.yaml --type http --connection api --method DELETE --path /v1/users/7 --user alice@example.com --group engineering',
    '<%= config.bin %> policy test --config gateway.yaml --connection billing-api --user bob@example.com --method POST --path /v1/refunds --body \'{"amount": 5000}\'',
    '<%= config.bin %> policy test --policy policy.yaml --connection staging-db --ci-issuer https://ci.example.com --claim repository=org/app --claim ref=refs/heads/main',
  ]

  static override flags = {
    policy: Flags.string({summary: 'Policy file.', exactlyOne: ['policy', 'config']}),
    config: Flags.string({summary: 'Gateway config whose policy section to use (also gives connection types).', exactlyOne: ['policy', 'config']}),
    connection: Flags.string({char: 'c', summary: 'Connection name.', required: true}),
    type: Flags.string({summary: 'Connection type (default: from --config, else postgres).', options: ['postgres', 'mysql', 'http', 'tcp']}),
    user: Flags.string({char: 'u', summary: 'User email (or subject).', helpGroup: 'SUBJECT'}),
    group: Flags.string({char: 'g', summary: 'Group of the subject; repeat for several.', multiple: true, helpGroup: 'SUBJECT'}),
    'service-account': Flags.string({summary: 'Service-account name.', helpGroup: 'SUBJECT'}),
    'ci-issuer': Flags.string({summary: 'CI token issuer URL.', helpGroup: 'SUBJECT'}),
    claim: Flags.string({summary: 'CI claim NAME=VALUE; repeat for several.', multiple: true, helpGroup: 'SUBJECT'}),
    sql: Flags.string({char: 's', summary: 'Statement(s) to judge, as the client would send them (postgres, mysql).', exclusive: ['method', 'path', 'body']}),
    method: Flags.string({summary: 'HTTP request method to judge (default GET).', helpGroup: 'HTTP REQUEST'}),
    path: Flags.string({summary: 'HTTP request path, with an optional ?query (default /).', helpGroup: 'HTTP REQUEST'}),
    body: Flags.string({summary: 'HTTP request body as JSON text (judged as application/json).', helpGroup: 'HTTP REQUEST'}),
  }

  async run(): Promise<PolicyTestResult> {
    const {flags} = await this.parse(PolicyTest)
    const result = await testPolicy({
      policy: flags.policy,
      config: flags.config,
      connection: flags.connection,
      type: flags.type,
      user: flags.user,
      groups: flags.group,
      serviceAccount: flags['service-account'],
      ciIssuer: flags['ci-issuer'],
      claims: flags.claim,
      sql: flags.sql,
      method: flags.method,
      path: flags.path,
      body: flags.body,
    })
    this.log(formatPolicyTest(result))
    return result
  }
}
