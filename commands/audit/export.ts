import {Flags} from '@oclif/core'
import {runExport} from '../../src/audit/cli.js'
import type {ExportSummary} from '../../src/audit/export.js'
import {exportFromGateway} from '../../src/client/audit.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../../src/client/flags.js'

export default class AuditExport extends HoopCommand {
  static override summary = 'Write an evidence package (tar.gz) for an auditor.'
  static override description = `Asks the gateway (as an auditor) or reads the data dir on the gateway host (--data-dir), and writes a package with the chronological session log, the approval audit and the masking report (JSONL and CSV), the raw signed events, the Merkle proofs for the range, the signed tree head, the public key and its fingerprint, a manifest with the SHA-256 of every file, and a summary mapping the contents to ISO/IEC 27001. Events in the time range that do not match --connection/--user are included as Merkle leaf hashes only, so the range stays complete without disclosing them. Check it with \`hoop audit verify\`.`

  static override examples = [
    {description: 'Everything, through the gateway, as an auditor', command: '<%= config.bin %> audit export --out evidence.tar.gz'},
    {description: 'Everything, on the gateway host', command: '<%= config.bin %> audit export --out evidence.tar.gz --data-dir /var/lib/hoop'},
    {description: 'One quarter, one connection', command: '<%= config.bin %> audit export --from 2024-01-01 --to 2024-03-31T23:59:59Z --connection prod-db --out q1.tar.gz'},
    {description: 'One user', command: '<%= config.bin %> audit export --user alice@example.com --out alice.tar.gz --json'},
  ]

  static override flags = {
    out: Flags.string({char: 'o', summary: 'Package file to write (.tar.gz).', required: true}),
    from: Flags.string({summary: 'Start of the time range (date or ISO 8601 time, inclusive).'}),
    to: Flags.string({summary: 'End of the time range (date or ISO 8601 time, inclusive).'}),
    connection: Flags.string({summary: 'Only this connection (others appear as leaf hashes).'}),
    user: Flags.string({summary: 'Only this user: subject, name or email (others appear as leaf hashes).'}),
    'data-dir': Flags.string({char: 'd', summary: "Export from this gateway data dir directly (on the gateway host). Without it, the gateway builds the package (auditor identity).", env: 'HOOP_DATA_DIR'}),
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<ExportSummary> {
    const {flags} = await this.parse(AuditExport)
    const s = flags['data-dir']
      ? await runExport({...flags, dataDir: flags['data-dir'], generator: `hoop ${this.config.version}`, progress: !this.jsonEnabled() && Boolean(process.stderr.isTTY)})
      : await exportFromGateway(flags)
    this.log(`Wrote ${s.out} (${s.bytes} bytes, sha256 ${s.sha256})`)
    this.log(`  events ${s.firstSeq ?? '-'}..${s.lastSeq ?? '-'}: ${s.events} included, ${s.redacted} as leaf hashes; ${s.sessions} sessions, ${s.approvals} approval rows, ${s.maskingRows} masking rows`)
    this.log(`  tree size ${s.treeSize}, root ${s.rootHash}${s.signedNow ? ' (signed now)' : ''}`)
    if (s.anchors !== undefined) this.log(`  ${s.anchors} published tree head(s) included with their consistency proofs (anchors.jsonl)`)
    this.log(`  key fingerprint ${s.fingerprint}`)
    if ('replica' in s) this.log(`  built by gateway replica ${s.replica}`)
    return s
  }
}
