// `hoop connect` as a service account would meet it: Ctrl-C with psql sessions open says how many
// it drops; when the service-account key is revoked the gateway cuts the link and connect stops
// listening, says why, and exits 11 with a hint that is not "run `hoop login`". Then an auditor
// lists those sessions (a header row, like the other lists) and asks for one that does not exist
// (the error names the gateway, not "this data dir") (issue 17 item 6).
import assert from 'node:assert/strict'
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import {connect} from 'node:net'
import {runHoop, spawnHoop, tempDir, type Proc} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'

const CONFIG = `connections:
  - {name: pg, type: postgres, target: 127.0.0.1:5432, database: test, username: postgres}
policy:
  version: 1
  rules:
    - {id: ci-uses-pg, subjects: {groups: [ci]}, connections: [pg], effect: allow}
`

/** A psql session left open on the local port; resolves once it has answered a first query. */
async function openPsql(port: number): Promise<ChildProcess> {
  const p = spawn('psql', [`host=127.0.0.1 port=${port} user=postgres dbname=test`, '-X', '-A', '-t'], {stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, PGCONNECT_TIMEOUT: '10'}})
  let out = ''
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  p.stdin!.write(`select 'up' || 1;\n`)
  const deadline = Date.now() + 20_000
  while (!out.includes('up1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  assert.match(out, /up1/)
  return p
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({host: '127.0.0.1', port})
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })
}

describe('hoop connect: live sessions on Ctrl-C, and a revoked service-account key (built CLI)', function () {
  this.timeout(90_000)
  const dir = tempDir('hoop-e2e-connect-')
  let gw: GatewayProc
  let token = ''
  const psqls: ChildProcess[] = []

  before(async () => {
    gw = await startGatewayProc(CONFIG, {dir: dir.path})
    token = await createSecret('service-accounts', 'ci-job', gw.dataDir, ['ci'])
  })
  after(async () => {
    for (const p of psqls) p.kill()
    await gw?.stop()
    dir.cleanup()
  })

  async function startConnect(): Promise<{conn: Proc; port: number}> {
    const conn = spawnHoop(['connect', 'pg', '--port', '0', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    const m = await conn.waitFor(/listening on 127\.0\.0\.1:(\d+)/)
    return {conn, port: Number(m[1])}
  }

  it('says how many live sessions Ctrl-C drops', async () => {
    const {conn, port} = await startConnect()
    psqls.push(await openPsql(port), await openPsql(port))
    // A session whose client has just hung up is not counted, though its socket may linger a moment.
    const done = spawnSync('psql', [`host=127.0.0.1 port=${port} user=postgres dbname=test`, '-X', '-Atc', 'select 1'], {encoding: 'utf8', env: {...process.env, PGCONNECT_TIMEOUT: '10'}})
    assert.equal(done.status, 0, done.stderr)
    assert.equal(await conn.stop('SIGINT'), 0, conn.stderr())
    assert.match(conn.stderr(), /closing 2 live sessions: their clients see the connection drop/)
    assert.match(conn.stdout(), /closed/)
  })

  it('stops listening when its key is revoked, says why, and hints at a new key rather than `hoop login`', async () => {
    const {conn, port} = await startConnect()
    psqls.push(await openPsql(port))
    const revoke = await runHoop(['admin', 'service-accounts', 'revoke', 'ci-job', '--data-dir', gw.dataDir])
    assert.equal(revoke.code, 0, revoke.stderr + revoke.stdout)
    // The gateway sweeps revocations every 2 s.
    const code = await Promise.race([conn.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))])
    assert.equal(code, 11, conn.stderr())
    assert.match(conn.stderr(), new RegExp(`stopped listening on 127\\.0\\.0\\.1:${port}: the gateway no longer accepts this CLI's credential`))
    assert.match(conn.stderr(), /Error: service-account key for "ci-job" was revoked/)
    assert.match(conn.stderr(), /Hint: HOOP_TOKEN \(or --token\) is a revoked service-account key: ask an admin for a new key/)
    assert.doesNotMatch(conn.stderr(), /run `hoop login`/)
    assert.equal(await listening(port), false, 'the local port is closed')

    const again = await runHoop(['connections', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    assert.equal(again.code, 11)
    assert.match(again.stderr, /Hint: HOOP_TOKEN \(or --token\) is a revoked service-account key/)
  })

  it('sessions list has a header row; sessions show of an unknown id through the gateway names the gateway', async () => {
    const auditor = {HOOP_TOKEN: await createSecret('service-accounts', 'auditor', gw.dataDir, ['auditors'])}
    const list = await runHoop(['sessions', 'list', '--gateway', gw.url], {env: auditor})
    assert.equal(list.code, 0, list.stderr)
    const lines = list.stdout.trim().split('\n')
    assert.match(lines[0], /^ID +STARTED +SUBJECT +CONNECTION +ENDED +RECORDING$/)
    assert.equal(lines.length, 1 + 4, list.stdout)
    assert.match(lines[1], /^ses_\S+ +\S+ +ci-job +pg +/)
    const show = await runHoop(['sessions', 'show', 'ses_AAAAAAAAAAAA', '--gateway', gw.url], {env: auditor})
    assert.equal(show.code, 22, show.stderr)
    assert.match(show.stderr, new RegExp(`Error: gateway ${gw.url} has no session ses_AAAAAAAAAAAA; \`hoop sessions list\` shows the ids it has`))
    assert.doesNotMatch(show.stderr, /data dir/)
  })
})
