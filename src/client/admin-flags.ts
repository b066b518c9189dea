// Flags shared by the `hoop admin ...` commands.
import {Flags} from '@oclif/core'
import type {AdminTarget} from './admin.js'
import {gatewayFlag, tokenFlag} from './flags.js'

export const adminFlags = {
  gateway: gatewayFlag,
  token: tokenFlag,
  'data-dir': Flags.string({
    summary: "Work on the gateway's data dir directly (on the gateway host) instead of calling the gateway.",
    helpGroup: 'LOCAL',
  }),
  config: Flags.string({
    summary: "Work directly on the store this gateway config names (its PostgreSQL store, or SQLite in its data dir), instead of calling the gateway.",
    helpGroup: 'LOCAL',
  }),
}

export function adminTarget(flags: {gateway?: string; token?: string; 'data-dir'?: string; config?: string}): AdminTarget {
  if (flags.config) return {config: flags.config, dataDir: flags['data-dir']}
  return flags['data-dir'] ? {dataDir: flags['data-dir']} : {gateway: flags.gateway, token: flags.token}
}
