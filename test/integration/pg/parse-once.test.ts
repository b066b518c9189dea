// One parse per statement text (issue 15), attacked against the real PostgreSQL: the gateway's own
// analyser wiring (src/gateway/sql-analysis.ts: one parse cache per session, shared by policy's
// analysis and masking's) behind the real policy decider, with a policy that can be reloaded
// mid-session. The same statement text is sent again after the session state or the policy changed;
// the verdict and the bytes the client receives must be those of the state in force, never the
// cached ones.
import {strict as assert} from 'node:assert'
import pg from 'pg'
import {policyHooks, StatementGate} from '../../../src/engines/gate.js'
import {runPgSession} from '../../../src/engines/postgres/session.js'
import {pgAnalysis} from '../../../src/gateway/sql-analysis.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Policy} from '../../../src/policy/types.js'
import {silentLogger} from '../../../src/shared/log.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'
import {connect, serveEngine, type EngineServer} from '../../helpers/engine-server.js'
import {findLeaks} from '../../helpers/leak-oracle.js'
import {startTap, type Tap} from '../../helpers/tap.js'
import {analyst} from '../guardrails/judge.js'

const S = `hoop_parse1_${process.pid}`
const EMAIL = 'ann.parse1@example.com'
const admin = () => new pg.Client({host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test'})

const policyOf = (extra: string) =>
  parsePolicy(
    `version: 1
rules:
  - {id: all, effect: allow}
  - {id: no-secrets, effect: block, match: {tables: ["${S}.secrets", secrets]}}
${extra}`,
    'parse-once.yaml',
  )
const MASK_EMAIL = `  - {id: pii, effect: mask, mask: {columns: ["${S}.customers.email"]}}\n`
const MASK_NAME = `  - {id: names, effect: mask, mask: {columns: ["${S}.customers.name"]}}\n`
const BLOCK_T = `  - {id: no-t, effect: block, match: {tables: ["${S}.t"]}}\n`

describe('pg engine: one parse per statement text never serves a stale verdict or mask decision', function () {
  let policy: Policy = policyOf('')
  let srv: EngineServer<unknown>
  let tap: Tap
  let client: pg.Client

  before(async () => {
    await loadPgParser()
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S};
      CREATE TABLE ${S}.customers (id int, name text, email text); INSERT INTO ${S}.customers VALUES (1, 'Ann', '${EMAIL}');
      CREATE TABLE ${S}.t (v text); INSERT INTO ${S}.t VALUES ('a');
      CREATE TABLE ${S}.secrets (v text); INSERT INTO ${S}.secrets VALUES ('s3cr3t-value')`)
    await c.end()
    // As the gateway wires a PostgreSQL session (sessions.ts): policy read at each judgement, so a reload applies at once.
    srv = await serveEngine((socket) => {
      const analysis = pgAnalysis()
      const hooks = policyHooks({session: 's', identity: analyst, connection: {name: 'db', type: 'postgres'}, policy: () => policy, analyze: analysis.analyze, describe: (sql: string) => sql, logger: silentLogger, protocol: 'postgres'})
      return runPgSession({
        client: socket,
        openUpstream: () => connect(5432),
        target: {host: '127.0.0.1', tls: {mode: 'disable'}},
        gate: new StatementGate(hooks, silentLogger),
        logger: silentLogger,
        parses: analysis.parses,
        prepared: analysis.prepared,
      })
    })
    tap = await startTap(srv.port)
  })
  beforeEach(async () => {
    policy = policyOf('')
    tap.reset()
    client = new pg.Client({host: '127.0.0.1', port: tap.port, user: 'postgres', database: 'test'})
    await client.connect()
  })
  afterEach(() => client.end())
  after(async () => {
    await tap.close()
    await srv.close()
    const c = admin()
    await c.connect()
    await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`)
    await c.end()
  })

  const error = (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.message)

  it('the same text after policy reloads that move the mask rule to, then away from, its column: simple and extended protocol, origin and computed columns', async () => {
    const text = `SELECT name, email, upper(email) AS u FROM ${S}.customers WHERE id = 1`
    const extended = `SELECT email, lower(email) AS l FROM ${S}.customers WHERE id = $1`
    const clear = [{name: '****', email: EMAIL, u: EMAIL.toUpperCase()}]
    // A mask on another column of the table: the text is analysed (and parsed) under that plan first.
    policy = policyOf(MASK_NAME)
    assert.deepEqual((await client.query(text)).rows, clear)
    assert.deepEqual((await client.query(extended, [1])).rows, [{email: EMAIL, l: EMAIL}])

    policy = policyOf(MASK_EMAIL)
    tap.reset()
    assert.deepEqual((await client.query(text)).rows, [{name: 'Ann', email: '****', u: '****'}])
    assert.deepEqual((await client.query(extended, [1])).rows, [{email: '****', l: '****'}])
    assert.deepEqual(findLeaks(tap.received(), [EMAIL]), [], 'no form of the address reached the client under the mask')

    policy = policyOf(MASK_NAME)
    assert.deepEqual((await client.query(text)).rows, clear, 'the mask moved back: the address passes again')
  })

  it('the same text after a policy reload that blocks its table is refused', async () => {
    const text = `SELECT v FROM ${S}.t`
    assert.deepEqual((await client.query(text)).rows, [{v: 'a'}])
    policy = policyOf(BLOCK_T)
    assert.match(await error(client.query(text)), /hoop: blocked by policy rule no-t/)
    assert.match(await error(client.query(`SELECT v FROM ${S}.t WHERE v = $1`, ['a'])), /hoop: blocked by policy rule no-t/)
  })

  it('EXECUTE of a name never prepared, then prepared: the same text is judged by what the name holds now', async () => {
    assert.match(await error(client.query('EXECUTE q')), /hoop: blocked/, 'unseen: nothing prepared under that name')
    await client.query(`PREPARE q AS SELECT v FROM ${S}.t`)
    assert.deepEqual((await client.query('EXECUTE q')).rows, [{v: 'a'}])
  })

  it('PREPARE p, DEALLOCATE p, PREPARE p AS <a blocked statement>: EXECUTE p is refused by hoop, not passed as before', async () => {
    await client.query(`PREPARE p AS SELECT v FROM ${S}.t`)
    assert.deepEqual((await client.query('EXECUTE p')).rows, [{v: 'a'}])
    await client.query('DEALLOCATE p')
    assert.match(await error(client.query(`PREPARE p AS SELECT v FROM ${S}.secrets`)), /hoop: blocked by policy rule no-secrets/)
    // Had the verdict of "EXECUTE p" been kept, the server would answer "prepared statement p does not exist".
    assert.match(await error(client.query('EXECUTE p')), /hoop: blocked by policy rule no-secrets/)
    assert.deepEqual(findLeaks(tap.received(), ['s3cr3t-value']), [])
  })

  it('a protocol-prepared name, closed and prepared again with other text: SQL EXECUTE of it follows', async () => {
    await client.query({name: 'n', text: `SELECT v FROM ${S}.t`})
    assert.deepEqual((await client.query('EXECUTE n')).rows, [{v: 'a'}])
    await client.query('DEALLOCATE n')
    policy = policyOf(MASK_EMAIL)
    await client.query(`PREPARE n AS SELECT upper(email) AS e FROM ${S}.customers`)
    assert.deepEqual((await client.query('EXECUTE n')).rows, [{e: '****'}], 'EXECUTE runs what no taint analysis sees: its computed column is masked')
    assert.deepEqual(findLeaks(tap.received(), [EMAIL]), [])
  })
})
