import {Flags} from '@oclif/core'
import {HoopCommand} from '../src/client/command.js'
import {resolveGatewayUrl} from '../src/client/credentials.js'
import {gatewayFlag} from '../src/client/flags.js'
import {runLogout, type LogoutResult} from '../src/client/login.js'
import {CREDENTIAL_STORE_CHOICES, parseStoreChoice} from '../src/identity/token-store.js'

export default class Logout extends HoopCommand {
  static override summary = 'Log out of a gateway: revoke the tokens at the issuer where supported and delete them locally.'
  static override description = `Revokes the refresh and access tokens at the identity provider (RFC 7009) when it offers a revocation endpoint, then deletes them from the keychain or the credential file. Other gateways' logins are kept. Without a login to this gateway it does nothing and says so.`
  static override examples = ['<%= config.bin %> logout', '<%= config.bin %> logout --gateway https://hoop.example.com --json']
  static override flags = {
    gateway: gatewayFlag,
    revoke: Flags.boolean({summary: 'Revoke the tokens at the issuer (RFC 7009) before deleting them (--no-revoke to only delete).', default: true, allowNo: true}),
    'credential-store': Flags.string({
      summary: 'Where tokens are kept: auto, keychain, or file.',
      options: [...CREDENTIAL_STORE_CHOICES],
      env: 'HOOP_CREDENTIAL_STORE',
    }),
  }

  async run(): Promise<LogoutResult> {
    const {flags} = await this.parse(Logout)
    return runLogout({gateway: resolveGatewayUrl(flags.gateway), credentialStore: parseStoreChoice(flags['credential-store']), revoke: flags.revoke})
  }
}
