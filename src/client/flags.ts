// Flags shared by the commands that talk to a gateway: one definition each, so every command
// describes and reads them alike. Module constants, not static members of HoopCommand: oclif
// copies a command class's static members into every entry of oclif.manifest.json.
import {Flags} from '@oclif/core'

export const gatewayFlag = Flags.string({
  summary: 'Gateway URL, or several replicas of one gateway comma-separated (default: HOOP_GATEWAY, then the last gateway you logged in to, then http://127.0.0.1:8009).',
  // Every command that talks to a gateway has this flag, so HOOP_PROFILE is explained in the
  // --help of exactly the commands where profiles matter.
  description:
    'Logins are kept per gateway URL and per profile. Set HOOP_PROFILE=NAME (e.g. HOOP_PROFILE=approver) to keep a second person\'s or role\'s login to the same gateway apart from the default one: `HOOP_PROFILE=approver hoop login`, then HOOP_PROFILE=approver before each command that should use it. With a list of replicas (--gateway https://gw-a:8009,https://gw-b:8009, or HOOP_GATEWAY the same way) the first URL keys the login; `login`, `connect`, `exec` and `agent` fail over to the next replica when one is down, other commands talk to the first URL (docs/ha.md).',
  env: 'HOOP_GATEWAY',
  helpGroup: 'GATEWAY',
})

/** The credential a command presents to the gateway (src/client/credentials.ts says what it falls back to). */
export const tokenFlag = Flags.string({
  summary: 'Service-account key (prefer HOOP_TOKEN: flags show up in `ps`; default: your login).',
  description:
    'Sent to the gateway as the bearer token; the gateway decides what its identity may do. Without it the CLI uses HOOP_CLIENT_ID and HOOP_CLIENT_SECRET, then a CI ID token (HOOP_ID_TOKEN or HOOP_ID_TOKEN_FILE), then your `hoop login`.',
  env: 'HOOP_TOKEN',
  helpGroup: 'GATEWAY',
})

/** `hoop agent`'s token: an agent secret, read from HOOP_AGENT_TOKEN (not HOOP_TOKEN). */
export const agentTokenFlag = Flags.string({
  summary: 'Agent token (prefer HOOP_AGENT_TOKEN: flags show up in `ps`).',
  env: 'HOOP_AGENT_TOKEN',
})
