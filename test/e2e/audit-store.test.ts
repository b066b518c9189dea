// The gateway refuses a store it cannot vouch for (issue 14, item 3), as a process with real
// PostgreSQL: a data dir rolled back to an older copy of hoop.db is refused at start (exit 26) with
// nothing but the witness file; --accept-store-rollback starts on it and records why; and a
// database file swapped while the gateway runs fails closed: the open session's next statement
// and the next session are refused (AUDIT_UNAVAILABLE) and never reach PostgreSQL.
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {copyFileSync, existsSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {pgWriterConfig} from '../helpers/audit-gateway.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, startGatewayProc} from '../helpers/gateway.js'
import {sh} from '../helpers/net.js'

const CONFIG = pgWriterConfig()

describe('the gateway refuses an audit store it cannot vouch for', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-store-')
  const dataDir = join(dir.path, 'data')
  const table = `vouch_${process.pid}`
  let token = ''
  const exec = (sql: string) => runHoop(['exec', 'db', '-e', sql, '--json', '--gateway', gw], {env: {HOOP_TOKEN: token}})
  let gw = ''

  before(async () => {
    token = await createSecret('service-accounts', 'loader', dataDir, ['eng'])
    await sh(`psql -X -h 127.0.0.1 -U postgres test -c "DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (n int primary key)"`)
  })
  after(async () => {
    await sh(`psql -X -h 127.0.0.1 -U postgres test -c "DROP TABLE IF EXISTS ${table}"`)
    dir.cleanup()
  })

  /** A gateway start expected to fail: its exit code (or 'still running' after 20 s, then stopped). */
  async function startRefused(configFile: string): Promise<Proc & {code: number | null | string}> {
    const p = spawnHoop(['gateway', '--config', configFile, '--data-dir', dataDir, '--listen', '127.0.0.1:0'])
    const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 20_000))])
    if (code === 'still running') await p.stop()
    return Object.assign(p, {code})
  }

  /** hoop.db as it is now (the gateway is stopped, so its WAL is folded in). */
  const keep = (name: string) => copyFileSync(join(dataDir, 'hoop.db'), join(dir.path, name))
  const restore = (name: string) => {
    for (const s of ['-wal', '-shm']) rmSync(join(dataDir, `hoop.db${s}`), {force: true})
    copyFileSync(join(dir.path, name), join(dataDir, 'hoop.db'))
  }

  it('a store rolled back to an older copy is refused at start (exit 26); --accept-store-rollback starts and records it', async () => {
    let g = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    gw = g.url
    for (let i = 0; i < 3; i++) assert.equal((await exec(`INSERT INTO ${table} VALUES (${i})`)).code, 0)
    await g.stop()
    keep('older.db')
    g = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    gw = g.url
    for (let i = 3; i < 6; i++) assert.equal((await exec(`INSERT INTO ${table} VALUES (${i})`)).code, 0)
    await g.stop()
    assert.ok(existsSync(join(dataDir, 'audit-witness.jsonl')), 'the default witness file is in the data dir')

    restore('older.db')
    const refused = await startRefused(g.configFile)
    assert.equal(refused.code, 26, refused.stdout() + refused.stderr())
    assert.match(refused.stderr(), /refusing to start on this audit store: the tree head of size \d+ .* but the store ends at seq \d+: it was rolled back to an earlier copy or cut short/)
    assert.match(refused.stderr(), /Hint: .*--accept-store-rollback/)
    assert.doesNotMatch(refused.stdout(), /listening on/)

    // The auditor, with the witness and the pinned key, sees the same.
    const key = await runHoop(['audit', 'key', '--data-dir', dataDir])
    const keyFile = join(dir.path, 'gw.pem')
    writeFileSync(keyFile, key.stdout)
    const v = await runHoop(['audit', 'verify', '--live', '--data-dir', dataDir, '--public-key', keyFile, '--anchor', join(dataDir, 'audit-witness.jsonl')])
    assert.equal(v.code, 19, v.stdout + v.stderr)
    assert.match(v.stdout + v.stderr, /first bad record: event seq \d+: missing: the tree head of size \d+ .* the store was rolled back or truncated/)
    const ex = await runHoop(['audit', 'export', '--data-dir', dataDir, '--out', join(dir.path, 'x.tar.gz')])
    assert.equal(ex.code, 26, 'export does not sign for it either: ' + ex.stderr)

    g = await startGatewayProc(CONFIG, {dir: dir.path, dataDir, extraArgs: ['--accept-store-rollback']})
    await g.stop()
    const db = new Database(join(dataDir, 'hoop.db'), {readonly: true})
    const accepted = db.prepare("SELECT body FROM audit_events WHERE kind = 'audit.store_accepted'").all() as {body: string}[]
    db.close()
    assert.equal(accepted.length, 1)
    const e = JSON.parse(accepted[0].body) as {actor: {kind: string}; data: {problem: string; published_tree_size: number; store_tree_size: number}}
    assert.equal(e.actor.kind, 'operator')
    assert.equal(e.data.problem, 'behind')
    assert.ok(e.data.published_tree_size > e.data.store_tree_size)
    // From now on the gateway vouches for this store.
    g = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    await g.stop()
  })

  it('a database file swapped while the gateway runs: the next statement and the next session are refused, and never reach PostgreSQL', async () => {
    const g = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    gw = g.url
    const connect = spawnHoop(['connect', 'db', '--port', '0', '--json', '--gateway', g.url], {env: {HOOP_TOKEN: token}})
    const port = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    const client = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    client.on('error', () => {})
    await client.connect()
    await client.query(`INSERT INTO ${table} VALUES (100)`)
    try {
      // The older copy moved in over the live file, and the live file's WAL removed, as a restore does.
      copyFileSync(join(dir.path, 'older.db'), join(dataDir, 'swap.db'))
      renameSync(join(dataDir, 'swap.db'), join(dataDir, 'hoop.db'))
      for (const s of ['-wal', '-shm']) rmSync(join(dataDir, `hoop.db${s}`), {force: true})
      await assert.rejects(client.query(`INSERT INTO ${table} VALUES (101)`), /hoop: AUDIT_UNAVAILABLE: /)
      const next = await exec(`INSERT INTO ${table} VALUES (102)`)
      assert.equal(next.code, 24, next.stdout + next.stderr)
      assert.match(next.stdout + next.stderr, /AUDIT_UNAVAILABLE/)
      const ran = await sh(`psql -X -A -t -h 127.0.0.1 -U postgres test -c "SELECT n FROM ${table} WHERE n > 100"`)
      assert.equal(ran.stdout.trim(), '', 'nothing ran after the swap')
      assert.match(g.proc.stderr() + g.proc.stdout(), /audit store changed under the gateway; refusing every statement/)
    } finally {
      await client.end().catch(() => {})
      await connect.stop()
      await g.stop()
    }
    // The head of every acknowledged event went to the witness: the swapped store is refused at start.
    const again = await startRefused(g.configFile)
    assert.equal(again.code, 26, again.stdout() + again.stderr())
  })
})
