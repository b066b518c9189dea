import {Args, Flags} from '@oclif/core'
import {HoopCommand} from '../../src/client/command.js'
import {HoopError} from '../../src/shared/errors.js'
import {checkPolicyFile, formatPolicyCheck, type PolicyCheckResult} from '../../src/client/policy.js'

export default class PolicyCheck extends HoopCommand {
  static override summary = 'Validate a policy file; print every problem with its file and line.'
  static override description = `Exits 0 and prints "ok: N rules" when the file is valid. Otherwise prints each problem as FILE:LINE:COLUMN: what is wrong, all at once, and exits 18 (CONFIG_INVALID). With --config, FILE is a gateway config and its "policy:" section (inline, or a path) is checked. See docs/policy.md for the format.`

  static override examples = [
    '<%= config.bin %> policy check policy.yaml',
    '<%= config.bin %> policy check gateway.yaml --config',
    '<%= config.bin %> policy check policy.yaml --json',
  ]

  static override args = {
    file: Args.string({description: 'Policy file (or gateway config with --config).', required: true}),
  }

  static override flags = {
    config: Flags.boolean({summary: 'FILE is a gateway config; check its policy section.', default: false}),
  }

  async run(): Promise<PolicyCheckResult> {
    const {args, flags} = await this.parse(PolicyCheck)
    const result = checkPolicyFile(args.file, {config: flags.config})
    this.log(formatPolicyCheck(result))
    return result
  }

  // With --json, a failed check lists the problems as data as well as the message.
  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof HoopError && err.code === 'CONFIG_INVALID' && this.jsonEnabled()) {
      this.logJson({ok: false, error: {code: err.code, message: err.message}, problems: err.details?.problems ?? []})
      this.exit(err.exitCode)
    }
    return super.catch(err)
  }
}
