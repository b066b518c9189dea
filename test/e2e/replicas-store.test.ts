// Three gateway replicas on one PostgreSQL store (issue 16), with real processes from the built
// CLI: an approval requested through replica A is decided on B and used on C, at once and only
// once, and the three steps are in the one audit log on the store: an evidence package exported
// through any replica holds them and verifies, and so does the live store; an agent revoked
// through B loses the link it holds to C at once, and a service account revoked through A loses
// hoop connect's link to B and its open session, by NOTIFY: the replicas sweep revocations only
// every ten minutes here, so no sweep can explain the cuts.
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {randomBytes} from 'node:crypto'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {readTarGz} from '../../src/audit/tar.js'
import {adminQuery} from '../conformance/backends.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {type GatewayProc, sharedStoreConfig, startGatewayProc} from '../helpers/gateway.js'

const DB = `hoop_store_test_${process.pid}_replicas`
const STORE_URL = `postgresql://postgres@127.0.0.1:5432/${DB}`
const TABLE = `hoop_replicas_e2e_${randomBytes(4).toString('hex')}`
const APR = /apr_[A-Za-z0-9_-]{12}/

const CONFIG = sharedStoreConfig(`    - {id: people, subjects: {groups: [eng, dba]}, connections: [pg], effect: allow}
    - id: writes-need-approval
      effect: review
      connections: [pg]
      match: {writes: true}
      review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}
`)

/** The kinds of the audit events about one approval, in order, in the one log on the store. */
async function approvalEvents(id: string): Promise<string[]> {
  const rows = await adminQuery<{kind: string}>(`SELECT kind FROM audit_events WHERE kind LIKE 'approval.%' AND body LIKE '%${id}%' ORDER BY seq`, STORE_URL)
  return rows.map((r) => r.kind)
}

