// Driver compatibility, the PostgreSQL half (issue 13, Deliver 2): node-postgres (`pg`) and
// postgres.js, driven through their public APIs, once directly against PostgreSQL and once through
// hoop, and the outcomes compared. "Through hoop" is the engine in process for every scenario, and
// the real gateway with `hoop connect` from the built CLI for most of them. Each scenario returns a
// plain value free of what legitimately differs (pids, timings); the two values must be equal.
import {strict as assert} from 'node:assert'
import {createHash} from 'node:crypto'
import {join} from 'node:path'
import {once} from 'node:events'
import pg from 'pg'
import postgres from 'postgres'
import {encodeQuery, encodeStartup, encodeTerminate} from '../../src/protocol/pg/messages.js'
import {type Proc, runHoop, spawnHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'
import {sh} from '../helpers/net.js'
import {PG_PORT, startHarness, untilRunning, type Harness} from '../integration/pg/harness.js'
import {RawClient} from '../integration/pg/raw.js'

const SCHEMA = `hoop_compat_${process.pid}`
const MB = 1_000_000

/** Where a scenario runs: a port, and a tag that keeps its tables apart from the other runs'. */
interface Where {
  port: number
  tag: string
}
type Scenario = (w: Where) => Promise<unknown>

const pgClient = (port: number) => new pg.Client({host: '127.0.0.1', port, user: 'postgres', database: 'test', connectionTimeoutMillis: 10_000})
const pgjs = (port: number) => postgres({host: '127.0.0.1', port, user: 'postgres', database: 'test', max: 1, onnotice: () => {}, connect_timeout: 10})

async function withPg<T>(port: number, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = pgClient(port)
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => {})
  }
}

async function withPgjs<T>(port: number, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = pgjs(port)
  try {
    return await fn(sql)
  } finally {
    await sql.end({timeout: 5})
  }
}

const codeOf = (e: unknown) => (e as {code?: string}).code
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

