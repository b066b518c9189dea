import {Args, Flags} from '@oclif/core'
import chalk from 'chalk'
import {spinner} from '../src/client/approvals.js'
import {HoopCommand} from '../src/client/command.js'
import {resolveBearer} from '../src/client/credentials.js'
import {execSql, readSqlInput, renderCsv, renderTable, waitingLine, type ExecResult} from '../src/client/exec.js'
import {gatewayFlag, tokenFlag} from '../src/client/flags.js'
import {resolveGateways} from '../src/client/gateways.js'
import {HoopError} from '../src/shared/errors.js'
import {redact} from '../src/shared/log.js'

export default class Exec extends HoopCommand {
  static override summary = 'Run SQL on a connection through the gateway and print the results.'
  static override description = `The SQL goes through the same policy as any session: guardrails block (exit 16), masking applies, and a statement that needs review exits 17 with the approval id and the command an approver runs. Once approved, run the same SQL again: a one-time approval covers that exact text, once. With --wait, exec waits for the decision (a spinner on a terminal) and runs it then. The input is sent as one query, like psql -c. PostgreSQL connections only, for now.

With --json the result has the approval that authorised the statement as "approvalId" (and every approval used in "approvals"); a statement waiting for review exits 17 with {"error": {"code", "message", "approvalId"}}.

With several replicas of one gateway (--gateway URL1,URL2, or HOOP_GATEWAY the same way), exec uses the first in list order that answers; your login is the one stored for the first URL (docs/ha.md).

Exit codes: 0 ok, 16 blocked by policy, 17 approval required (or rejected/expired while waiting), 25 the database refused the statement, others as in docs/errors.md.`

  static override examples = [
    '<%= config.bin %> exec db -e "select count(*) from orders"',
    {description: 'From a file, as CSV', command: '<%= config.bin %> exec db --file report.sql --csv > report.csv'},
    {description: 'From stdin, as JSON', command: 'echo "select 1" | <%= config.bin %> exec db --json'},
    {description: 'Two replicas of one gateway: runs on the second when the first is down', command: '<%= config.bin %> exec db -e "select 1" --gateway https://gw-a.example.com,https://gw-b.example.com'},
    {description: 'A write that needs review: wait for the approver, then run it', command: '<%= config.bin %> exec prod -e "update plans set tier = 2 where id = 7" --wait'},
  ]

  static override args = {
    name: Args.string({description: 'Connection name (see `hoop connections`).', required: true}),
  }

  static override flags = {
    execute: Flags.string({char: 'e', summary: 'SQL to run.', exclusive: ['file']}),
    file: Flags.string({char: 'f', summary: 'Read the SQL from this file.', exclusive: ['execute']}),
    wait: Flags.boolean({char: 'w', summary: 'When review is required, wait for the decision and then run the SQL.'}),
    csv: Flags.boolean({summary: 'Print result rows as CSV (RFC 4180).', exclusive: ['json']}),
    user: Flags.string({char: 'U', summary: 'Database user (default: the connection\'s username).'}),
    database: Flags.string({char: 'd', summary: 'Database (default: the connection\'s database).'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  /** With --json, a statement waiting for review gives its approval id as a field of the error too. */
  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof HoopError && this.jsonEnabled() && typeof err.details?.approvalId === 'string') {
      this.logJson({error: {code: err.code, message: redact(err.message), approvalId: err.details.approvalId}})
      this.exit(err.exitCode)
    }
    return super.catch(err)
  }

  async run(): Promise<ExecResult> {
    const {args, flags} = await this.parse(Exec)
    const {identity: gateway, replicas} = resolveGateways(flags.gateway)
    const sql = await readSqlInput({execute: flags.execute, file: flags.file})
    const spin = flags.wait ? spinner(process.stderr) : undefined
    try {
      const result = await execSql({
        gateways: replicas,
        connection: args.name,
        bearer: () => resolveBearer({gateway, replicas, token: flags.token}),
        sql,
        user: flags.user,
        database: flags.database,
        wait: flags.wait,
        onWaiting: (a) => spin?.update(waitingLine(a)),
        onApproved: (a) => spin?.stop(`${chalk.green('✔')} ${a.id} approved by ${a.decisions.map((d) => d.approver.name).join(', ')}; running`),
      })
      if (flags.csv) process.stdout.write(renderCsv(result.statements))
      else if (!this.jsonEnabled()) this.log(renderTable(result.statements))
      return result
    } finally {
      spin?.stop()
    }
  }
}
