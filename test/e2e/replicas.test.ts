// Clients and agents with several gateway replicas (issue 16 items 3 and 5), with real processes
// from the built CLI: two gateways, one agent linked to both, `hoop connect` and `hoop exec` given
// both URLs. Kill -9 replica A: the session open on it ends with an error naming A, the agent's
// link to B is untouched, the next session (and exec) runs through B; A restarts on its port and
// the agent links to it again. A token one replica rejects stops the agent.
//
// Until the shared PostgreSQL store lands, each replica has its own SQLite data dir, copied from
// one made before either starts: the same agent token and service-account key are valid on both.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {cpSync} from 'node:fs'
import {join} from 'node:path'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc, waitForAgentLinks} from '../helpers/gateway.js'
import {freePort, psql} from '../helpers/net.js'

const CONFIG = `connections:
  - {name: pg, type: postgres, target: 127.0.0.1:5432, agent: db-agent, database: test, username: postgres}
policy:
  version: 1
  rules:
    - {id: eng-uses-pg, subjects: {groups: [eng]}, connections: [pg], effect: allow}
`

/** The agent's JSON log line for a link made to `url`, `times` times over. */
function linkedTo(url: string, times = 1): RegExp {
  const one = `"msg":"connected to gateway","gateway":"${url.replace(/[.]/g, '\\.')}"`
  return new RegExp(`(${one}[\\s\\S]*){${times}}`)
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0
}

