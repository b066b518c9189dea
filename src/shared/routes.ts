// Paths served by the gateway, shared by the gateway and its clients.
export const RELAY_PATHS = {agent: '/v1/agent', connect: '/v1/connect'} as const
