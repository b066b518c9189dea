// A gateway process on a PostgreSQL store (issue 16, first step), with real PostgreSQL and the
// built CLI: the first credential made with `hoop admin --config` lands in PostgreSQL and works;
// a statement's session lands there too, and the operations endpoints report it (/metrics numbers
// move, /readyz follows the store going away and coming back); a store that cannot be reached at
// start stops the gateway with STORE_UNAVAILABLE and the URL's password redacted.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {pgWriterConfig} from '../helpers/audit-gateway.js'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {adminQuery} from '../conformance/backends.js'

const DB = `hoop_store_test_${process.pid}_gw`
const PASSWORD = 'pw-that-must-never-show-7f3a'
const STORE_URL = `postgresql://postgres:${PASSWORD}@127.0.0.1:5432/${DB}`
const METRICS_TOKEN = 'metrics-token-for-the-test'
const CONFIG = `store:
  postgres:
    url: {env: HOOP_STORE_URL}
metrics:
  token: {env: HOOP_METRICS_TOKEN}
${pgWriterConfig()}`

/** One sample's value from Prometheus text, 0 when absent. */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line ? Number(line.slice(name.length + 1)) : 0
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as {port: number}).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

describe('a gateway on a PostgreSQL store', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-pgstore-')
  const configFile = join(dir.path, 'gateway.yaml')
  const env = {HOOP_STORE_URL: STORE_URL, HOOP_METRICS_TOKEN: METRICS_TOKEN}
  let gw: GatewayProc | undefined
  let token = ''

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB}`)
    await adminQuery(`CREATE DATABASE ${DB}`)
    writeFileSync(configFile, CONFIG)
  })
  after(async () => {
    await gw?.stop()
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    dir.cleanup()
  })

  const metrics = async (url: string) => {
    const r = await fetch(`${url}/metrics`, {headers: {authorization: `Bearer ${METRICS_TOKEN}`}})
    assert.equal(r.status, 200)
    return r.text()
  }

  it('makes the first credential in PostgreSQL with `hoop admin --config`, and serves with it', async () => {
    const made = await runHoop(['admin', 'service-accounts', 'create', 'loader', '--group', 'eng', '--config', configFile, '--json'], {env})
    assert.equal(made.code, 0, made.stderr)
    token = (JSON.parse(made.stdout) as {token: string}).token
    const rows = await adminQuery<{name: string; groups: string[]}>('SELECT name, groups FROM service_accounts', `postgresql://postgres@127.0.0.1:5432/${DB}`)
    assert.deepEqual(rows, [{name: 'loader', groups: ['eng']}])

    gw = await startGatewayProc(CONFIG, {dir: dir.path, env})
    const url = gw.url
    assert.deepEqual(await (await fetch(`${url}/healthz`)).json(), {status: 'ok'})
    assert.deepEqual(await (await fetch(`${url}/readyz`)).json(), {status: 'ok'})
    assert.equal((await fetch(`${url}/metrics`)).status, 401, 'with a token configured, /metrics needs it, even from loopback')
    assert.equal((await fetch(`${url}/metrics`, {headers: {authorization: 'Bearer wrong'}})).status, 401)

    const before = await metrics(url)
    const r = await runHoop(['exec', 'db', '-e', 'SELECT 1 AS one', '--json', '--gateway', url], {env: {HOOP_TOKEN: token}})
    assert.equal(r.code, 0, r.stderr)
    // exec is done once its stream has closed; the gateway ends the session (the gauge, then the
    // recording and the row in the store) just after that, while exec exits: wait for the row.
    const sessions = async () => adminQuery<{subject: string; ended: boolean}>('SELECT subject, ended_at IS NOT NULL AS ended FROM sessions', `postgresql://postgres@127.0.0.1:5432/${DB}`)
    const deadline = Date.now() + 30_000
    while (!(await sessions()).every((s) => s.ended) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100))
    const after = await metrics(url)
    assert.ok(sample(after, 'hoop_statements_total{decision="allow"}') >= sample(before, 'hoop_statements_total{decision="allow"}') + 1)
    assert.equal(sample(after, 'hoop_sessions_total{type="postgres"}'), sample(before, 'hoop_sessions_total{type="postgres"}') + 1)
    assert.equal(sample(after, 'hoop_sessions_active{type="postgres"}'), 0, 'the session has ended')
    assert.ok(sample(after, 'hoop_audit_append_seconds_count') >= sample(before, 'hoop_audit_append_seconds_count') + 2, 'session start and statement')
    assert.ok(sample(after, 'hoop_relay_bytes_total{direction="up"}') > sample(before, 'hoop_relay_bytes_total{direction="up"}'))
    assert.ok(sample(after, 'hoop_relay_bytes_total{direction="down"}') > sample(before, 'hoop_relay_bytes_total{direction="down"}'))

    assert.deepEqual(await sessions(), [{subject: 'loader', ended: true}], "the session's row is in PostgreSQL")
    assert.doesNotMatch((gw.proc.stdout() + gw.proc.stderr()), new RegExp(PASSWORD), 'the store password is in no log line')
  })

  it('/readyz answers 503 and callers get STORE_UNAVAILABLE while the store refuses connections; both recover with it', async () => {
    const url = gw!.url
    await adminQuery(`ALTER DATABASE ${DB} ALLOW_CONNECTIONS false`)
    await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${DB}'`)
    try {
      const down = await fetch(`${url}/readyz`)
      assert.equal(down.status, 503)
      assert.deepEqual(await down.json(), {status: 'unavailable', reason: 'store unreachable'})
      assert.equal((await fetch(`${url}/healthz`)).status, 200, 'alive all the same')
      // A caller whose key cannot be looked up gets the store's error, with no password in it.
      const r = await runHoop(['exec', 'db', '-e', 'SELECT 1', '--gateway', url], {env: {HOOP_TOKEN: token}})
      assert.equal(r.code, 27, r.stdout + r.stderr)
      assert.match(r.stderr, /store query failed at postgresql:\/\/postgres:redacted@127\.0\.0\.1:5432\//)
      assert.doesNotMatch(r.stdout + r.stderr, new RegExp(PASSWORD))
    } finally {
      await adminQuery(`ALTER DATABASE ${DB} ALLOW_CONNECTIONS true`)
    }
    assert.equal((await fetch(`${url}/readyz`)).status, 200)
    const r = await runHoop(['exec', 'db', '-e', 'SELECT 1', '--gateway', url], {env: {HOOP_TOKEN: token}})
    assert.equal(r.code, 0, r.stderr)
    assert.ok(sample(await metrics(url), 'hoop_errors_total{code="STORE_UNAVAILABLE"}') >= 1, 'the refusal was counted')
    assert.doesNotMatch((gw!.proc.stdout() + gw!.proc.stderr()), new RegExp(PASSWORD))
  })

  it('refuses to start on a store it cannot reach, with STORE_UNAVAILABLE and the password redacted', async () => {
    const port = await freePort()
    const p = spawnHoop(['gateway', '--config', configFile, '--data-dir', join(dir.path, 'other'), '--listen', '127.0.0.1:0'], {
      env: {...env, HOOP_STORE_URL: `postgresql://postgres:${PASSWORD}@127.0.0.1:${port}/${DB}`},
    })
    const code = await p.exited
    assert.equal(code, 27, (p.stdout() + p.stderr()))
    assert.match((p.stdout() + p.stderr()), new RegExp(`cannot open the store at postgresql://postgres:redacted@127\\.0\\.0\\.1:${port}/${DB}`))
    assert.doesNotMatch((p.stdout() + p.stderr()), new RegExp(PASSWORD))
  })
})
