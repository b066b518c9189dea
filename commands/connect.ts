import {Args, Flags} from '@oclif/core'
import chalk from 'chalk'
import {GatewayApi} from '../src/client/api.js'
import {HoopCommand} from '../src/client/command.js'
import {ConnectClient} from '../src/client/connect.js'
import {resolveBearer} from '../src/client/credentials.js'
import {gatewayFlag, tokenFlag} from '../src/client/flags.js'
import {firstAnswering, resolveGateways} from '../src/client/gateways.js'
import {connectHint, loginNote} from '../src/client/session-hint.js'
import {requestAccessAndWait} from '../src/client/approvals.js'
import type {ConnectionView} from '../src/gateway/api.js'
import {DEFAULT_LOCAL_PORTS, type ConnectionType} from '../src/shared/config.js'
import type {HoopError} from '../src/shared/errors.js'
import {createLogger} from '../src/shared/log.js'

export default class Connect extends HoopCommand {
  static override summary = 'Open a local port that reaches a connection through the gateway.'
  static override description = `Listens on 127.0.0.1 and carries every accepted socket through the gateway to the connection's agent and target. Point your usual client (psql, mysql, curl, your app) at the local port. Default ports: postgres 5433, mysql 3307, http 8081, tcp 8999; --port 0 picks a free one. Runs until Ctrl-C.

With several replicas of one gateway (--gateway URL1,URL2, or HOOP_GATEWAY the same way), each new session goes to the replica that last worked, else the next in the list that accepts. A session open on a replica that dies ends (the local client sees the connection drop, and the error names the replica); connect keeps listening and the next session goes to a live replica. Your login is the one stored for the first URL (docs/ha.md).`

  static override examples = [
    {description: 'Reach the "db" connection, then use psql', command: '<%= config.bin %> connect db'},
    {description: 'Pick a free port and print it as JSON (for scripts)', command: '<%= config.bin %> connect db --port 0 --json'},
    {description: 'Ask for one hour of pre-approved writes, wait for an approver, then connect', command: '<%= config.bin %> connect db --request-access --reason "INC-4211 hotfix" --duration 1h'},
    {description: 'Fail over between two replicas of one gateway', command: '<%= config.bin %> connect db --gateway https://gw-a.example.com,https://gw-b.example.com'},
    {description: 'In CI with a service-account key', command: 'HOOP_TOKEN=hoop_sa_... <%= config.bin %> connect db --gateway https://gw.example.com'},
  ]

  static override args = {
    name: Args.string({description: 'Connection name (see `hoop connections`).', required: true}),
  }

  static override flags = {
    gateway: gatewayFlag,
    token: tokenFlag,
    port: Flags.integer({char: 'p', summary: 'Local port (default by type; 0 = any free port).', min: 0, max: 65535}),
    'request-access': Flags.boolean({summary: 'Ask for time-boxed approval first and wait (with a spinner) until an approver decides.', default: false}),
    reason: Flags.string({summary: 'Why you need access (with --request-access; prompted on a terminal if missing).', dependsOn: ['request-access']}),
    duration: Flags.string({summary: 'How long the access should last, e.g. 30m or 2h (with --request-access).', dependsOn: ['request-access']}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Connect)
    const {identity: gateway, replicas} = resolveGateways(flags.gateway)
    const bearer = () => resolveBearer({gateway, replicas, token: flags.token})
    const token = await bearer()
    const {value: info} = await firstAnswering(replicas, (g) => new GatewayApi(g, token).get<ConnectionView>(`/v1/connections/${encodeURIComponent(args.name)}`))
    if (flags['request-access']) {
      const grant = await requestAccessAndWait({gateway, token: flags.token, connection: args.name, reason: flags.reason, duration: flags.duration, interactive: Boolean(process.stdin.isTTY)})
      if (!this.jsonEnabled()) this.log(`${chalk.green('✔')} access approved (${grant.id})`)
    }
    const port = flags.port ?? DEFAULT_LOCAL_PORTS[info.type as ConnectionType] ?? 0
    const logger = createLogger({level: 'warn'})
    const client = await ConnectClient.start({gateways: replicas, connection: args.name, bearer, port, logger})
    const {host, port: actual} = client.address()
    const json = this.jsonEnabled()
    if (json) {
      process.stdout.write(JSON.stringify({connection: info.name, type: info.type, host, port: actual, gateway, replicas}) + '\n')
    } else {
      this.log(`${chalk.green('✔')} ${chalk.bold(info.name)} (${info.type}) via ${replicas.join(', ')} is listening on ${host}:${actual}`)
      if (!info.online) this.log(chalk.yellow(`  agent "${info.agent}" is offline right now; sessions will fail until it connects`))
      this.log(`  ${connectHint(info.type, host, actual, info)}`)
      const note = loginNote(info.type, info)
      if (note) this.log(chalk.dim(`  ${note}`))
      this.log(chalk.dim('  Press Ctrl-C to stop.'))
    }
    const note = (msg: string) => process.stderr.write((json ? '' : chalk.dim('» ')) + msg + '\n')
    // A credential the gateway no longer accepts (a revoked service-account key: the gateway cuts
    // the link) ends the command: listening on would only fail every new session.
    let refused: HoopError | undefined
    const stopped = new Promise<void>((resolve) => {
      const stop = () => client.close().finally(resolve)
      const refusedBy = (err: HoopError) => {
        if (refused) return
        refused = err
        note(`stopped listening on ${host}:${actual}: the gateway no longer accepts this CLI's credential`)
        stop()
      }
      // With several replicas, say which one a failed session went through (a lost link says so itself).
      const via = (gateway?: string, message = '') => (replicas.length > 1 && gateway && !message.includes(gateway) ? ` (via ${gateway})` : '')
      client.on('session-error', ({id, error, gateway}) =>
        error.code === 'TOKEN_REJECTED' ? refusedBy(error) : note(`session ${id}: ${error.message} [${error.code}]${via(gateway, error.message)}`),
      )
      const next = replicas.length > 1 ? 'the next session goes to a live replica' : 'the next session will reconnect'
      client.on('link-lost', (err, replica) =>
        err?.code === 'TOKEN_REJECTED' ? refusedBy(err) : note(`link to gateway ${replica} closed: ${err?.message ?? 'unknown reason'}; ${next}`),
      )
      // Counted after this turn of the event loop: a client that hung up just before the signal
      // has its end (or reset) read in the same turn, and is not a session the signal cuts.
      const onSignal = () =>
        setImmediate(() => {
          const live = client.activeSessions
          if (live > 0) note(`closing ${live} live session${live === 1 ? '' : 's'}: ${live === 1 ? 'its client sees' : 'their clients see'} the connection drop`)
          stop()
        })
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
    })
    await stopped
    if (refused) throw refused
    if (!json) this.log('closed')
  }
}
