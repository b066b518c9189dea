import {Flags} from '@oclif/core'
import {HoopCommand} from '../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../src/client/flags.js'
import {formatWhoami, runWhoami, type WhoamiResult} from '../src/client/login.js'
import {CREDENTIAL_STORE_CHOICES, parseStoreChoice} from '../src/identity/token-store.js'

export default class Whoami extends HoopCommand {
  static override summary = 'Show the identity the gateway sees for you: subject, email, groups, issuer and expiry.'
  static override description =
    'Sends the credential this CLI would use (HOOP_TOKEN, client credentials, a CI ID token, or your login) to the gateway, which verifies it and answers with the identity.'
  static override examples = ['<%= config.bin %> whoami', '<%= config.bin %> whoami --json', 'HOOP_ID_TOKEN_FILE=/tmp/ci-token <%= config.bin %> whoami']
  static override flags = {
    gateway: gatewayFlag,
    token: tokenFlag,
    'credential-store': Flags.string({
      summary: 'Where tokens are kept: auto, keychain, or file.',
      options: [...CREDENTIAL_STORE_CHOICES],
      env: 'HOOP_CREDENTIAL_STORE',
    }),
  }

  async run(): Promise<WhoamiResult> {
    const {flags} = await this.parse(Whoami)
    const result = await runWhoami({gateway: flags.gateway, token: flags.token, credentialStore: parseStoreChoice(flags['credential-store'])})
    if (!this.jsonEnabled()) for (const line of formatWhoami(result)) this.log(line)
    return result
  }
}
