import {Flags} from '@oclif/core'
import {auditKey, type KeyInfo} from '../../src/audit/cli.js'
import {auditKeyFromGateway} from '../../src/client/audit.js'
import {HoopCommand} from '../../src/client/command.js'
import {gatewayFlag} from '../../src/client/flags.js'

export default class AuditKey extends HoopCommand {
  static override summary = 'Print the public key that signs audit tree heads, and its fingerprint.'
  static override description = `Give this key (or compare its fingerprint) to auditors so they can pin it with \`hoop audit verify --public-key\`. The fingerprint is the SHA-256 of the SubjectPublicKeyInfo DER, hex. The private key never leaves the data dir.`

  static override examples = ['<%= config.bin %> audit key --gateway https://gw.example.com > gateway-audit.pem', '<%= config.bin %> audit key --data-dir /var/lib/hoop > gateway-audit.pem', '<%= config.bin %> audit key --json']
  static override flags = {
    'data-dir': Flags.string({char: 'd', summary: 'Read the key from this gateway data dir (on the gateway host). Without it, ask the gateway.', env: 'HOOP_DATA_DIR'}),
    gateway: gatewayFlag,
  }

  async run(): Promise<KeyInfo> {
    const {flags} = await this.parse(AuditKey)
    const k = flags['data-dir'] ? await auditKey({dataDir: flags['data-dir']}) : await auditKeyFromGateway(flags.gateway)
    if (!this.jsonEnabled()) {
      process.stdout.write(k.publicKey)
      process.stderr.write(`fingerprint (SHA-256 of SPKI): ${k.fingerprint}\n`)
    }
    return k
  }
}
