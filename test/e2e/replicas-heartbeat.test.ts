// Replica heartbeats on one PostgreSQL store (docs/ha.md, "Replicas and heartbeats"), with real processes from
// the built CLI: a replica killed with kill -9 while it holds an open session stops beating, and a
// surviving replica ends that session (its row, and a session.end with UNRECORDED_END in the one
// audit log) without the dead replica ever coming back; the log still verifies live. An agent
// given one replica's URL finds the others through GET /v1/replicas and links to each.
// Heartbeats are 300 ms here (HOOP_REPLICA_HEARTBEAT_MS), so a replica is dead after about a second.
import assert from 'node:assert/strict'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {UNRECORDED_END} from '../../src/gateway/sessions.js'
import {adminQuery} from '../conformance/backends.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {type GatewayProc, sharedStoreConfig, startGatewayProc} from '../helpers/gateway.js'
import {eventually} from '../helpers/wait.js'

const DB = `hoop_store_test_${process.pid}_heartbeat`
const STORE_URL = `postgresql://postgres@127.0.0.1:5432/${DB}`
const CONFIG = sharedStoreConfig(`    - {id: people, subjects: {groups: [eng]}, connections: [pg], effect: allow}
`)

/** The agent's JSON log line for a link made to `url`. */
const linkedTo = (url: string) => new RegExp(`"msg":"connected to gateway","gateway":"${url.replace(/[.]/g, '\\.')}"`)

