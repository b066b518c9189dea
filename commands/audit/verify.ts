import {Args, Flags} from '@oclif/core'
import {renderVerify, runVerify, verifyError} from '../../src/audit/cli.js'
import type {VerifyResult} from '../../src/audit/verify.js'
import {verifyLiveOnGateway} from '../../src/client/audit.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'

export default class AuditVerify extends HoopCommand {
  static override summary = 'Verify an evidence package offline, or the gateway store with --live.'
  static override description = `Checks the manifest hashes and signature, the signed tree head, every event's chain link, that the events rebuild the signed Merkle root, that earlier checkpoints (and --previous) are consistent with it, and that the reports match the events. Needs nothing but the package. Without --public-key it verifies against the key inside the package and says so: pin the gateway's key (\`hoop audit key\`) to rule out a re-signed forgery. Exits 0 only when everything holds, and 19 otherwise, naming the first bad record and why.`

  static override examples = [
    {description: 'Pin the gateway key', command: '<%= config.bin %> audit verify evidence.tar.gz --public-key gateway-audit.pem'},
    {description: 'Prove the log only grew since an earlier package', command: '<%= config.bin %> audit verify q2.tar.gz --public-key k.pem --previous q1-tree-head.json'},
    {description: 'Check the gateway store itself', command: '<%= config.bin %> audit verify --live --data-dir /var/lib/hoop'},
  ]

  static override args = {package: Args.string({description: 'Evidence package (.tar.gz) written by `hoop audit export`.'})}
  static override flags = {
    'public-key': Flags.string({summary: 'PEM file with the gateway audit public key to pin.'}),
    previous: Flags.string({summary: 'An earlier tree-head.json: check this package is consistent with it.'}),
    live: Flags.boolean({summary: "Verify the gateway's own store instead of a package.", default: false}),
    'data-dir': Flags.string({char: 'd', summary: 'With --live: verify this data dir directly (on the gateway host). Without it, the gateway verifies its store (auditor identity).', env: 'HOOP_DATA_DIR'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<VerifyResult> {
    const {args, flags} = await this.parse(AuditVerify)
    const r =
      flags.live && !flags['data-dir'] && !args.package
        ? await verifyLiveOnGateway(flags)
        : await runVerify({pkg: args.package, live: flags.live, dataDir: flags['data-dir'], publicKey: flags['public-key'], previous: flags.previous})
    if (this.jsonEnabled() && !r.ok) {
      // The full result is the JSON output; the exit code still says AUDIT_VERIFY_FAILED.
      process.exitCode = verifyError(r).exitCode
      return r
    }
    this.log(renderVerify(r, flags.live ? 'live store' : `package ${args.package}`))
    if (!r.ok) throw verifyError(r)
    return r
  }
}
