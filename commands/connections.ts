import {GatewayApi} from '../src/client/api.js'
import {HoopCommand} from '../src/client/command.js'
import {resolveBearer, resolveGatewayUrl} from '../src/client/credentials.js'
import {gatewayFlag, tokenFlag} from '../src/client/flags.js'
import {table} from '../src/client/table.js'
import type {ConnectionView} from '../src/gateway/api.js'

export default class Connections extends HoopCommand {
  static override summary = 'List the connections you may use, with type, agent and status.'
  static override description = `Asks the gateway which connections your identity may use under its policy (connections that policy denies you are not listed), with the type, the agent that serves each and whether that agent is online. Reach one with \`hoop connect NAME\`.`
  static override examples = ['<%= config.bin %> connections', '<%= config.bin %> connections --json']
  static override flags = {
    gateway: gatewayFlag,
    token: tokenFlag,
  }

  async run(): Promise<{connections: ConnectionView[]}> {
    const {flags} = await this.parse(Connections)
    const gateway = resolveGatewayUrl(flags.gateway)
    const api = new GatewayApi(gateway, await resolveBearer({gateway, token: flags.token}))
    const {connections} = await api.get<{connections: ConnectionView[]}>('/v1/connections')
    if (connections.length === 0) this.log('No connections available to you. Ask an administrator for access.')
    else this.log(table(['name', 'type', 'agent', 'status', 'description'], connections.map((c) => [c.name, c.type, c.agent, c.online ? 'online' : 'offline', c.description ?? ''])))
    return {connections}
  }
}