const scenarios: Record<string, Scenario> = {
  'postgres.js pipelines 200 queries on one connection, one failing in the middle': ({port}) =>
    withPgjs(port, async (sql) => {
      const values = await Promise.all(Array.from({length: 200}, (_, i) => sql`select ${i}::int * 2 as v`))
      const settled = await Promise.allSettled([sql`select 1 as a`, sql`select 1/0 as b`, sql`select 3 as c`])
      return {values: values.map((r) => r[0].v as number), settled: settled.map((s) => (s.status === 'fulfilled' ? s.value[0] : codeOf(s.reason)))}
    }),

  'pg: a named prepared statement with 40,000 parameters, executed twice': ({port, tag}) =>
    withPg(port, async (c) => {
      const table = `${SCHEMA}.many_pg_${tag}`
      await c.query(`create table ${table} (a int, b int, c text, d bool)`)
      const rows = 10_000
      const text = `insert into ${table} values ${Array.from({length: rows}, (_, i) => `($${4 * i + 1}, $${4 * i + 2}, $${4 * i + 3}, $${4 * i + 4})`).join(',')}`
      const values = Array.from({length: rows}, (_, i) => [i, i * 3, `r${i}`, i % 2 === 0]).flat()
      const first = await c.query({name: 'many', text, values})
      const second = await c.query({name: 'many', text, values})
      const sum = await c.query(`select count(*)::int as n, sum(a)::int as a, sum(b)::bigint::text as b, count(*) filter (where d)::int as d from ${table}`)
      return {inserted: [first.rowCount, second.rowCount], ...sum.rows[0]}
    }),

  'postgres.js: a multi-row insert with 40,000 parameters': ({port, tag}) =>
    withPgjs(port, async (sql) => {
      const table = `${SCHEMA}.many_js_${tag}`
      await sql`create table ${sql(table)} (a int, b int, c text, d bool)`
      const rows = Array.from({length: 10_000}, (_, i) => ({a: i, b: i * 3, c: `r${i}`, d: i % 2 === 0}))
      const r = await sql`insert into ${sql(table)} ${sql(rows)}`
      const [sum] = await sql`select count(*)::int as n, sum(a)::int as a from ${sql(table)}`
      return {inserted: r.count, ...sum}
    }),

  'postgres.js: COPY FROM STDIN (writable) and COPY TO STDOUT (readable)': ({port, tag}) =>
    withPgjs(port, async (sql) => {
      const table = sql(`${SCHEMA}.copy_${tag}`)
      await sql`create table ${table} (a int, b text)`
      const w = await sql`copy ${table} from stdin`.writable()
      for (let i = 0; i < 20_000; i++) {
        if (!w.write(`${i}\tline ${i} ${'x'.repeat(i % 50)}\n`)) await once(w, 'drain')
      }
      w.end()
      await once(w, 'finish')
      const r = await sql`copy ${table} to stdout`.readable()
      const chunks: Buffer[] = []
      for await (const chunk of r) chunks.push(Buffer.from(chunk as Buffer))
      const out = Buffer.concat(chunks)
      return {bytes: out.length, sha: sha(out)}
    }),

  'LISTEN/NOTIFY: payloads arrive, and the pid is the one the notifying client was told': ({port}) =>
    withPg(port, async (a) =>
      withPg(port, async (b) => {
        await a.query('listen hoop_compat')
        const got: pg.Notification[] = []
        a.on('notification', (n) => got.push(n))
        const payload = 'p'.repeat(7000)
        await b.query(`select pg_notify('hoop_compat', $1)`, [payload])
        await a.query(`notify hoop_compat, 'self'`)
        while (got.length < 2) await once(a, 'notification')
        const pid = (c: pg.Client) => (c as unknown as {processID: number}).processID
        const viaJs = await withPgjs(port, async (sql) => {
          const heard: string[] = []
          await sql.listen('hoop_compat_js', (p) => heard.push(p))
          await sql.notify('hoop_compat_js', 'from js')
          // postgres.js listens on a connection of its own: the notification comes on another
          // stream, after notify() has returned. Wait for it (30 s bound), not 1 s.
          const deadline = Date.now() + 30_000
          while (heard.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
          return heard
        })
        return {
          payloads: got.map((n) => n.payload?.length),
          fromB: got[0].processId === pid(b),
          fromSelf: got[1].processId === pid(a),
          backendPid: (await a.query('select pg_backend_pid() as p')).rows[0].p === pid(a),
          viaJs,
        }
      }),
    ),

  'cursors and portals: postgres.js .cursor(), pg DECLARE/FETCH': ({port}) =>
    withPgjs(port, async (sql) => {
      const batches: number[] = []
      let total = 0
      for await (const rows of sql`select g, md5(g::text) as h from generate_series(1, 2500) g`.cursor(400)) {
        batches.push(rows.length)
        for (const r of rows) total += r.g as number
      }
      const fetched = await withPg(port, async (c) => {
        await c.query('begin')
        await c.query('declare cur cursor for select g from generate_series(1, 10) g')
        const a = await c.query('fetch 4 from cur')
        const b = await c.query('fetch all from cur')
        await c.query('commit')
        return [a.rows.map((r) => r.g as number), b.rows.map((r) => r.g as number)]
      })
      return {batches, total, fetched}
    }),

  'cancel: postgres.js .cancel() and pg_cancel_backend(<the pid pg was told>)': ({port}) =>
    withPgjs(port, async (sql) => {
      const q = sql`select pg_sleep(10)`
      const settled = q.then(
        () => 'ran',
        (e) => codeOf(e),
      )
      await untilRunning('select pg_sleep(10)')
      q.cancel()
      const jsCancelled = await settled
      const after = (await sql`select 1 as one`)[0].one as number
      const pgCancelled = await withPg(port, (a) =>
        withPg(port, async (b) => {
          const q2 = a.query('select pg_sleep(10)').then(() => 'ran', codeOf)
          await untilRunning('select pg_sleep(10)')
          const ok = (await b.query('select pg_cancel_backend($1) as ok', [(a as unknown as {processID: number}).processID])).rows[0].ok as boolean
          return [ok, await q2]
        }),
      )
      return {jsCancelled, after, pgCancelled}
    }),

  'large parameters and rows: 20 MB text and bytea both ways': ({port}) =>
    withPgjs(port, async (sql) => {
      const bytes = Buffer.alloc(20 * MB, 0xab)
      const [a] = await sql`select length(${bytes}::bytea) as n, md5(${bytes}::bytea) as h`
      const [b] = await sql`select repeat('z', ${20 * MB}) as v`
      const viaPg = await withPg(port, async (c) => {
        const r = await c.query('select md5($1::text) as h, length($1::text) as n', ['t'.repeat(20 * MB)])
        const row = await c.query(`select decode(repeat('ab', ${10 * MB}), 'hex') as v`)
        return {...r.rows[0], row: sha(row.rows[0].v as Buffer)}
      })
      return {a, b: sha(b.v as string), viaPg}
    }),

  'JSON and JSONB: values, nesting, unicode, both drivers': ({port}) => {
    const doc = {a: [1, 'x', null, {b: true}], u: 'ünï©ødé ✓', n: 1.5e10, e: {}}
    return withPgjs(port, async (sql) => {
      const [r] = await sql`select ${sql.json(doc)}::jsonb as jb, ${sql.json(doc)}::json as j, '[{"k": 1}]'::jsonb -> 0 as first`
      const viaPg = await withPg(port, async (c) => (await c.query(`select $1::jsonb as jb, $1::json as j, jsonb_typeof($1::jsonb) as t`, [JSON.stringify(doc)])).rows[0])
      return {r, viaPg}
    })
  },

  'a raw client sending its first Query and a Terminate in the StartupMessage segment': async ({port}) => {
    const c = await RawClient.connect(port)
    c.send(encodeStartup({user: 'postgres', database: 'test'}), encodeQuery(`select 'same segment' as v`), encodeTerminate())
    await c.closedByServer()
    const rows = c.messages.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6))
    return {rows, errors: c.errors().length, last: c.types().at(-1)}
  },
}

/** Scenarios also run through the real gateway and `hoop connect` (all but the slowest duplicate). */
const THROUGH_GATEWAY = Object.keys(scenarios).filter((name) => !name.startsWith('postgres.js: a multi-row'))