describe('replica heartbeats on one PostgreSQL store (built CLI)', function () {
  this.timeout(240_000)
  const dir = tempDir('hoop-e2e-heartbeat-')
  const env = {HOOP_STORE_URL: STORE_URL}
  const gwEnv = {...env, HOOP_REPLICA_HEARTBEAT_MS: '300'}
  const gws: GatewayProc[] = []
  const procs: Proc[] = []
  const tokens: Record<string, string> = {}

  const create = async (kind: 'agents' | 'service-accounts', name: string, groups: string[] = []) => {
    const r = await runHoop(['admin', kind, 'create', name, '--config', join(dir.path, 'gateway.yaml'), '--json', ...groups.flatMap((g) => ['--group', g])], {env})
    assert.equal(r.code, 0, r.stderr)
    return (JSON.parse(r.stdout) as {token: string}).token
  }
  const startReplica = async (name: string) => {
    mkdirSync(join(dir.path, name))
    const gw = await startGatewayProc(CONFIG, {dir: join(dir.path, name), env: gwEnv})
    gws.push(gw)
    return gw
  }
  /** An agent linked to `gw` only, and a node-postgres session through `hoop connect` to it. */
  const sessionThrough = async (gw: GatewayProc) => {
    const agent = spawnHoop(['agent', '--gateway', gw.url], {env: {HOOP_AGENT_TOKEN: tokens.agent}})
    procs.push(agent)
    await agent.waitFor(linkedTo(gw.url))
    const conn = spawnHoop(['connect', 'pg', '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: tokens.dev}})
    procs.push(conn)
    const port = (JSON.parse((await conn.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    const client = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    client.on('error', () => undefined)
    await client.connect()
    return {agent, conn, client}
  }
  const replicaRows = async () => (await adminQuery<{url: string}>('SELECT url FROM replicas ORDER BY url', STORE_URL)).map((r) => r.url)

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB}`)
    await adminQuery(`CREATE DATABASE ${DB}`)
    for (const name of ['a', 'b', 'c']) await startReplica(name)
    writeFileSync(join(dir.path, 'gateway.yaml'), CONFIG)
    tokens.agent = await create('agents', 'db-agent')
    tokens.dev = await create('service-accounts', 'dev-bot', ['eng'])
    tokens.admin = await create('service-accounts', 'root-admin', ['admins'])
  })

  after(async () => {
    for (const p of procs) await p.stop()
    for (const gw of gws) await gw.stop()
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    dir.cleanup()
  })

  it('each replica has a beating row; a clean shutdown removes its row', async () => {
    assert.deepEqual(await replicaRows(), gws.map((g) => g.url).sort())
    const [before] = await adminQuery<{t: Date}>('SELECT max(heartbeat_at) AS t FROM replicas', STORE_URL)
    await eventually('a newer heartbeat', 10_000, async () => {
      const [now] = await adminQuery<{t: Date}>('SELECT min(heartbeat_at) AS t FROM replicas', STORE_URL)
      return now.t > before.t ? true : undefined
    })
    const extra = await startReplica('extra')
    assert.ok((await replicaRows()).includes(extra.url))
    await extra.stop()
    assert.ok(!(await replicaRows()).includes(extra.url), 'its row went with a clean shutdown')
  })

  it('kill -9 of a replica holding an open session: a survivor ends the session and removes the dead row', async () => {
    const d = await startReplica('d')
    const {agent, conn, client} = await sessionThrough(d)
    assert.equal((await client.query("SELECT 'on' || 'D' AS v")).rows[0].v, 'onD')
    const [open] = await adminQuery<{id: string}>('SELECT id FROM sessions WHERE ended_at IS NULL', STORE_URL)
    assert.ok(open, 'the session is open in the store')

    const killedAt = Date.now()
    d.proc.child.kill('SIGKILL')
    await d.proc.exited
    // A generous bound: three missed 300 ms beats, then the next beat of a survivor.
    const row = await eventually('the dead replica\'s session ended by a survivor', 30_000, async () => {
      const [s] = await adminQuery<{ended_at: Date | null; end_reason: string | null}>(`SELECT ended_at, end_reason FROM sessions WHERE id = '${open.id}'`, STORE_URL)
      return s.ended_at ? s : undefined
    })
    console.log(`      the session of the killed replica was ended ${Date.now() - killedAt} ms after the kill (heartbeat 300 ms)`)
    assert.equal(row.end_reason, UNRECORDED_END)
    const ends = await adminQuery<{body: string}>(`SELECT body FROM audit_events WHERE session = '${open.id}' AND kind = 'session.end'`, STORE_URL)
    assert.equal(ends.length, 1, 'exactly one session.end, whichever survivor saw the death')
    assert.equal((JSON.parse(ends[0].body) as {data: {reason: string}}).data.reason, UNRECORDED_END)
    const [rec] = await adminQuery<{finished_at: string | null}>(`SELECT finished_at FROM audit_recordings WHERE session_id = '${open.id}'`, STORE_URL)
    assert.ok(rec.finished_at, 'its recording was closed over the stored chunks')
    await eventually('the dead row removed', 10_000, async () => ((await replicaRows()).includes(d.url) ? undefined : true))

    for (const gw of gws.slice(0, 3)) {
      const live = await runHoop(['audit', 'verify', '--live', '--gateway', gw.url, '--json'], {env: {HOOP_TOKEN: tokens.admin}})
      assert.equal(live.code, 0, live.stdout + live.stderr)
      assert.equal((JSON.parse(live.stdout) as {ok: boolean}).ok, true)
    }
    await client.end().catch(() => undefined)
    await conn.stop()
    await agent.stop()
  })

  it('a replica paused past its beats is fenced: the statement sent during the pause gets no result, its session is closed, and it serves new sessions', async () => {
    const f = await startReplica('f')
    const {agent, conn, client} = await sessionThrough(f)
    assert.equal((await client.query("SELECT 'before' || 'pause' AS v")).rows[0].v, 'beforepause')
    const [open] = await adminQuery<{id: string}>(`SELECT s.id FROM sessions s JOIN audit_recordings r ON r.session_id = s.id WHERE s.ended_at IS NULL AND r.replica = (SELECT id FROM replicas WHERE url = '${f.url}')`, STORE_URL)
    assert.ok(open, 'the session is open in the store, recorded by f')

    let during: Promise<{rows: {v: string}[]} | {error: string}> | undefined
    f.proc.child.kill('SIGSTOP')
    try {
      await eventually('the paused replica\'s session ended by another', 30_000, async () => {
        const [s] = await adminQuery<{ended_at: Date | null}>(`SELECT ended_at FROM sessions WHERE id = '${open.id}'`, STORE_URL)
        return s.ended_at ? true : undefined
      })
    } finally {
      // Sent while f is stopped: it waits in f's socket buffer and is read when f resumes.
      during = client.query("SELECT 'after' || 'pause' AS v").then(
        (r) => ({rows: r.rows as {v: string}[]}),
        (err: Error) => ({error: err.message}),
      )
      f.proc.child.kill('SIGCONT')
    }
    const outcome = await during!
    assert.ok(!('rows' in outcome), `no result may reach the client of a session ended in the log: ${JSON.stringify(outcome)}`)
    const [end] = await adminQuery<{seq: string}>(`SELECT seq FROM audit_events WHERE session = '${open.id}' AND kind = 'session.end'`, STORE_URL)
    const later = await adminQuery<{kind: string}>(`SELECT kind FROM audit_events WHERE session = '${open.id}' AND seq > ${end.seq}`, STORE_URL)
    assert.deepEqual(later, [], 'nothing of that session is recorded after its end')
    await client.end().catch(() => undefined)

    // Fenced, the replica registered again: it beats, and a new session through it works.
    await eventually('f registered again', 10_000, async () => ((await replicaRows()).includes(f.url) ? true : undefined))
    const again = await eventually('a new session through f', 30_000, async () => {
      const r = await runHoop(['exec', 'pg', '--gateway', f.url, '-e', "SELECT 'fresh' || 'F' AS v"], {env: {HOOP_TOKEN: tokens.dev}})
      return r.code === 0 ? r : undefined
    })
    assert.match(again.stdout, /freshF/)
    const live = await runHoop(['audit', 'verify', '--live', '--gateway', f.url, '--json'], {env: {HOOP_TOKEN: tokens.admin}})
    assert.equal(live.code, 0, live.stdout + live.stderr)
    await conn.stop()
    await agent.stop()
    await f.stop()
    gws.splice(gws.indexOf(f), 1)
  })

  it('an agent given only A discovers B and C through GET /v1/replicas, serves a session through C, and drops a replica gone for the grace period', async () => {
    const [a, b, c] = gws
    // The route takes an agent's token; it lists the live replicas, not the dead or stopped ones.
    const res = await fetch(`${a.url}/v1/replicas`, {headers: {authorization: `Bearer ${tokens.agent}`}})
    assert.equal(res.status, 200)
    assert.deepEqual(((await res.json()) as {replicas: Array<{url: string}>}).replicas.map((r) => r.url).sort(), [a.url, b.url, c.url].sort())
    assert.equal((await fetch(`${a.url}/v1/replicas`)).status, 401, 'and no token, no list')

    const agent = spawnHoop(['agent', '--gateway', a.url], {env: {HOOP_AGENT_TOKEN: tokens.agent, HOOP_AGENT_DISCOVERY_MS: '300', HOOP_AGENT_DISCOVERY_GRACE_MS: '1000'}})
    procs.push(agent)
    for (const gw of [a, b, c]) await agent.waitFor(linkedTo(gw.url))
    const r = await runHoop(['exec', 'pg', '--gateway', c.url, '-e', "SELECT 'via' || 'C' AS v"], {env: {HOOP_TOKEN: tokens.dev}})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /viaC/)

    // A replica that joins later is found; once it leaves (clean shutdown: its row goes), its link
    // is dropped after the grace period, and the given URL's link stays.
    const e = await startReplica('e')
    await agent.waitFor(linkedTo(e.url))
    await e.stop()
    await agent.waitFor(new RegExp(`dropping the link to a replica no longer listed","gateway":"${e.url.replace(/[.]/g, '\\.')}"`))
    const again = await runHoop(['exec', 'pg', '--gateway', a.url, '-e', 'SELECT 1 AS one'], {env: {HOOP_TOKEN: tokens.dev}})
    assert.equal(again.code, 0, again.stderr)
    await agent.stop()
  })
})
