// One parse per statement text (issue 15), attacked against the real MariaDB: the gateway's own
// analyser wiring (src/gateway/sql-analysis.ts: the session view with its parse cache, shared by
// policy's analysis and masking's) behind the real policy decider, with a policy that can be
// reloaded mid-session. The same statement text is sent again after sql_mode, a user variable or
// the policy changed; the verdict and the bytes the client receives must follow the change.
import {strict as assert} from 'node:assert'
import mysql2 from 'mysql2/promise'
import {policyHooks, StatementGate} from '../../../src/engines/gate.js'
import {runMysqlSession} from '../../../src/engines/mysql/session.js'
import {mysqlAnalysis} from '../../../src/gateway/sql-analysis.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Policy} from '../../../src/policy/types.js'
import {silentLogger} from '../../../src/shared/log.js'
import {connect, serveEngine, type EngineServer} from '../../helpers/engine-server.js'
import {findLeaks} from '../../helpers/leak-oracle.js'
import {startTap, type Tap} from '../../helpers/tap.js'
import {analyst} from '../guardrails/judge.js'

const T = `hoop_parse1_${process.pid}`
const EMAIL = 'ann.parse1@example.com'
const admin = () => mysql2.createConnection({host: '127.0.0.1', port: 3306, user: 'root', database: 'test', multipleStatements: true})

const policyOf = (extra: string) =>
  parsePolicy(
    `version: 1
rules:
  - {id: all, effect: allow}
  - {id: no-secrets, effect: block, match: {tables: ["${T}_secrets"]}}
${extra}`,
    'parse-once.yaml',
  )
const MASK_EMAIL = `  - {id: pii, effect: mask, mask: {columns: ["${T}.email"]}}\n`
const MASK_NAME = `  - {id: names, effect: mask, mask: {columns: ["${T}.name"]}}\n`

describe('mysql engine: one parse per statement text never serves a stale verdict or mask decision', function () {
  let policy: Policy = policyOf('')
  let srv: EngineServer<unknown>
  let tap: Tap
  let client: mysql2.Connection

  before(async () => {
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}, ${T}_t, ${T}_secrets;
      CREATE TABLE ${T} (id int, name varchar(50), email varchar(100)); INSERT INTO ${T} VALUES (1, 'Ann', '${EMAIL}');
      CREATE TABLE ${T}_t (v varchar(10)); INSERT INTO ${T}_t VALUES ('a');
      CREATE TABLE ${T}_secrets (v varchar(20)); INSERT INTO ${T}_secrets VALUES ('s3cr3t-value')`)
    await c.end()
    // As the gateway wires a MySQL session (sessions.ts): policy read at each judgement, so a reload applies at once.
    srv = await serveEngine((socket) => {
      const analysis = mysqlAnalysis()
      const hooks = policyHooks({session: 's', identity: analyst, connection: {name: 'db', type: 'mysql'}, policy: () => policy, analyze: analysis.analyze, describe: (sql: string) => sql, logger: silentLogger, protocol: 'mysql'})
      return runMysqlSession({
        client: socket,
        openUpstream: () => connect(3306),
        target: {host: '127.0.0.1', tls: {mode: 'disable'}, username: 'root'},
        gate: new StatementGate(hooks, silentLogger),
        logger: silentLogger,
        sqlSession: analysis.sqlSession,
      })
    })
    tap = await startTap(srv.port)
  })
  beforeEach(async () => {
    policy = policyOf('')
    tap.reset()
    client = await mysql2.createConnection({host: '127.0.0.1', port: tap.port, user: 'anyone', database: 'test'})
  })
  afterEach(() => client.end())
  after(async () => {
    await tap.close()
    await srv.close()
    const c = await admin()
    await c.query(`DROP TABLE IF EXISTS ${T}, ${T}_t, ${T}_secrets`)
    await c.end()
  })

  const rows = async (sql: string, values?: unknown[]) => (await client.query(sql, values))[0]
  const error = (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.message)

  it('the same text before and after SET sql_mode = ANSI_QUOTES: a string first, then the masked column', async () => {
    policy = policyOf(MASK_EMAIL)
    const text = `SELECT concat("email", '') AS e FROM ${T} WHERE id = 1`
    assert.deepEqual(await rows(text), [{e: 'email'}])
    await client.query("SET sql_mode = 'ANSI_QUOTES'")
    // Read as the column in ANSI_QUOTES (and hoop masks whatever reading differs between the modes the session may be in).
    assert.deepEqual(await rows(text), [{e: '****'}])
    assert.deepEqual(findLeaks(tap.received(), [EMAIL]), [])
  })

  it('the same text after policy reloads that move the mask rule to, then away from, its column', async () => {
    const text = `SELECT name, email, upper(email) AS u FROM ${T} WHERE id = 1`
    const clear = [{name: '****', email: EMAIL, u: EMAIL.toUpperCase()}]
    policy = policyOf(MASK_NAME)
    assert.deepEqual(await rows(text), clear)
    policy = policyOf(MASK_EMAIL)
    tap.reset()
    assert.deepEqual(await rows(text), [{name: 'Ann', email: '****', u: '****'}])
    // The same text as a prepared statement (COM_STMT_PREPARE, binary rows).
    const [prepared] = await client.execute(`SELECT upper(email) AS u FROM ${T} WHERE id = ?`, [1])
    assert.deepEqual(prepared, [{u: '****'}])
    assert.deepEqual(findLeaks(tap.received(), [EMAIL]), [])
    policy = policyOf(MASK_NAME)
    assert.deepEqual(await rows(text), clear)
  })

  it('PREPARE s FROM @q, the same text after @q changed: judged by what @q holds now', async () => {
    await client.query(`SET @q = 'SELECT v FROM ${T}_t'`)
    await client.query('PREPARE s FROM @q')
    assert.deepEqual(await rows('EXECUTE s'), [{v: 'a'}])
    await client.query(`SET @q = 'SELECT v FROM ${T}_secrets'`)
    assert.match(await error(client.query('PREPARE s FROM @q')), /hoop: blocked by policy rule no-secrets/)
    // The server still holds the first s (the refused PREPARE never ran), but hoop cannot tell which: refused.
    assert.match(await error(client.query('EXECUTE s')), /hoop: blocked by policy rule no-secrets/)
    assert.deepEqual(findLeaks(tap.received(), ['s3cr3t-value']), [])
  })

  it('DEALLOCATE and PREPARE again under the same name: the same EXECUTE text follows', async () => {
    policy = policyOf(MASK_EMAIL)
    await client.query(`PREPARE s FROM 'SELECT v FROM ${T}_t'`)
    assert.deepEqual(await rows('EXECUTE s'), [{v: 'a'}])
    await client.query('DEALLOCATE PREPARE s')
    await client.query(`PREPARE s FROM 'SELECT concat(email, '''') AS e FROM ${T}'`)
    assert.deepEqual(await rows('EXECUTE s'), [{e: '****'}], 'EXECUTE runs what the output analysis cannot see: computed columns masked')
    assert.deepEqual(findLeaks(tap.received(), [EMAIL]), [])
  })
})
