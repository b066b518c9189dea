// Three gateway replicas on one PostgreSQL store behind a real HAProxy (issue 16), all real
// processes: the built CLI's gateways, one agent linked to each replica's own URL, `hoop connect`
// through HAProxy's URL, and node-postgres clients running statements continuously through it,
// remembering every statement that was acknowledged. HAProxy runs the reference configuration,
// docs/deploy/haproxy.cfg, with loopback ports. kill -9 of the replica that carries the
// sessions: new sessions succeed again within a few seconds (the figure is measured and printed,
// not asserted), no acknowledged statement lacks its record in the one audit log on the store
// (those the killed replica served included), and that log verifies end to end through each
// surviving replica.
import assert from 'node:assert/strict'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {spawn} from 'node:child_process'
import {adminQuery} from '../conformance/backends.js'
import {ROOT, runHoop, spawnHoop, tempDir, type Proc} from '../helpers/cli.js'
import {loadGatewayConfig} from '../../src/shared/config.js'
import {type GatewayProc, sharedStoreConfig, startGatewayProc, waitForAgentLinks} from '../helpers/gateway.js'
import {freePort} from '../helpers/net.js'

const DB = `hoop_haproxy_test_${process.pid}`
const STORE_URL = `postgresql://postgres@127.0.0.1:5432/${DB}`
const CLIENTS = 4
/** Statements acknowledged before the kill, and again after service returned. */
const BEFORE = 150
const AFTER = 150

const CONFIG = sharedStoreConfig(`    - {id: loaders, subjects: {groups: [eng]}, connections: [pg], effect: allow}
`)

/** Debian's HAProxy (`.ci/run` installs it when missing), wherever PATH does or does not say. */
function findHaproxy(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']
  return dirs.map((d) => join(d, 'haproxy')).find((p) => existsSync(p))
}

/**
 * The reference load balancer, docs/deploy/haproxy.cfg, as this test runs it: each `bind` on a free
 * loopback port without TLS, each replica's address (in order of first appearance) replaced by a
 * gateway's loopback port. Everything else (health checks, timeouts, redispatch) is the file's.
 */
async function referenceHaproxy(replicaPorts: number[]): Promise<{config: string; frontends: Map<string, number>}> {
  const frontends = new Map<string, number>()
  const addresses: string[] = []
  let frontend = ''
  const out: string[] = []
  for (const line of readFileSync(join(ROOT, 'docs', 'deploy', 'haproxy.cfg'), 'utf8').split('\n')) {
    const section = /^frontend\s+(\S+)/.exec(line)
    if (section) frontend = section[1]
    const bind = /^(\s*)bind\s/.exec(line)
    const server = /^(\s*server\s+\S+\s+)(\S+:\d+)(.*)$/.exec(line)
    if (bind) {
      const port = await freePort()
      frontends.set(frontend, port)
      out.push(`${bind[1]}bind 127.0.0.1:${port}`)
    } else if (server) {
      if (!addresses.includes(server[2])) addresses.push(server[2])
      const port = replicaPorts[addresses.indexOf(server[2])]
      assert.ok(port, `docs/deploy/haproxy.cfg names more replicas than the ${replicaPorts.length} started`)
      out.push(`${server[1]}127.0.0.1:${port}${server[3]}`)
    } else out.push(line)
  }
  assert.equal(addresses.length, replicaPorts.length, 'docs/deploy/haproxy.cfg names each replica')
  return {config: out.join('\n'), frontends}
}

/** Client sessions open on a replica now, from its /metrics (loopback callers need no token). */
async function activeSessions(gw: GatewayProc): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  let n = 0
  for (const m of text.matchAll(/^hoop_sessions_active\{[^}]*\} (\d+)$/gm)) n += Number(m[1])
  return n
}

/**
 * The statement markers ('ha:<client>:<n>') in the one audit log on the store, each with the
 * replica that served its session (the audit key fingerprint its recording names).
 */
async function recordedMarkers(): Promise<Map<string, string>> {
  const rows = await adminQuery<{body: string; payload: string | null; replica: string | null}>(
    "SELECT e.body, e.payload, r.replica FROM audit_events e LEFT JOIN audit_recordings r ON r.session_id = e.session WHERE e.kind = 'statement'",
    STORE_URL,
  )
  const out = new Map<string, string>()
  for (const row of rows) {
    const text = row.payload ? (JSON.parse(row.payload) as {fields: {text: string}}).fields.text : (JSON.parse(row.body) as {data: {text: string}}).data.text
    const m = /'(ha:\d+:\d+)'/.exec(text)
    if (m) out.set(m[1], row.replica ?? '?')
  }
  return out
}

