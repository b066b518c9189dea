import {Flags} from '@oclif/core'
import {Agent, discoveryFromEnv} from '../src/agent/agent.js'
import {HoopCommand} from '../src/client/command.js'
import {agentTokenFlag, gatewayFlag} from '../src/client/flags.js'
import {resolveGateways} from '../src/client/gateways.js'
import {HoopError} from '../src/shared/errors.js'
import {createLogger, type LogLevel} from '../src/shared/log.js'

export default class AgentCommand extends HoopCommand {
  static override summary = 'Run an agent: dial out to the gateway and serve its targets.'
  static override description = `Headless and foreground, for a service or a CI job step. The agent needs no inbound port: it dials the gateway over WebSocket, keeps the link alive, and reconnects with jittered exponential backoff. Given several replicas of one gateway (--gateway URL1,URL2 or HOOP_GATEWAY with commas), it keeps one link to EACH, so any replica can reach it, and reconnects to each on its own when that replica dies or restarts (docs/ha.md). On the PostgreSQL store it also discovers the other replicas (GET /v1/replicas) every 5 s and links to them too: one URL is enough; the URLs given are never dropped. Give its token in HOOP_AGENT_TOKEN (preferred: never visible in \`ps\`) or --token. Create a token with \`hoop admin agents create NAME\`. Exits non-zero (11) when a replica rejects the token.`

  static override examples = [
    {description: 'Run with the token from the environment', command: 'HOOP_AGENT_TOKEN=hoop_ag_... <%= config.bin %> agent --gateway https://gw.example.com'},
    {description: 'Link to both replicas of one gateway', command: 'HOOP_AGENT_TOKEN=hoop_ag_... <%= config.bin %> agent --gateway https://gw-a.example.com,https://gw-b.example.com'},
    {description: 'Only allow dialing the database subnet', command: '<%= config.bin %> agent --allow-target "10.0.3.*:5432"'},
  ]

  static override enableJsonFlag = false

  static override flags = {
    gateway: gatewayFlag,
    token: agentTokenFlag,
    'allow-target': Flags.string({summary: 'host:port pattern this agent may dial ("*" wildcard); repeatable. Default: any.', multiple: true}),
    'log-level': Flags.option({options: ['debug', 'info', 'warn', 'error'] as const, default: 'info', summary: 'Log level.'})(),
    'log-format': Flags.option({options: ['text', 'json'] as const, summary: 'Log format (default: text on a TTY, json otherwise).'})(),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(AgentCommand)
    if (!flags.token) throw new HoopError('TOKEN_REJECTED', 'no agent token: set HOOP_AGENT_TOKEN (or --token)')
    const logger = createLogger({level: flags['log-level'] as LogLevel, json: flags['log-format'] ? flags['log-format'] === 'json' : undefined})
    const agent = new Agent({gateways: resolveGateways(flags.gateway).replicas, token: flags.token, logger, allowTargets: flags['allow-target'], ...discoveryFromEnv()})
    const stop = () => agent.stop()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    await agent.run()
    logger.info('agent stopped')
  }
}