/** A psql session left open; resolves once it has answered a first query. */
async function openPsql(port: number): Promise<{child: ChildProcess; out(): string; err(): string; exited: Promise<number | null>}> {
  const child = spawn('psql', [`host=127.0.0.1 port=${port} user=postgres dbname=test`, '-X', '-A', '-t'], {stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, PGCONNECT_TIMEOUT: '10'}})
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  child.stdin!.write(`select 'up' || 1;\n`)
  const deadline = Date.now() + 20_000
  while (!out.includes('up1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  assert.match(out, /up1/, err)
  return {child, out: () => out, err: () => err, exited}
}

describe('several gateway replicas: agent links to each, connect and exec fail over (built CLI)', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-replicas-')
  const dataA = join(dir.path, 'a', 'data')
  const dataB = join(dir.path, 'b', 'data')
  let gwA: GatewayProc
  let gwB: GatewayProc
  let portA: number
  let agent: Proc
  let conn: Proc
  let connPort: number
  let agentToken: string
  let saToken: string
  let auditorToken: string
  let both: string

  before(async () => {
    agentToken = await createSecret('agents', 'db-agent', dataA)
    saToken = await createSecret('service-accounts', 'ci-bot', dataA, ['eng'])
    auditorToken = await createSecret('service-accounts', 'auditor', dataA, ['auditors'])
    cpSync(dataA, dataB, {recursive: true})
    portA = await freePort()
    gwA = await startGatewayProc(CONFIG, {dir: join(dir.path, 'a'), dataDir: dataA, listen: `127.0.0.1:${portA}`})
    gwB = await startGatewayProc(CONFIG, {dir: join(dir.path, 'b'), dataDir: dataB})
    both = `${gwA.url},${gwB.url}`
    agent = spawnHoop(['agent', '--gateway', both], {env: {HOOP_AGENT_TOKEN: agentToken}})
    await agent.waitFor(linkedTo(gwA.url))
    await agent.waitFor(linkedTo(gwB.url))
    conn = spawnHoop(['connect', 'pg', '--port', '0', '--json', '--gateway', both], {env: {HOOP_TOKEN: saToken}})
    const info = JSON.parse((await conn.waitFor(/\{"connection".*\}/))[0]) as {port: number; gateway: string; replicas: string[]}
    assert.equal(info.gateway, gwA.url, 'the first URL is the gateway identity')
    assert.deepEqual(info.replicas, [gwA.url, gwB.url])
    connPort = info.port
  })

  after(async () => {
    await conn?.stop()
    await agent?.stop()
    await gwA?.stop()
    await gwB?.stop()
    dir.cleanup()
  })

  it('the agent keeps a link to each replica: both see it online', async () => {
    for (const gw of [gwA, gwB]) {
      // Each replica counts the agent's link (/metrics answers loopback callers without a token).
      await waitForAgentLinks(gw, 1)
    }
  })

  it('kill -9 of replica A ends its open session with an error naming A; the next session goes through B', async () => {
    const session = await openPsql(connPort)
    gwA.proc.child.kill('SIGKILL')
    await gwA.proc.exited
    // The open session was on A (the first URL): its client's connection is closed.
    session.child.stdin!.end(`select 'after' || 1;\n`)
    const code = await session.exited
    assert.equal(code, 2, `psql: ${session.out()} ${session.err()}`)
    assert.match(session.err(), /server closed the connection unexpectedly|connection to server was lost/)
    assert.doesNotMatch(session.out(), /after1/)
    await conn.waitFor(new RegExp(`session \\d+: lost the link to gateway ${gwA.url} \\[GATEWAY_UNREACHABLE\\]`))
    await conn.waitFor(new RegExp(`link to gateway ${gwA.url} closed: .*; the next session goes to a live replica`))

    const next = await psql(connPort, `select 'via' || 'B'`)
    assert.equal(next.code, 0, next.stderr)
    assert.equal(next.stdout.trim(), 'viaB')
    assert.equal(conn.child.exitCode, null, 'connect keeps listening')
    // A's death did not touch the link to B: still the one made at start.
    assert.equal(count(agent.stderr(), linkedTo(gwB.url)), 1, agent.stderr())
  })

  it('hoop exec given both URLs runs through B while A is down', async () => {
    const r = await runHoop(['exec', 'pg', '-e', "select 'exec' || 7 as v", '--json', '--gateway', both], {env: {HOOP_TOKEN: saToken}})
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual((JSON.parse(r.stdout) as {statements: Array<{rows: string[][]}>}).statements[0].rows, [['exec7']])
  })

  it('whoami and the audit export download fail over to B while A is down; logout needs no replica', async () => {
    const who = await runHoop(['whoami', '--json', '--gateway', both], {env: {HOOP_TOKEN: saToken}})
    assert.equal(who.code, 0, who.stderr)
    assert.deepEqual(
      (({gateway, replica, subject}) => ({gateway, replica, subject}))(JSON.parse(who.stdout) as {gateway: string; replica: string; subject: string}),
      {gateway: gwA.url, replica: gwB.url, subject: 'ci-bot'},
    )
    const pkg = join(dir.path, 'evidence-b.tar.gz')
    const ex = await runHoop(['audit', 'export', '--out', pkg, '--gateway', both, '--json'], {env: {HOOP_TOKEN: auditorToken}})
    assert.equal(ex.code, 0, ex.stderr)
    assert.equal((JSON.parse(ex.stdout) as {replica: string}).replica, gwB.url, 'B built the package (its own log, until the log moves to the store)')
    const v = await runHoop(['audit', 'verify', pkg])
    assert.equal(v.code, 0, v.stdout + v.stderr)
    // Logout only deletes the login kept under the list's first URL (and revokes at the issuer):
    // it makes no request to a replica, so A being down does not matter.
    const out = await runHoop(['logout', '--gateway', both], {env: {XDG_CONFIG_HOME: join(dir.path, 'home')}})
    assert.equal(out.code, 0, out.stderr)
    assert.match(out.stderr + out.stdout, new RegExp(`Not logged in to ${gwA.url.replace(/[.]/g, '\\.')}`))
  })

  it('hoop exec names every replica when none answers', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const r = await runHoop(['exec', 'pg', '-e', 'select 1', '--gateway', `${gwA.url},${dead}`], {env: {HOOP_TOKEN: saToken}})
    assert.equal(r.code, 10, r.stderr)
    assert.match(r.stderr, new RegExp(`no gateway replica answered: cannot reach gateway ${gwA.url}: ECONNREFUSED; cannot reach gateway ${dead}: ECONNREFUSED`))
  })

  it('replica A restarted on its port: the agent links to it again and it serves sessions', async () => {
    gwA = await startGatewayProc(CONFIG, {dir: join(dir.path, 'a'), dataDir: dataA, listen: `127.0.0.1:${portA}`})
    await agent.waitFor(linkedTo(gwA.url, 2), 60_000)
    const r = await runHoop(['exec', 'pg', '-e', "select 'on' || 'A' as v", '--json', '--gateway', gwA.url], {env: {HOOP_TOKEN: saToken}})
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual((JSON.parse(r.stdout) as {statements: Array<{rows: string[][]}>}).statements[0].rows, [['onA']])
    assert.equal(count(agent.stderr(), linkedTo(gwB.url)), 1, 'the link to B stayed up throughout')
  })

  it('a token one replica rejects stops the agent (replicas share one store; a revocation is everywhere)', async () => {
    const revoke = await runHoop(['admin', 'agents', 'revoke', 'db-agent', '--data-dir', dataB])
    assert.equal(revoke.code, 0, revoke.stderr)
    assert.equal(await agent.exited, 11, agent.stderr())
    assert.match(agent.stderr(), /revoked/)
    // With no agent, a session fails, and connect says which replica refused it (B: the one it uses now).
    const r = await psql(connPort, 'select 1')
    assert.notEqual(r.code, 0)
    await conn.waitFor(new RegExp(`session \\d+: .*offline \\[AGENT_OFFLINE\\] \\(via ${gwB.url}\\)`))
  })
})