/** A replica's audit key fingerprint (public, GET /v1/audit/key). */
async function fingerprintOf(gw: GatewayProc): Promise<string> {
  return ((await (await fetch(`${gw.url}/v1/audit/key`)).json()) as {fingerprint: string}).fingerprint
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const haproxyBin = findHaproxy()

describe('three replicas behind HAProxy on one PostgreSQL store: kill -9 of one (built CLI)', function () {
  this.timeout(300_000)
  const dir = tempDir('hoop-e2e-haproxy-')
  const env = {HOOP_STORE_URL: STORE_URL}
  const gws: GatewayProc[] = []
  const procs: Proc[] = []
  let haproxy: ReturnType<typeof spawn> | undefined
  let lbUrl = ''
  let connPort = 0
  let saToken = ''
  let auditorKey = ''

  before(async function () {
    if (!haproxyBin) {
      console.log('      skipped: no haproxy binary on PATH, /usr/sbin, /usr/local/sbin or /sbin (.ci/run installs Debian\'s package)')
      this.skip()
    }
    await adminQuery(`DROP DATABASE IF EXISTS ${DB}`)
    await adminQuery(`CREATE DATABASE ${DB}`)
    const ports = [await freePort(), await freePort(), await freePort()]
    const {config, frontends} = await referenceHaproxy(ports)
    // The agent links to each replica's own address (docs/ha.md): its own frontend, no balancing.
    // Each replica advertises that address to agents (HOOP_REPLICA_URL, as the reference units set
    // it), so discovery finds the links the agent already has instead of adding direct ones.
    const agentUrls = [...frontends].filter(([name]) => name.startsWith('agent-')).map(([, port]) => `http://127.0.0.1:${port}`)
    assert.equal(agentUrls.length, ports.length, 'one agent frontend per replica')
    for (const [i, name] of ['a', 'b', 'c'].entries()) {
      mkdirSync(join(dir.path, name))
      gws.push(await startGatewayProc(CONFIG, {dir: join(dir.path, name), env: {...env, HOOP_REPLICA_URL: agentUrls[i]}, listen: `127.0.0.1:${ports[i]}`}))
    }
    writeFileSync(join(dir.path, 'gateway.yaml'), CONFIG)
    const create = async (kind: string, name: string, groups: string[] = []) => {
      const r = await runHoop(['admin', kind, 'create', name, '--config', join(dir.path, 'gateway.yaml'), '--json', ...groups.flatMap((g) => ['--group', g])], {env})
      assert.equal(r.code, 0, r.stderr)
      return (JSON.parse(r.stdout) as {token: string}).token
    }
    const agentToken = await create('agents', 'db-agent')
    saToken = await create('service-accounts', 'loader', ['eng'])
    auditorKey = await create('service-accounts', 'auditor', ['auditors'])

    const cfg = join(dir.path, 'haproxy.cfg')
    writeFileSync(cfg, config)
    haproxy = spawn(haproxyBin!, ['-db', '-f', cfg], {stdio: ['ignore', 'pipe', 'pipe']})
    let haproxyLog = ''
    haproxy.stdout!.on('data', (d: Buffer) => (haproxyLog += d.toString()))
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyLog += d.toString()))
    lbUrl = `http://127.0.0.1:${frontends.get('clients')}`
    // HAProxy is up once it answers /readyz through to a replica.
    for (let i = 0; ; i++) {
      const ok = await fetch(`${lbUrl}/readyz`).then((r) => r.ok, () => false)
      if (ok) break
      assert.ok(i < 100 && haproxy.exitCode === null, `HAProxy did not come up: ${haproxyLog}`)
      await sleep(100)
    }

    const agent = spawnHoop(['agent', '--gateway', agentUrls.join(',')], {env: {HOOP_AGENT_TOKEN: agentToken}})
    procs.push(agent)
    for (const url of agentUrls) await agent.waitFor(new RegExp(`"msg":"connected to gateway","gateway":"${url.replace(/[.]/g, '\\.')}"`))
    for (const gw of gws) await waitForAgentLinks(gw, 1)
    const conn = spawnHoop(['connect', 'pg', '--port', '0', '--json', '--gateway', lbUrl], {env: {HOOP_TOKEN: saToken}})
    procs.push(conn)
    connPort = (JSON.parse((await conn.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
  })

  after(async () => {
    for (const p of procs.reverse()) await p.stop()
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((r) => haproxy!.once('exit', r))
      haproxy.kill('SIGTERM')
      await exited
    }
    for (const gw of gws) await gw.stop()
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    dir.cleanup()
  })

  it('new sessions succeed within seconds, no acknowledged statement lacks its record, the one log verifies', async () => {
    const acked = new Set<string>()
    let ackedAfterKill = 0
    let killedAt = 0
    /** Per client: ms from the kill to its first acknowledged statement on a new session. */
    const recovered: number[] = []
    let stop = false
    const session = async () => {
      const c = new pg.Client({host: '127.0.0.1', port: connPort, user: 'postgres', database: 'test', connectionTimeoutMillis: 10_000})
      c.on('error', () => undefined)
      await c.connect()
      return c
    }
    const loops = Array.from({length: CLIENTS}, (_, id) =>
      (async () => {
        let n = 0
        let c: pg.Client | undefined
        let lost = false
        while (!stop) {
          try {
            c ??= await session()
            const marker = `ha:${id}:${n++}`
            await c.query(`SELECT '${marker}' AS m`)
            acked.add(marker)
            if (killedAt) {
              ackedAfterKill++
              if (lost) {
                recovered.push(Date.now() - killedAt)
                lost = false
              }
            }
          } catch {
            // The replica died under this session (or a new one was not served yet): a new session.
            await c?.end().catch(() => undefined)
            c = undefined
            if (killedAt) lost = true
            await sleep(50)
          }
        }
        await c?.end().catch(() => undefined)
      })(),
    )
    while (acked.size < BEFORE) await sleep(20)

    // `hoop connect` holds one link, through HAProxy, to one replica: that is the one to kill.
    let victim: GatewayProc | undefined
    for (let i = 0; i < 100 && !victim; i++) {
      const counts = await Promise.all(gws.map(activeSessions))
      victim = gws[counts.findIndex((n) => n > 0)]
      if (!victim) await sleep(50)
    }
    assert.ok(victim, 'one replica carries the sessions')
    const victimKey = await fingerprintOf(victim)
    killedAt = Date.now()
    victim.proc.child.kill('SIGKILL')
    await victim.proc.exited

    // A new session, made from scratch, as a user arriving after the kill would.
    let firstNewSessionMs = -1
    for (let i = 0; i < 600 && firstNewSessionMs < 0; i++) {
      try {
        const c = await session()
        await c.query('SELECT 1')
        await c.end()
        firstNewSessionMs = Date.now() - killedAt
      } catch {
        await sleep(100)
      }
    }
    assert.ok(firstNewSessionMs >= 0, 'a new session succeeds through HAProxy after the kill')
    // AFTER statements since the kill, and every client back: a client whose retry came a moment
    // later than the others' would otherwise be stopped before it got its new session.
    const deadline = Date.now() + 60_000
    while ((ackedAfterKill < AFTER || recovered.length < CLIENTS) && Date.now() < deadline) await sleep(20)
    stop = true
    await Promise.all(loops)
    console.log(
      `      kill -9 of one of 3 replicas: first new session after ${firstNewSessionMs} ms; clients back after ${Math.min(...recovered)}-${Math.max(...recovered)} ms; ${acked.size} statements acknowledged (${ackedAfterKill} after the kill)`,
    )
    assert.equal(recovered.length, CLIENTS, 'every client whose session died got a new one')
    assert.ok(ackedAfterKill >= AFTER, `${ackedAfterKill} of ${AFTER} statements acknowledged after the kill within 60 s`)

    const recorded = await recordedMarkers()
    const missing = [...acked].filter((m) => !recorded.has(m))
    assert.deepEqual(missing, [], `acknowledged statements without an audit record: ${missing.slice(0, 10).join(', ')}`)
    const onVictim = [...acked].filter((m) => recorded.get(m) === victimKey).length
    assert.ok(onVictim > 0, 'the killed replica had served acknowledged statements, and their records are in the one log')

    // The one log, verified end to end through each surviving replica (their own credentials).
    for (const gw of gws.filter((g) => g !== victim)) {
      const v = await runHoop(['audit', 'verify', '--live', '--gateway', gw.url], {env: {HOOP_TOKEN: auditorKey}})
      assert.equal(v.code, 0, `${gw.url}: ${v.stdout}${v.stderr}`)
      assert.match(v.stdout, /verifies/)
    }
  })
})

describe('the reference deployment (docs/deploy)', () => {
  it('gateway.yaml is a valid gateway config on the PostgreSQL store', () => {
    const cfg = loadGatewayConfig(join(ROOT, 'docs', 'deploy', 'gateway.yaml'))
    assert.equal(cfg.store.kind, 'postgres')
    assert.equal(cfg.connections[0].name, 'orders-db')
  })
})
