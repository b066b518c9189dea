import {Flags} from '@oclif/core'
import {openGatewayApi} from '../src/client/api.js'
import {bashConnectionCompletion} from '../src/client/completion.js'
import {HoopCommand} from '../src/client/command.js'
import {gatewayFlag, tokenFlag} from '../src/client/flags.js'
import {table} from '../src/client/table.js'
import type {ConnectionView} from '../src/gateway/api.js'

export default class Connections extends HoopCommand {
  static override summary = 'List the connections you may use, with type, agent and status.'
  static override description = `Asks the gateway which connections your identity may use under its policy (connections that policy denies you are not listed), with the type, the agent that serves each and whether that agent is online. Reach one with \`hoop connect NAME\`.`
  static override examples = [
    '<%= config.bin %> connections',
    '<%= config.bin %> connections --json',
    {description: 'Complete connection names in bash (after `hoop autocomplete bash` set up the rest)', command: 'eval "$(<%= config.bin %> connections --completion bash)"'},
  ]
  static override flags = {
    gateway: gatewayFlag,
    token: tokenFlag,
    names: Flags.boolean({summary: 'Print only the names, one per line (for scripts and shell completion).', default: false}),
    completion: Flags.option({options: ['bash'] as const, summary: 'Print a shell snippet that completes connection names after `hoop connect` and `hoop exec`.'})(),
  }

  async run(): Promise<{connections: ConnectionView[]}> {
    const {flags} = await this.parse(Connections)
    if (flags.completion) {
      process.stdout.write(bashConnectionCompletion(this.config.bin))
      return {connections: []}
    }
    const api = await openGatewayApi(flags)
    const {connections} = await api.get<{connections: ConnectionView[]}>('/v1/connections')
    if (flags.names) {
      if (connections.length > 0) process.stdout.write(connections.map((c) => c.name).join('\n') + '\n')
      return {connections}
    }
    if (connections.length === 0) this.log('No connections available to you. Ask an administrator for access.')
    else this.log(table(['name', 'type', 'agent', 'status', 'description'], connections.map((c) => [c.name, c.type, c.agent, c.online ? 'online' : 'offline', c.description ?? ''])))
    return {connections}
  }
}
