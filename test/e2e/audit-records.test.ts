// Complete records with the built CLI, a real gateway process and PostgreSQL (issue 14, item 4): a
// session cut by kill -9 is closed on restart with its reason; a policy change is a policy.reload
// event with the old and new versions; exports and evidence views are audited with who, what
// range and when, through the gateway and on the data dir.
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import type {StoredEvent} from '../../src/audit/events.js'
import {runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'

const POLICY = `version: 1
rules:
  - {id: writers, subjects: {groups: [eng]}, connections: [db], effect: allow}
`

describe('complete audit records (built CLI, real gateway and PostgreSQL)', function () {
  this.timeout(180_000)
  const dir = tempDir('hoop-e2e-records-')
  const dataDir = join(dir.path, 'data')
  const policyFile = join(dir.path, 'policy.yaml')
  const config = `connections:
  - {name: db, type: postgres, target: "127.0.0.1:5432", database: test, username: postgres}
policy: ${policyFile}
`
  let gw: GatewayProc
  let loader: Record<string, string>
  let auditor: Record<string, string>

  const events = (kind: string): StoredEvent[] => {
    const db = new Database(join(dataDir, 'hoop.db'), {readonly: true})
    try {
      return (db.prepare('SELECT body FROM audit_events WHERE kind = ? ORDER BY seq').all(kind) as {body: string}[]).map((r) => JSON.parse(r.body) as StoredEvent)
    } finally {
      db.close()
    }
  }
  const eventually = async (kind: string, ok: (e: StoredEvent) => boolean): Promise<StoredEvent> => {
    for (let i = 0; i < 100; i++) {
      const found = events(kind).find(ok)
      if (found) return found
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`no ${kind} event as expected: ${JSON.stringify(events(kind)).slice(0, 2000)}`)
  }

  before(async () => {
    writeFileSync(policyFile, POLICY)
    loader = {HOOP_TOKEN: await createSecret('service-accounts', 'loader', dataDir, ['eng'])}
    auditor = {HOOP_TOKEN: await createSecret('service-accounts', 'iso-auditor', dataDir, ['auditors'])}
  })
  after(async () => {
    await gw?.stop()
    dir.cleanup()
  })

  it('a session cut by kill -9 of the gateway gets its end, with the reason, when the gateway starts again', async () => {
    gw = await startGatewayProc(config, {dir: dir.path, dataDir})
    const connect = spawnHoop(['connect', 'db', '--port', '0', '--json', '--gateway', gw.url], {env: loader})
    const port = (JSON.parse((await connect.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    const client = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    client.on('error', () => {})
    await client.connect()
    await client.query('SELECT 1')
    const [start] = events('session.start')
    gw.proc.child.kill('SIGKILL')
    await gw.proc.exited
    await client.end().catch(() => {})
    await connect.stop()
    assert.equal(events('session.end').length, 0, 'the crash left the session without an end')

    gw = await startGatewayProc(config, {dir: dir.path, dataDir})
    const [end] = events('session.end')
    assert.equal(end.session, start.session)
    assert.equal(end.data.reason, 'gateway restarted; session ended without a record of its end')
    assert.equal(end.data.unrecorded, true)
    assert.equal(end.actor?.name, 'loader')
    assert.equal(typeof start.data.policy_version, 'string', 'the access decision names the policy version')
  })

  it('a policy change is a policy.reload event with the old and the new version', async () => {
    const first = await eventually('policy.reload', (e) => e.data.trigger === 'start')
    writeFileSync(policyFile, POLICY + '  - {id: no-drop, effect: block, match: {kinds: [drop]}}\n')
    const reload = await eventually('policy.reload', (e) => e.data.trigger === 'reload')
    assert.equal(reload.data.ok, true)
    assert.equal(reload.data.old_version, first.data.new_version)
    assert.notEqual(reload.data.new_version, reload.data.old_version)
    assert.equal(reload.data.rules, 2)
    // The second start recorded the version in force before it as the old one.
    const starts = events('policy.reload').filter((e) => e.data.trigger === 'start')
    assert.equal(starts.at(-1)!.data.old_version, starts[0].data.new_version)
  })

  it('exports and evidence views are audited: who, what range, when (through the gateway and on the data dir)', async () => {
    const list = await runHoop(['sessions', 'list', '--gateway', gw.url, '--json'], {env: auditor})
    assert.equal(list.code, 0, list.stderr)
    const pkg = join(dir.path, 'q.tar.gz')
    const ex = await runHoop(['audit', 'export', '--out', pkg, '--from', '2020-01-01', '--gateway', gw.url, '--json'], {env: auditor})
    assert.equal(ex.code, 0, ex.stderr)
    const sum = JSON.parse(ex.stdout) as {sha256: string; firstSeq: number; lastSeq: number}
    const exported = await eventually('audit.access', (e) => e.data.action === 'export')
    assert.equal(exported.actor?.name, 'iso-auditor')
    assert.equal(exported.data.via, 'gateway')
    assert.equal(exported.data.from, '2020-01-01T00:00:00.000Z')
    assert.equal(exported.data.first_seq, sum.firstSeq)
    assert.equal(exported.data.last_seq, sum.lastSeq)
    assert.equal(exported.data.sha256, sum.sha256)
    assert.ok(Date.parse(exported.time) > Date.now() - 60_000, 'when')
    assert.equal((await eventually('audit.access', (e) => e.data.action === 'sessions.list')).actor?.name, 'iso-auditor')

    // On the gateway host: the command notes it, the running gateway appends it.
    const local = await runHoop(['sessions', 'list', '--data-dir', dataDir, '--json'])
    assert.equal(local.code, 0, local.stderr)
    const viewed = await eventually('audit.access', (e) => e.data.via === 'data-dir')
    assert.equal(viewed.actor?.kind, 'operator')
    assert.equal(viewed.data.action, 'sessions.list')
    await gw.stop()
    const v = await runHoop(['audit', 'verify', '--live', '--data-dir', dataDir, '--anchor', join(dataDir, 'audit-witness.jsonl')])
    assert.equal(v.code, 0, v.stdout + v.stderr)
  })
})
