// A gateway on the PostgreSQL store with a file sink, a real RFC 3161 timestamp authority
// (openssl ts) and payload retention, on the built CLI (issue 16): statements through the gateway
// reach the sink in order, the heads the replica signs are stamped (anchors in the store and the
// witness), retention expires payloads while a legal hold placed with `hoop audit hold --config`
// keeps one user's (from `hoop audit erase --config` too) until it is released, and the package
// `hoop audit export` builds from the store verifies (`hoop audit verify --json`, with the witness
// and the TSA's CA), naming the expiries. Then two replicas share a sink and the one driving it is
// killed with kill -9: the other takes it over from the position in the store, losing no event.
// Databases: hoop_audit_jobs_e2e_<pid>[_kill].
import assert from 'node:assert/strict'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {adminQuery} from '../conformance/backends.js'
import {pgWriterConfig} from '../helpers/audit-gateway.js'
import {runHoop, tempDir} from '../helpers/cli.js'
import {type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {type LocalTsa, startLocalTsa} from '../integration/audit/_tsa.js'

const DB = `hoop_audit_jobs_e2e_${process.pid}`
const URL_ = `postgresql://postgres@127.0.0.1:5432/${DB}`
const DB2 = `${DB}_kill`
const URL2 = `postgresql://postgres@127.0.0.1:5432/${DB2}`

/**
 * The seqs of the event lines in a sink file (head lines carry none). The gateway appends to it
 * while this reads: a line not ended by its newline yet may be half written, so only whole lines count.
 */
function sinkSeqs(file: string): number[] {
  if (!existsSync(file)) return []
  const whole = readFileSync(file, 'utf8').split('\n').slice(0, -1)
  return whole.filter(Boolean).map((l) => JSON.parse(l) as {seq?: number}).flatMap((l) => (l.seq ? [l.seq] : []))
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe('audit sinks, timestamps, retention, holds and erasure on the PostgreSQL store (built CLI)', function () {
  this.timeout(240_000)
  const dir = tempDir('hoop-e2e-pgjobs-')
  const sinkFile = join(dir.path, 'sink.jsonl')
  const dataDir = join(dir.path, 'data')
  const env = {HOOP_STORE_URL: URL_}
  let tsa: LocalTsa
  let gw: GatewayProc | undefined

  const more: GatewayProc[] = []

  before(async () => {
    for (const name of [DB, DB2]) {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await adminQuery(`CREATE DATABASE ${name}`)
    }
    tsa = await startLocalTsa()
  })
  after(async () => {
    await gw?.stop()
    for (const g of more) await g.stop()
    await tsa?.close()
    for (const name of [DB, DB2]) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    dir.cleanup()
  })

  it('sinks in order, stamps heads, expires payloads except what a legal hold keeps; the exported package verifies', async () => {
    const audit = `{checkpoint: {events: 2, interval: 1s}, sinks: [{type: file, path: ${JSON.stringify(sinkFile)}}], timestamp: {url: ${JSON.stringify(tsa.url)}, ca: {file: ${JSON.stringify(tsa.caFile)}}}, retention: {payloads: {statement: 0.001h}, interval: 1s}}`
    const config = `store:\n  postgres:\n    url: {env: HOOP_STORE_URL}\n${pgWriterConfig(audit)}`
    const configFile = join(dir.path, 'gateway.yaml')
    writeFileSync(configFile, config)
    const tokens: Record<string, string> = {}
    for (const name of ['loader', 'keeper']) {
      const made = await runHoop(['admin', 'service-accounts', 'create', name, '--group', 'eng', '--group', 'auditors', '--config', configFile, '--json'], {env})
      assert.equal(made.code, 0, made.stderr)
      tokens[name] = (JSON.parse(made.stdout) as {token: string}).token
    }
    // A legal hold on keeper, placed on the store before the gateway runs: audited there at once.
    const held = await runHoop(['audit', 'hold', '--user', 'keeper', '--reason', 'litigation 17', '--config', configFile, '--json'], {env})
    assert.equal(held.code, 0, held.stderr)
    assert.deepEqual((JSON.parse(held.stdout) as {holds: {target: string}[]}).holds.map((h) => h.target), ['keeper'])

    gw = await startGatewayProc(config, {dir: dir.path, dataDir, env})
    for (const [name, n] of [['loader', 1], ['keeper', 2], ['loader', 3]] as const) {
      const r = await runHoop(['exec', 'db', '-e', `SELECT ${n} AS n`, '--gateway', gw.url], {env: {HOOP_TOKEN: tokens[name]}})
      assert.equal(r.code, 0, r.stderr)
    }

    // Retention expires loader's statements (0.001h) and keeps keeper's, under the hold.
    await until('retention of the unheld statements', async () => {
      const [r] = await adminQuery<{gone: string; kept: string}>("SELECT count(*) FILTER (WHERE payload IS NULL AND subject = 'loader') AS gone, count(*) FILTER (WHERE payload IS NOT NULL) AS kept FROM audit_events WHERE kind = 'statement'", URL_)
      return Number(r.gone) === 2 && Number(r.kept) === 1 ? true : undefined
    })
    const [retention] = await adminQuery<{n: string}>("SELECT count(*) AS n FROM audit_events WHERE kind = 'audit.retention'", URL_)
    assert.ok(Number(retention.n) >= 1, 'each retention batch appended its audit.retention event')

    // An erasure on the store respects the hold; once released, retention takes keeper's too.
    const refused = await runHoop(['audit', 'erase', '--user', 'keeper', '--reason', 'GDPR #12', '--config', configFile, '--json'], {env})
    assert.equal(refused.code, 0, refused.stderr)
    assert.deepEqual([(JSON.parse(refused.stdout) as {removed: number; held: number}).removed, (JSON.parse(refused.stdout) as {held: number}).held], [0, 1])
    const released = await runHoop(['audit', 'hold', '--user', 'keeper', '--release', '--reason', 'case closed', '--config', configFile, '--json'], {env})
    assert.equal(released.code, 0, released.stderr)
    await until('retention of the released statement', async () => {
      const [r] = await adminQuery<{kept: string}>("SELECT count(*) AS kept FROM audit_events WHERE kind = 'statement' AND payload IS NOT NULL", URL_)
      return Number(r.kept) === 0 ? true : undefined
    })
    const holds = await adminQuery<{kind: string}>("SELECT kind FROM audit_events WHERE kind = 'audit.hold' ORDER BY seq", URL_)
    assert.equal(holds.length, 2, 'placing and releasing the hold are audit events')

    // Heads stamped by the TSA: in the store and on the witness line.
    await until('a timestamped head', async () => {
      const [r] = await adminQuery<{n: string}>("SELECT count(*) AS n FROM audit_anchors WHERE kind = 'tsa' AND token IS NOT NULL", URL_)
      return Number(r.n) > 0 ? true : undefined
    })
    const witness = join(dataDir, 'audit-witness.jsonl')
    await until('a timestamp on the witness', async () => (existsSync(witness) && readFileSync(witness, 'utf8').includes('"timestamp"') ? true : undefined))

    // The sink has every event, in order, once its replica caught up.
    const [{size}] = await adminQuery<{size: string}>('SELECT max(seq) AS size FROM audit_events', URL_)
    const seqs = await until('the sink to catch up', async () => {
      const s = sinkSeqs(sinkFile)
      return s.length > 0 && s.at(-1)! >= Number(size) ? s : undefined
    })
    assert.deepEqual(seqs, Array.from({length: seqs.length}, (_, i) => i + 1), 'every event once, in order')
    await until('the position in the store', async () => {
      const [cursor] = await adminQuery<{seq: string}>(`SELECT seq FROM audit_sink_cursors WHERE name = 'file:${sinkFile}'`, URL_)
      return cursor && Number(cursor.seq) >= Number(size) ? true : undefined
    })

    const pkg = join(dir.path, 'evidence.tar.gz')
    const ex = await runHoop(['audit', 'export', '--out', pkg, '--gateway', gw.url, '--json'], {env: {HOOP_TOKEN: tokens.loader}})
    assert.equal(ex.code, 0, ex.stderr)
    const v = await runHoop(['audit', 'verify', pkg, '--json', '--anchor', witness, '--tsa-ca', tsa.caFile])
    assert.equal(v.code, 0, v.stdout + v.stderr)
    const result = JSON.parse(v.stdout) as {ok: boolean; notes: string[]; anchors?: {result: string; timestamped_at?: string}[]}
    assert.equal(result.ok, true)
    // The witness is consistent with the package, and a timestamp token on it was checked against
    // the TSA's CA. Not necessarily on the same line: the head the export signs may still wait for
    // its stamp while an earlier or a later head has one (the stamper stamps in the background).
    assert.ok(result.anchors?.some((a) => a.result === 'consistent'), JSON.stringify(result.anchors))
    assert.ok(result.anchors?.some((a) => a.timestamped_at), JSON.stringify(result.anchors))
    assert.ok(result.notes.some((n) => /expired by retention/.test(n)), result.notes.join('\n'))
  })

  it('kill -9 of the replica driving the sink: the other replica takes it over from the stored position, and no event is lost', async () => {
    const killSink = join(dir.path, 'kill-sink.jsonl')
    const config = `store:\n  postgres:\n    url: {env: HOOP_STORE_URL}\n${pgWriterConfig(`{sinks: [{type: file, path: ${JSON.stringify(killSink)}}]}`)}`
    const env2 = {HOOP_STORE_URL: URL2}
    const cfg = join(dir.path, 'kill.yaml')
    writeFileSync(cfg, config)
    const made = await runHoop(['admin', 'service-accounts', 'create', 'loader', '--group', 'eng', '--config', cfg, '--json'], {env: env2})
    assert.equal(made.code, 0, made.stderr)
    const token = (JSON.parse(made.stdout) as {token: string}).token
    const exec = async (g: GatewayProc, n: number) => {
      const r = await runHoop(['exec', 'db', '-e', `SELECT ${n} AS n`, '--gateway', g.url], {env: {HOOP_TOKEN: token}})
      assert.equal(r.code, 0, r.stderr)
    }
    for (const r of ['a', 'b']) mkdirSync(join(dir.path, r))
    // A starts alone, so it holds the sink's lock; B joins and waits for it.
    const a = await startGatewayProc(config, {dir: join(dir.path, 'a'), dataDir: join(dir.path, 'a', 'data'), env: env2})
    more.push(a)
    await exec(a, 1)
    await until('A delivering', async () => (sinkSeqs(killSink).length > 0 ? true : undefined))
    const b = await startGatewayProc(config, {dir: join(dir.path, 'b'), dataDir: join(dir.path, 'b', 'data'), env: env2})
    more.push(b)
    await exec(b, 2)
    await exec(a, 3)
    a.proc.child.kill('SIGKILL')
    await a.proc.exited
    await exec(b, 4)
    const [{size}] = await adminQuery<{size: string}>('SELECT max(seq) AS size FROM audit_events', URL2)
    // B may append more while it catches up (its sessions' ends, the dead replica's reaping): wait
    // for every event up to `size`, not for `size` to be the last line.
    const seqs = await until('B to take the sink over and catch up', async () => {
      const s = sinkSeqs(killSink)
      return s.some((x) => x >= Number(size)) ? s : undefined
    })
    assert.deepEqual([...new Set(seqs.filter((x) => x <= Number(size)))].sort((x, y) => x - y), Array.from({length: Number(size)}, (_, i) => i + 1), 'every event reached the sink')
    // At least once, in order: a batch A delivered without saving its position may come again, never out of order.
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] === seqs[i - 1] + 1 || seqs[i] <= seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}: no gap`)
    await until("B's position in the store", async () => {
      const [cursor] = await adminQuery<{seq: string}>(`SELECT seq FROM audit_sink_cursors WHERE name = 'file:${killSink}'`, URL2)
      return Number(cursor?.seq) >= Number(size) ? true : undefined
    })
  })
})
