import {Args, Flags} from '@oclif/core'
import {renderVerify, runVerify, verifyError} from '../../src/audit/cli.js'
import type {VerifyResult} from '../../src/audit/verify.js'
import {verifyLiveOnGateway} from '../../src/client/audit.js'
import {HoopCommand} from '../../src/client/command.js'
import {HoopError} from '../../src/shared/errors.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'

export default class AuditVerify extends HoopCommand {
  static override summary = 'Verify an evidence package offline, or the gateway store with --live.'
  static override description = `Checks the manifest hashes and signature, the signed tree head, every event's chain link, that the events rebuild the signed Merkle root, that earlier checkpoints (and --previous) are consistent with it, that every --anchor (a head the gateway published: its witness file, a sink's file, a later tree-head.json, a timestamp token) is consistent with it, and that the reports match the events. Needs nothing but the package. Without --public-key it verifies against the key inside the package and says so: pin the gateway's key (\`hoop audit key\`) to rule out a re-signed forgery. Exits 0 only when everything holds, and 19 otherwise, naming the first bad record and why.`

  static override examples = [
    {description: 'Pin the gateway key', command: '<%= config.bin %> audit verify evidence.tar.gz --public-key gateway-audit.pem'},
    {description: 'Prove the log only grew since an earlier package', command: '<%= config.bin %> audit verify q2.tar.gz --public-key k.pem --previous q1-tree-head.json'},
    {description: 'Check the gateway store itself', command: '<%= config.bin %> audit verify --live --data-dir /var/lib/hoop'},
    {description: 'Check the store against the heads the gateway published (its witness file)', command: '<%= config.bin %> audit verify --live --data-dir /var/lib/hoop --public-key k.pem --anchor /mnt/witness/hoop-witness.jsonl'},
    {description: 'Check a package against a later published head with its timestamp token', command: '<%= config.bin %> audit verify q2.tar.gz --public-key k.pem --anchor head.json --anchor head.tsr --tsa-ca tsa-ca.pem'},
  ]

  static override args = {package: Args.string({description: 'Evidence package (.tar.gz) written by `hoop audit export`.'})}
  static override flags = {
    'public-key': Flags.string({summary: 'PEM file with the gateway audit public key to pin.'}),
    previous: Flags.string({summary: 'An earlier tree-head.json: check this package is consistent with it.'}),
    anchor: Flags.string({
      summary: 'A head the gateway published: a tree-head.json, its witness file, a JSONL sink file, or an RFC 3161 token (with its head). Repeatable.',
      description: 'The store or package must be consistent with every anchor (RFC 6962 consistency from the anchor to what is verified): a store rolled back, cut short or rewritten before a published head fails here, with nothing else kept.',
      multiple: true,
    }),
    'tsa-ca': Flags.string({summary: "PEM file with the timestamp authority's CA certificate(s): anchors' timestamp tokens must chain to it."}),
    live: Flags.boolean({summary: "Verify the gateway's own store instead of a package.", default: false}),
    'data-dir': Flags.string({char: 'd', summary: 'With --live: verify this data dir directly (on the gateway host). Without it, the gateway verifies its store (auditor identity).', env: 'HOOP_DATA_DIR'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<VerifyResult> {
    const {args, flags} = await this.parse(AuditVerify)
    if (flags.live && !flags['data-dir'] && !args.package && flags.anchor?.length) {
      throw new HoopError('INVALID_INPUT', '--anchor with --live needs --data-dir (on the gateway host); elsewhere, export a package (`hoop audit export`) and verify it with --anchor')
    }
    const r =
      flags.live && !flags['data-dir'] && !args.package
        ? await verifyLiveOnGateway(flags)
        : await runVerify({pkg: args.package, live: flags.live, dataDir: flags['data-dir'], publicKey: flags['public-key'], previous: flags.previous, anchors: flags.anchor, tsaCa: flags['tsa-ca']})
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