/** A package's files, by path inside it. */
async function packageFiles(pkg: string): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  await readTarGz(pkg, (name) => {
    const chunks: Buffer[] = []
    return {data: (c) => chunks.push(Buffer.from(c)), end: () => files.set(name.replace(/^[^/]+\//, ''), Buffer.concat(chunks).toString('utf8'))}
  })
  return files
}

/** The agent's JSON log line for a link made to `url`. */
const linkedTo = (url: string) => new RegExp(`"msg":"connected to gateway","gateway":"${url.replace(/[.]/g, '\\.')}"`)

describe('three gateway replicas on one PostgreSQL store: approvals and revocations cross replicas (built CLI)', function () {
  this.timeout(240_000)
  const dir = tempDir('hoop-e2e-replicas-store-')
  const env = {HOOP_STORE_URL: STORE_URL}
  const gwEnv = {...env, HOOP_REVOCATION_SWEEP_MS: '600000'}
  const gws: GatewayProc[] = []
  const agents: Proc[] = []
  const tokens: Record<string, string> = {}

  /** Makes a credential in the shared store, as an operator would before any replica runs. */
  const create = async (kind: 'agents' | 'service-accounts', name: string, groups: string[] = []) => {
    const r = await runHoop(['admin', kind, 'create', name, '--config', join(dir.path, 'gateway.yaml'), '--json', ...groups.flatMap((g) => ['--group', g])], {env})
    assert.equal(r.code, 0, r.stderr)
    return (JSON.parse(r.stdout) as {token: string}).token
  }
  const counter = async () => Number((await adminQuery<{n: number}>(`SELECT n FROM ${TABLE} WHERE id = 1`, 'postgresql://postgres@127.0.0.1:5432/test'))[0].n)

  before(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${DB}`)
    await adminQuery(`CREATE DATABASE ${DB}`)
    await adminQuery(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, n int NOT NULL); INSERT INTO ${TABLE} VALUES (1, 0)`, 'postgresql://postgres@127.0.0.1:5432/test')
    // The first replica migrates the store; `hoop admin --config` needs the schema in place.
    for (const name of ['a', 'b', 'c']) {
      mkdirSync(join(dir.path, name))
      gws.push(await startGatewayProc(CONFIG, {dir: join(dir.path, name), env: gwEnv}))
    }
    writeFileSync(join(dir.path, 'gateway.yaml'), CONFIG)
    tokens.agent = await create('agents', 'db-agent')
    tokens.cAgent = await create('agents', 'c-agent')
    tokens.dev = await create('service-accounts', 'dev-bot', ['eng'])
    tokens.dba = await create('service-accounts', 'dba-bot', ['dba'])
    tokens.admin = await create('service-accounts', 'root-admin', ['admins'])
    tokens.temp = await create('service-accounts', 'temp-bot', ['eng'])
    const agent = spawnHoop(['agent', '--gateway', gws.map((g) => g.url).join(',')], {env: {HOOP_AGENT_TOKEN: tokens.agent}})
    agents.push(agent)
    for (const gw of gws) await agent.waitFor(linkedTo(gw.url))
  })

  after(async () => {
    for (const a of agents) await a.stop()
    for (const gw of gws) await gw.stop()
    await adminQuery(`DROP TABLE IF EXISTS ${TABLE}`, 'postgresql://postgres@127.0.0.1:5432/test').catch(() => undefined)
    await adminQuery(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
    dir.cleanup()
  })

  it('an approval requested through A, decided on B, is used on C once, and cannot be replayed on any replica', async () => {
    const [a, b, c] = gws
    const update = `UPDATE ${TABLE} SET n = n + 1 WHERE id = 1`
    const exec = (gw: GatewayProc) => runHoop(['exec', 'pg', '--gateway', gw.url, '-e', update], {env: {HOOP_TOKEN: tokens.dev}})

    const held = await exec(a)
    assert.equal(held.code, 17, held.stdout + held.stderr)
    const id = APR.exec(held.stderr)?.[0]
    assert.ok(id, held.stderr)

    const listed = await runHoop(['approvals', 'list', '--json', '--gateway', b.url], {env: {HOOP_TOKEN: tokens.dba}})
    assert.equal(listed.code, 0, listed.stderr)
    assert.ok((JSON.parse(listed.stdout) as {approvals: Array<{id: string}>}).approvals.some((x) => x.id === id), 'B lists the request made through A')
    const self = await runHoop(['approvals', 'approve', id, '--reason', 'mine', '--gateway', b.url], {env: {HOOP_TOKEN: tokens.dev}})
    assert.equal(self.code, 15, 'no self-approval on another replica either')
    const ok = await runHoop(['approvals', 'approve', id, '--reason', 'ticket OPS-16', '--gateway', b.url], {env: {HOOP_TOKEN: tokens.dba}})
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(await counter(), 0, 'nothing ran yet')

    const ran = await exec(c)
    assert.equal(ran.code, 0, ran.stderr)
    assert.match(ran.stdout, /UPDATE 1/)
    assert.equal(await counter(), 1)

    for (const gw of [a, b, c]) {
      const replay = await exec(gw)
      assert.equal(replay.code, 17, `the spent approval is spent on ${gw.url} too`)
      assert.notEqual(APR.exec(replay.stderr)?.[0], id)
    }
    assert.equal(await counter(), 1)
    const shown = await runHoop(['approvals', 'show', id, '--json', '--gateway', a.url], {env: {HOOP_TOKEN: tokens.dev}})
    assert.equal((JSON.parse(shown.stdout) as {state: string}).state, 'used')
    // One audit log on the store: the three steps, each written by the replica that handled it.
    assert.deepEqual(await approvalEvents(id), ['approval.requested', 'approval.decided', 'approval.used'])
    for (const gw of gws) assert.equal(new Database(join(gw.dataDir, 'hoop.db'), {readonly: true}).prepare('SELECT count(*) AS n FROM audit_events').pluck().get(), 0, 'nothing in the data dir')

    // Every replica lists every replica's sessions, with their recordings (on the store too). A
    // replica ends a session's row and recording just after its client has gone, while the CLI
    // exits: the last ones may still be ending, so list again until they are (30 s bound).
    for (const gw of gws) {
      const list = async () => {
        const listed = await runHoop(['sessions', 'list', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: tokens.admin}})
        assert.equal(listed.code, 0, listed.stderr)
        return JSON.parse(listed.stdout) as Array<{id: string; endedAt?: string; recording?: {chunks: number}}>
      }
      const deadline = Date.now() + 30_000
      let sessions = await list()
      while (!sessions.every((x) => x.endedAt && x.recording) && Date.now() < deadline) sessions = await list()
      assert.ok(sessions.length >= 5, `${gw.url} lists the sessions of all three replicas: ${sessions.length}`)
      assert.ok(sessions.every((x) => x.endedAt && x.recording), JSON.stringify(sessions.slice(0, 2)))
      assert.ok(sessions.some((x) => x.recording!.chunks > 0), 'the recordings hold what was exchanged')
    }

    // An evidence package from any replica holds all three steps and verifies (with the key it names).
    for (const gw of gws) {
      const pkg = join(dir.path, `evidence-${gws.indexOf(gw)}.tar.gz`)
      const ex = await runHoop(['audit', 'export', '--out', pkg, '--gateway', gw.url, '--json'], {env: {HOOP_TOKEN: tokens.admin}})
      assert.equal(ex.code, 0, ex.stderr + ex.stdout)
      const v = await runHoop(['audit', 'verify', pkg, '--json'])
      assert.equal(v.code, 0, v.stdout + v.stderr)
      assert.equal((JSON.parse(v.stdout) as {ok: boolean}).ok, true)
      const approvals = (await packageFiles(pkg)).get('reports/approvals.jsonl') ?? ''
      const steps: Array<string | undefined> = approvals.trim().split('\n').map((l) => JSON.parse(l) as {approval_id?: string; event?: string}).filter((r) => r.approval_id === id).map((r) => r.event)
      assert.deepEqual(steps, ['requested', 'approved', 'used'], `the package from ${gw.url} holds every step`)
      const live = await runHoop(['audit', 'verify', '--live', '--gateway', gw.url, '--json'], {env: {HOOP_TOKEN: tokens.admin}})
      assert.equal(live.code, 0, live.stdout + live.stderr)
      assert.equal((JSON.parse(live.stdout) as {ok: boolean}).ok, true)
    }
  })

  it('an agent revoked through B loses its link to C by NOTIFY (the sweep is ten minutes away)', async () => {
    const [, b, c] = gws
    const cAgent = spawnHoop(['agent', '--gateway', c.url], {env: {HOOP_AGENT_TOKEN: tokens.cAgent}})
    agents.push(cAgent)
    await cAgent.waitFor(linkedTo(c.url))
    const started = Date.now()
    let cutAt = 0
    void cAgent.exited.then(() => (cutAt = Date.now()))
    const revoke = await runHoop(['admin', 'agents', 'revoke', 'c-agent', '--gateway', b.url], {env: {HOOP_TOKEN: tokens.admin}})
    assert.equal(revoke.code, 0, revoke.stderr)
    // Its only link is to C, so C (not B) cut it, on B's NOTIFY: C's sweep is ten minutes away and
    // the agent's exit is awaited within the test's timeout.
    assert.equal(await cAgent.exited, 11, cAgent.stderr())
    console.log(`      the agent on C exited ${cutAt - started} ms after \`hoop admin agents revoke\` started (its CLI start-up included; sweep: 10 min)`)
    assert.match(cAgent.stderr(), /revoked/)
    // The other agent, not revoked, keeps serving through C.
    const r = await runHoop(['exec', 'pg', '--gateway', c.url, '-e', `SELECT n FROM ${TABLE} WHERE id = 1`], {env: {HOOP_TOKEN: tokens.dev}})
    assert.equal(r.code, 0, r.stderr)
  })

  it("a service account revoked through A loses hoop connect's link to B, and its open session, by NOTIFY", async () => {
    const [a, b] = gws
    const conn = spawnHoop(['connect', 'pg', '--port', '0', '--json', '--gateway', b.url], {env: {HOOP_TOKEN: tokens.temp}})
    agents.push(conn)
    const port = (JSON.parse((await conn.waitFor(/\{"connection".*\}/))[0]) as {port: number}).port
    const session = new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test'})
    const ended = new Promise<Error | undefined>((resolve) => {
      session.once('error', resolve)
      session.once('end', () => resolve(undefined))
    })
    await session.connect()
    assert.equal((await session.query("SELECT 'on' || 'B' AS v")).rows[0].v, 'onB')
    const revoke = await runHoop(['admin', 'service-accounts', 'revoke', 'temp-bot', '--gateway', a.url], {env: {HOOP_TOKEN: tokens.admin}})
    assert.equal(revoke.code, 0, revoke.stderr)
    // B's sweep is ten minutes away: only A's notification can end the session within the test.
    await ended
    // hoop connect stops: the gateway no longer accepts its credential, and it says why.
    assert.notEqual(await conn.exited, 0)
    assert.match(conn.stdout(), /"code": "TOKEN_REJECTED"[\s\S]*service-account key for \\"temp-bot\\" was revoked/)
    assert.match(conn.stderr(), /no longer accepts this CLI's credential/)
    await session.end().catch(() => undefined)
  })
})