/** psql as a user runs it: sslmode=prefer, so its SSLRequest comes first. */
function psql(port: number, sql: string): Promise<{code: number | null; stdout: string; stderr: string}> {
  return sh(`psql "host=127.0.0.1 port=${port} user=postgres dbname=test sslmode=prefer" -X -A -t -c '${sql}'`, {env: {PGCONNECT_TIMEOUT: '10'}})
}

async function adminQuery(sql: string): Promise<void> {
  await withPg(PG_PORT, async (c) => void (await c.query(sql)))
}

describe('driver compatibility: pg and postgres.js, direct vs through hoop (issue 13)', function () {
  this.timeout(120_000)
  const direct = new Map<string, unknown>()

  async function directly(name: string): Promise<unknown> {
    if (!direct.has(name)) direct.set(name, await scenarios[name]({port: PG_PORT, tag: 'direct'}))
    return direct.get(name)
  }

  before(async () => adminQuery(`drop schema if exists ${SCHEMA} cascade; create schema ${SCHEMA}`))
  after(async () => adminQuery(`drop schema if exists ${SCHEMA} cascade`))

  describe('through the engine', () => {
    let h: Harness
    before(async () => (h = await startHarness()))
    after(async () => h.close())
    for (const name of Object.keys(scenarios)) {
      it(name, async () => {
        const expected = await directly(name)
        assert.deepEqual(await scenarios[name]({port: h.port, tag: 'engine'}), expected)
      })
    }
  })

  describe('through the real gateway and hoop connect (built CLI)', () => {
    const dir = tempDir('hoop-compat-')
    let gw: GatewayProc
    let token: string
    let connect: {proc: Proc; port: number}

    async function startConnect(name: string, withToken: string): Promise<{proc: Proc; port: number}> {
      const proc = spawnHoop(['connect', name, '--port', '0', '--json', '--gateway', gw.url], {env: {HOOP_TOKEN: withToken}})
      const m = await proc.waitFor(/\{"connection".*\}/)
      return {proc, port: (JSON.parse(m[0]) as {port: number}).port}
    }

    before(async () => {
      const dataDir = join(dir.path, 'data')
      token = await createSecret('service-accounts', 'compat-bot', dataDir, ['eng'])
      gw = await startGatewayProc(
        `connections:
  - name: db
    type: postgres
    target: 127.0.0.1:${PG_PORT}
    database: test
    username: postgres
  - name: lonely
    type: postgres
    target: 127.0.0.1:${PG_PORT}
    agent: missing-agent
policy:
  version: 1
  rules:
    - id: eng-all
      subjects: {groups: [eng]}
      connections: [db, lonely]
      effect: allow
`,
        {dir: dir.path, dataDir},
      )
      connect = await startConnect('db', token)
    })
    after(async () => {
      await connect?.proc.stop()
      await gw?.stop()
      dir.cleanup()
    })

    for (const name of THROUGH_GATEWAY) {
      it(name, async () => {
        const expected = await directly(name)
        assert.deepEqual(await scenarios[name]({port: connect.port, tag: 'gateway'}), expected)
      })
    }

    it('psql and pg learn why a session cannot start (agent offline, gateway gone); hoop connect stops on a revoked key', async () => {
      const lonely = await startConnect('lonely', token)
      const spare = await createSecret('service-accounts', 'compat-spare', gw.dataDir, ['eng'])
      const doomed = await startConnect('db', spare)
      try {
        const offline = await psql(lonely.port, 'select 1')
        assert.match(offline.stderr, /FATAL: {2}hoop: agent "missing-agent" serving connection "lonely" is offline \[AGENT_OFFLINE\]/)
        await assert.rejects(withPg(lonely.port, async () => {}), (e) => codeOf(e) === '08001')
        // hoop connect still names the failure on its own stderr.
        await lonely.proc.waitFor(/is offline \[AGENT_OFFLINE\]/)

        assert.equal((await psql(doomed.port, 'select 5')).stdout.trim(), '5')
        const revoked = await runHoop(['admin', 'service-accounts', 'revoke', 'compat-spare', '--data-dir', gw.dataDir])
        assert.equal(revoked.code, 0, revoked.stderr)
        // hoop connect stops listening once the gateway no longer accepts its key (exit 11), saying why.
        assert.equal(await doomed.proc.exited, 11)
        await doomed.proc.waitFor(/stopped listening .*no longer accepts this CLI's credential/, 1000)
        await assert.rejects(withPg(doomed.port, async () => {}), (e) => (e as NodeJS.ErrnoException).code === 'ECONNREFUSED')

        await gw.stop()
        const gone = await psql(lonely.port, 'select 1')
        assert.match(gone.stderr, /FATAL: {2}hoop: .*\[(GATEWAY_UNREACHABLE|GATEWAY_SHUTDOWN)\]/)
        assert.doesNotMatch(gone.stderr, /closed the connection unexpectedly/)
      } finally {
        await lonely.proc.stop()
        await doomed.proc.stop()
      }
    })
  })
})
