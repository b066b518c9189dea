// `hoop gateway --dev`: a demo PostgreSQL-compatible database served in-process (PGlite, the
// PostgreSQL 18 WASM build, behind its socket server), seeded with fake customers (dev-seed.ts),
// plus the demo connection and policy that show what hoop does: engineers read, PII is masked,
// DROP/TRUNCATE and unbounded writes are blocked, other writes wait for an approver. Nothing here
// runs outside dev mode; PGlite is imported lazily so a production gateway never loads it.
//
// The database lives under <dataDir>/demo-db and the policy in <dataDir>/demo-policy.yaml: both
// survive restarts (approved changes stay applied; edits to the policy hot-reload and are kept).
import {existsSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import type {DevUser} from '../identity/auth-config.js'
import {type ConnectionConfig, DEFAULT_LOCAL_PORTS, EMBEDDED_AGENT} from '../shared/config.js'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'
import {seedDemoDatabase} from './dev-seed.js'

export const DEMO_CONNECTION = 'demo'
const DEMO_POLICY_FILE = 'demo-policy.yaml'
const DEMO_DB_DIR = 'demo-db'
const DEMO_DATABASE = 'postgres'
const DEMO_USER = 'postgres'
/**
 * PGlite is one backend; pglite-socket multiplexes several client connections onto it, query by
 * query. The PostgreSQL engine opens a second connection per session for catalog look-ups when it
 * masks, so one client session needs two.
 */
const DEMO_MAX_CONNECTIONS = 16

interface DevEnvironmentOptions {
  dataDir: string
  logger: Logger
  /** Port for the demo database on 127.0.0.1 (default 0: any free port). */
  port?: number
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
  demoDb: {host: string; port: number; dir: string; close(): Promise<void>}
  /** What runs and the next three commands to type. */
  banner(info: BannerInfo): string
}

/** Starts the demo database (creating and seeding it on first run) and writes the demo policy if absent. */
export async function startDevEnvironment(opts: DevEnvironmentOptions): Promise<DevEnvironment> {
  const dir = join(opts.dataDir, DEMO_DB_DIR)
  const fresh = !existsSync(join(dir, 'PG_VERSION'))
  const log = opts.logger.child({component: 'demo-db'})
  if (fresh) log.info('creating the demo database (first run only; this takes a few seconds)', {dir})

  const [{PGlite}, {PGLiteSocketServer}] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')])
  let db: InstanceType<typeof PGlite>
  try {
    db = await PGlite.create(dir)
  } catch (err) {
    throw new HoopError('INTERNAL', `cannot open the demo database in ${dir}: ${errorMessage(err)}`)
  }
  let server: InstanceType<typeof PGLiteSocketServer> | undefined
  try {
    const seeded = await seedDemoDatabase(db)
    if (seeded) log.info('demo database seeded', {customers: seeded.customers, orders: seeded.orders})
    server = new PGLiteSocketServer({db, host: '127.0.0.1', port: opts.port ?? 0, maxConnections: DEMO_MAX_CONNECTIONS})
    await server.start()
  } catch (err) {
    await server?.stop().catch(() => {})
    await db.close().catch(() => {})
    if (err instanceof HoopError) throw err
    const why = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? `port ${opts.port} is in use` : errorMessage(err)
    throw new HoopError('INTERNAL', `cannot start the demo database: ${why}`)
  }
  const port = Number(server.getServerConn().split(':').pop())
  log.info('demo database listening', {address: `127.0.0.1:${port}`, dir})

  const policyFile = join(opts.dataDir, DEMO_POLICY_FILE)
  if (!existsSync(policyFile)) writeFileSync(policyFile, DEMO_POLICY, {mode: 0o600})

  const connection: ConnectionConfig = {
    name: DEMO_CONNECTION,
    type: 'postgres',
    host: '127.0.0.1',
    port,
    agent: EMBEDDED_AGENT,
    description: 'Demo shop database (PGlite, fake customer PII)',
    database: DEMO_DATABASE,
    username: DEMO_USER,
    tls: {mode: 'disable'},
  }
  let closed: Promise<void> | undefined
  const running = server
  return {
    connections: [connection],
    policyFile,
    demoDb: {
      host: '127.0.0.1',
      port,
      dir,
      close: () =>
        (closed ??= (async () => {
          await running.stop().catch((err) => log.warn('demo database server did not stop cleanly', {error: errorMessage(err)}))
          await db.close().catch((err) => log.warn('demo database did not close cleanly', {error: errorMessage(err)}))
        })()),
    },
    banner: (info) => renderBanner({...info, port, dbDir: dir, policyFile}),
  }
}

function renderBanner(b: BannerInfo & {port: number; dbDir: string; policyFile: string}): string {
  const issuer = b.issuer ?? `${b.gatewayUrl}/oidc`
  const localPort = DEFAULT_LOCAL_PORTS.postgres
  const width = Math.max(...b.users.map((u) => u.email.length))
  const users = b.users.map((u) => `    ${u.email.padEnd(width)}  ${u.groups.join(', ')}`)
  const commands: Array<[string, string]> = [
    [`hoop login --gateway ${b.gatewayUrl}`, '# pick engineer@example.com on the page it opens'],
    [`hoop connect ${DEMO_CONNECTION}`, `# listens on 127.0.0.1:${localPort}; leave it running`],
    [`psql "host=127.0.0.1 port=${localPort} user=${DEMO_USER} dbname=${DEMO_DATABASE}" -c "select * from customers limit 5"`, ''],
  ]
  const cw = Math.max(...commands.slice(0, 2).map(([c]) => c.length))
  const steps = commands.map(([c, note], i) => `  ${i + 1}. ${note ? `${c.padEnd(cw)}   ${note}` : c}`)
  return [
    '',
    'hoop dev environment is running (loopback only; demo data, no real secrets):',
    `  gateway:        ${b.gatewayUrl}`,
    `  OIDC issuer:    ${issuer}  (dev identity provider: pick a demo user, no password)`,
    `  embedded agent: serves the "${DEMO_CONNECTION}" connection`,
    `  demo database:  PGlite (PostgreSQL 18) on 127.0.0.1:${b.port}, table customers with fake PII`,
    `  demo policy:    ${b.policyFile}  (edit it: changes apply at once)`,
    `  data dir:       ${b.dataDir}`,
    '  demo users:',
    ...users,
    '',
    'Next, in another terminal:',
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
