// kill -9 of the gateway in the middle of a busy session: after a restart the audit log verifies,
// and every statement the target executed has its record (records are durable before forwarding).
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {join} from 'node:path'
import pg from 'pg'
import {pgWriterConfig} from '../helpers/audit-gateway.js'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, startGatewayProc} from '../helpers/gateway.js'
import {sh} from '../helpers/net.js'

const config = (durability: string) => pgWriterConfig(`{durability: ${durability}}`)

describe('audit survives kill -9 of the gateway', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-crash-')
  const table = `crash_${process.pid}`

  after(async () => {
    await sh(`psql -X -h 127.0.0.1 -U postgres test -c "DROP TABLE IF EXISTS ${table}"`)
    dir.cleanup()
  })

  for (const durability of ['fsync', 'os']) it(`keeps a record of every statement the target ran, and the log verifies (durability: ${durability})`, async () => {
    const CONFIG = config(durability)
    const dataDir = join(dir.path, `data-${durability}`)
    await sh(`psql -X -h 127.0.0.1 -U postgres test -c "DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (n int primary key)"`)
    const token = await createSecret('service-accounts', 'loader', dataDir, ['eng'])
    const gw = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    const connect = spawnHoop(['connect', 'db', '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    const port = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    const client = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    client.on('error', () => {})
    await client.connect()
    let sent = 0
    let stop = false
    const loop = (async () => {
      while (!stop) {
        await client.query(`INSERT INTO ${table} VALUES (${sent})`)
        sent++
      }
    })().catch(() => {})
    while (sent < 200) await new Promise((r) => setTimeout(r, 20))
    gw.proc.child.kill('SIGKILL')
    await gw.proc.exited
    stop = true
    await loop
    await connect.stop()

    const ran = await sh(`psql -X -A -t -h 127.0.0.1 -U postgres test -c "SELECT n FROM ${table} ORDER BY n"`)
    const executed = ran.stdout.trim().split('\n').filter(Boolean).map(Number)
    assert.ok(executed.length >= 200, `target executed ${executed.length} inserts`)

    const verify = await runHoop(['audit', 'verify', '--live', '--data-dir', dataDir, '--json'])
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)

    const db = new Database(join(dataDir, 'hoop.db'), {readonly: true})
    const recorded = new Set<number>()
    for (const row of db.prepare("SELECT body, payload FROM audit_events WHERE kind = 'statement'").all() as Array<{body: string; payload: string | null}>) {
      // A v2 event keeps its text in its payload, committed to by payload_hash.
      const text = row.payload ? (JSON.parse(row.payload) as {fields: {text: string}}).fields.text : (JSON.parse(row.body) as {data: {text: string}}).data.text
      const m = new RegExp(`INSERT INTO ${table} VALUES \\((\\d+)\\)`).exec(text)
      if (m) recorded.add(Number(m[1]))
    }
    db.close()
    const missing = executed.filter((n) => !recorded.has(n))
    assert.deepEqual(missing, [], `statements executed without an audit record: ${missing.slice(0, 10).join(', ')}`)

    // The restarted gateway continues the same chain.
    const gw2 = await startGatewayProc(CONFIG, {dir: dir.path, dataDir})
    await gw2.stop()
    const again = await runHoop(['audit', 'verify', '--live', '--data-dir', dataDir])
    assert.equal(again.code, 0, again.stdout + again.stderr)
  })
})
