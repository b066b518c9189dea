import {Flags} from '@oclif/core'
import {HoopCommand} from '../src/client/command.js'
import {gatewayFlag} from '../src/client/flags.js'
import {resolveGateways} from '../src/client/gateways.js'
import {runLogin, type LoginResult} from '../src/client/login.js'
import {CREDENTIAL_STORE_CHOICES, parseStoreChoice} from '../src/identity/token-store.js'

export default class Login extends HoopCommand {
  static override summary = 'Log in to a gateway with your organisation\'s identity provider (OIDC device flow).'
  static override description = `Reads the gateway's public auth settings from /.well-known/hoop-configuration, then runs the OAuth 2.0 device authorization grant (RFC 8628): it shows a URL and a code, opens a browser unless --no-browser, and waits while you confirm. Tokens are kept per gateway URL (for a comma-separated list of one gateway's replicas: under the first URL, and the list is remembered for later commands) in the OS keychain, or in a 0600 file under $XDG_CONFIG_HOME/hoop where no keychain exists. Access tokens are renewed silently with the refresh token.

With a dev-mode gateway (\`hoop gateway --dev\`) on this machine, --dev-user EMAIL signs in as that demo user without a browser, for scripts and tests; it is refused for any other gateway.

Headless use (CI, services) needs no login: set HOOP_TOKEN (service-account key), HOOP_CLIENT_ID/HOOP_CLIENT_SECRET (client credentials) or HOOP_ID_TOKEN/HOOP_ID_TOKEN_FILE (CI workload identity).`
  static override examples = [
    '<%= config.bin %> login --gateway https://hoop.example.com',
    '<%= config.bin %> login --gateway http://127.0.0.1:8009 --no-browser',
    '<%= config.bin %> login --credential-store file --json',
    {description: 'One login for two replicas of one gateway (stored under the first URL)', command: '<%= config.bin %> login --gateway https://gw-a.example.com,https://gw-b.example.com'},
    {description: 'Sign in to a local dev-mode gateway as a demo user, without a browser', command: '<%= config.bin %> login --dev-user engineer@example.com'},
    {description: 'A second person on the same machine (see HOOP_PROFILE)', command: 'HOOP_PROFILE=approver <%= config.bin %> login --dev-user approver@example.com'},
  ]
  static override flags = {
    gateway: gatewayFlag,
    browser: Flags.boolean({summary: 'Open the verification page in a browser (--no-browser to only print it).', default: true, allowNo: true}),
    'dev-user': Flags.string({
      summary: 'Sign in as this demo user without a browser (a dev-mode gateway on loopback only).',
      description: 'Completes the device flow against the gateway\'s embedded dev identity provider, as a person picking the user on its page would. Refused unless the gateway runs with --dev on 127.0.0.1, localhost or ::1.',
    }),
    'credential-store': Flags.string({
      summary: 'Where to keep tokens: auto (keychain, else file), keychain, or file.',
      options: [...CREDENTIAL_STORE_CHOICES],
      env: 'HOOP_CREDENTIAL_STORE',
    }),
  }

  async run(): Promise<LoginResult> {
    const {flags} = await this.parse(Login)
    const {identity, replicas} = resolveGateways(flags.gateway)
    return runLogin({
      gateway: identity,
      replicas,
      browser: flags.browser,
      credentialStore: parseStoreChoice(flags['credential-store']),
      devUser: flags['dev-user'],
    })
  }
}
