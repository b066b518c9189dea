// kill -9 of a gateway whose audit log is on the PostgreSQL store, in the middle of busy sessions:
// the log on the store verifies, and what each audit mode promises holds (docs/audit.md):
//   hold:   every statement whose response reached a client has its record;
//   strict: every statement the target executed has its record.
// A record is durable when PostgreSQL's COMMIT of its group is. Real processes of the built CLI
// (gateway, connect), the real PostgreSQL as store and as target, the real pg driver: each client
// INSERTs unique ids and notes which ones it got a response for. Store databases:
// hoop_audit_crash_test_<pid>_<mode>, dropped afterwards.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {withAuditSnapshot} from '../../src/audit/pg-snapshot.js'
import {verifyLive} from '../../src/audit/verify.js'
import {PostgresStore} from '../../src/store/postgres.js'
import {adminQuery} from '../conformance/backends.js'
import {insertUntilKilled, pgWriterConfig} from '../helpers/audit-gateway.js'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {startGatewayProc} from '../helpers/gateway.js'
import {sh} from '../helpers/net.js'

const CLIENTS = 4

describe('audit on the PostgreSQL store survives kill -9 of the gateway', function () {
  this.timeout(240_000)
  const dir = tempDir('hoop-e2e-crash-pg-')
  const table = `crash_pg_${process.pid}`
  const databases: string[] = []

  after(async () => {
    await sh(`psql -X -h 127.0.0.1 -U postgres test -c "DROP TABLE IF EXISTS ${table}"`)
    for (const name of databases) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    dir.cleanup()
  })

  /** What the log on the store says: it verifies, and which inserts have a statement record. */
  async function recordedIn(url: string): Promise<{recorded: Set<number>; events: number}> {
    const store = await PostgresStore.open({url, poolSize: 2})
    try {
      const result = await withAuditSnapshot(store, {}, (db) => verifyLive(db))
      assert.equal(result.ok, true, JSON.stringify(result.failures.slice(0, 3)))
      const recorded = new Set<number>()
      for (const row of await store.query("SELECT payload FROM audit_events WHERE kind = 'statement'")) {
        const text = (JSON.parse(row.payload as string) as {fields: {text: string}}).fields.text
        const m = new RegExp(`INSERT INTO ${table} VALUES \\((\\d+)\\)`).exec(text)
        if (m) recorded.add(Number(m[1]))
      }
      return {recorded, events: result.events}
    } finally {
      await store.close()
    }
  }

  async function crash(mode: 'hold' | 'strict', before = 200): Promise<{executed: number[]; acked: Set<number>; recorded: Set<number>}> {
    const db = `hoop_audit_crash_test_${process.pid}_${mode}`
    await adminQuery(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    await adminQuery(`CREATE DATABASE ${db}`)
    databases.push(db)
    const url = `postgresql://postgres@127.0.0.1:5432/${db}`
    const env = {HOOP_STORE_URL: url}
    const config = `store:\n  postgres:\n    url: {env: HOOP_STORE_URL}\n${pgWriterConfig(`{mode: ${mode}}`)}`
    const dataDir = join(dir.path, `data-${mode}`)
    await sh(`psql -X -h 127.0.0.1 -U postgres test -c "DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (n int primary key)"`)
    const gw = await startGatewayProc(config, {dir: dir.path, dataDir, env})
    const made = await runHoop(['admin', 'service-accounts', 'create', 'loader', '--group', 'eng', '--config', gw.configFile, '--json'], {env})
    assert.equal(made.code, 0, made.stderr)
    const token = (JSON.parse(made.stdout) as {token: string}).token
    const connect = spawnHoop(['connect', 'db', '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    const port = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    const {acked, executed} = await insertUntilKilled({port, table, clients: CLIENTS, before, gateway: gw, connect})
    const {recorded, events} = await recordedIn(url)

    // The restarted gateway vouches for the store against its witness file and continues the chain.
    const gw2 = await startGatewayProc(config, {dir: dir.path, dataDir, env})
    await gw2.stop()
    const again = await recordedIn(url)
    assert.ok(again.events >= events, `the restart kept every event (${events} -> ${again.events})`)
    return {executed, acked, recorded}
  }

  it('hold: every statement whose response reached the client has its record', async () => {
    const {acked, recorded} = await crash('hold')
    assert.ok(acked.size >= 200, `the clients got ${acked.size} responses`)
    const missing = [...acked].filter((n) => !recorded.has(n))
    assert.deepEqual(missing, [], `responses that reached a client without an audit record: ${missing.slice(0, 10).join(', ')}`)
  })

  it('strict: every statement the target executed has its record', async () => {
    const {executed, acked, recorded} = await crash('strict')
    assert.ok(executed.length >= 200 && acked.size >= 200, `target executed ${executed.length} inserts, clients got ${acked.size} responses`)
    const missing = executed.filter((n) => !recorded.has(n))
    assert.deepEqual(missing, [], `statements executed without an audit record: ${missing.slice(0, 10).join(', ')}`)
  })
})
