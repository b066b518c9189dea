// The PostgreSQL engine's correlation queue, without sockets: client messages are pushed as the
// engine pushes them (session.ts onClientMessage), the server's answers are fed as the engine
// feeds them (onServerMessage), and the statement gate's hooks record which statement was
// finished or refused with what. Messages are built with the codec's encoders.
import {strict as assert} from 'node:assert'
import {StatementGate, type Verdict} from '../../../../src/engines/gate.js'
import {ResponseQueue} from '../../../../src/engines/postgres/queue.js'
import {
  asFrame,
  B,
  cstr,
  decodeClientMessage,
  decodeCommandTag,
  decodeErrorFields,
  decodeRowDescription,
  encodeBind,
  encodeDescribe,
  encodeErrorResponse,
  encodeExecute,
  encodeParse,
  encodeQuery,
  encodeReadyForQuery,
  encodeSync,
  message,
} from '../../../../src/protocol/pg/messages.js'
import {silentLogger} from '../../../../src/shared/log.js'

// --- server messages --------------------------------------------------------------------------

const parseComplete = () => message(B.ParseComplete)
const bindComplete = () => message(B.BindComplete)
const portalSuspended = () => message(B.PortalSuspended)
const commandComplete = (tag: string) => message(B.CommandComplete, cstr(tag))
const readyForQuery = (status: 'I' | 'T' | 'E' = 'I') => encodeReadyForQuery(status)
const serverError = (code: string, text: string) => encodeErrorResponse({severity: 'ERROR', code, message: text})

/** A count word, as RowDescription and DataRow begin. */
function count(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeInt16BE(n)
  return b
}

/** A RowDescription of text columns computed by the query (table OID 0, attribute 0). */
function rowDescription(...names: string[]): Buffer {
  const fields = names.map((name) => {
    const attrs = Buffer.alloc(18) // table OID, attnum, type OID, type size, type modifier, format
    attrs.writeInt32BE(25, 6) // text
    attrs.writeInt16BE(-1, 10)
    attrs.writeInt32BE(-1, 12)
    return Buffer.concat([cstr(name), attrs])
  })
  return message(B.RowDescription, Buffer.concat([count(names.length), ...fields]))
}

function dataRow(...cells: string[]): Buffer {
  const values = cells.map((c) => {
    const b = Buffer.alloc(4 + Buffer.byteLength(c))
    b.writeInt32BE(Buffer.byteLength(c))
    b.write(c, 4)
    return b
  })
  return message(B.DataRow, Buffer.concat([count(cells.length), ...values]))
}

const NAMES = new Map<number, string>(Object.entries(B).map(([name, code]) => [code, name]))

/** A message as a line: its name, with the tag or the error code and text. */
function show(bytes: Buffer): string {
  const f = asFrame(bytes)
  if (f.type === B.CommandComplete) return `CommandComplete ${decodeCommandTag(f)}`
  if (f.type === B.ErrorResponse) {
    const e = decodeErrorFields(f)
    return `ErrorResponse ${e.C} ${e.M}${e.H ? ` (hint: ${e.H})` : ''}`
  }
  return NAMES.get(f.type) ?? String.fromCharCode(f.type)
}

// --- a queue behind a gate whose verdicts come from a table ------------------------------------

const allow: Verdict = {effect: 'allow', ruleId: 'r-allow', mask: {columns: [], entities: [], ruleIds: []}}
const block: Verdict = {effect: 'block', ruleId: 'r-block', message: 'no drops'}

function setup(verdicts: [RegExp, Verdict][] = [[/drop/i, block]]) {
  const events: string[] = []
  const judged: string[] = []
  const gate = new StatementGate(
    {
      judge: async (sql) => {
        judged.push(sql)
        return verdicts.find(([re]) => re.test(sql))?.[1] ?? allow
      },
      beforeForward: async () => {},
      afterStatement: (s) => events.push(`finish ${s.text}: ${s.rows} rows${s.error ? `, error ${s.error}` : ''}`),
      refused: (s) => events.push(`refuse ${s.text}: ${s.verdict.effect} by ${s.verdict.ruleId}`),
    },
    silentLogger,
  )
  const q = new ResponseQueue(gate)

  /** One client message, as the engine handles it: 'skipped', 'forwarded' or 'refused' (the placeholder goes instead). */
  async function send(bytes: Buffer): Promise<'skipped' | 'forwarded' | 'refused'> {
    const m = decodeClientMessage(asFrame(bytes))
    if (q.skips(m)) return 'skipped'
    switch (m.kind) {
      case 'Query':
      case 'Parse': {
        const stmt = await gate.judge(m.sql)
        const refused = await gate.admit(stmt)
        if (m.kind === 'Query') q.query(stmt, refused)
        else q.parse(m.name, stmt, refused)
        return refused ? 'refused' : 'forwarded'
      }
      case 'Bind':
        q.bind(m.portal, m.statement, m.resultFormats)
        break
      case 'Describe':
        q.describe(m.target, m.name)
        break
      case 'Execute':
        q.execute(q.portal(m.portal))
        break
      case 'Sync':
        q.sync()
        break
      default:
        break
    }
    return 'forwarded'
  }

  /** The server's answers, as the engine feeds them; returns what reaches the client. */
  function serve(...answers: Buffer[]): string[] {
    const client: Buffer[] = []
    for (const bytes of answers) {
      const f = asFrame(bytes)
      if (f.type === B.DataRow) {
        q.countRow(bytes.length)
        client.push(bytes)
      } else if (f.type === B.RowDescription) {
        if (q.rowDescription(decodeRowDescription(f) ?? [])) client.push(bytes)
      } else if (f.type === B.ErrorResponse) client.push(q.error(bytes, decodeErrorFields(f)))
      else {
        if (f.type === B.CommandComplete) q.commandTag(decodeCommandTag(f))
        if (q.answer(f.type)) client.push(bytes)
      }
    }
    return client.map(show)
  }

  return {q, gate, events, judged, send, serve}
}

describe('pg engine: correlation queue', () => {
  it('pipelined Parse/Bind/Describe/Execute/Sync with a refused Parse in the middle: its error becomes ours, the rest up to Sync is skipped', async () => {
    const {q, events, judged, send, serve} = setup()
    const pipeline = [
      encodeParse('s1', 'select 1'),
      encodeBind('p1', 's1'),
      encodeDescribe('P', 'p1'),
      encodeExecute('p1'),
      encodeParse('s2', 'drop table t'),
      encodeBind('p2', 's2'),
      encodeDescribe('P', 'p2'),
      encodeExecute('p2'),
      encodeParse('s3', 'select 3'),
      encodeSync(),
    ]
    const sent = []
    for (const m of pipeline) sent.push(await send(m))
    assert.deepEqual(sent, ['forwarded', 'forwarded', 'forwarded', 'forwarded', 'refused', 'skipped', 'skipped', 'skipped', 'skipped', 'forwarded'])
    assert.deepEqual(judged, ['select 1', 'drop table t'], 'nothing after the refused Parse is judged')

    // The server ran s1, then failed to parse the placeholder and skipped to Sync.
    const client = serve(
      parseComplete(),
      bindComplete(),
      rowDescription('?column?'),
      dataRow('1'),
      commandComplete('SELECT 1'),
      serverError('42601', 'syntax error at or near "hoop_refused_statement"'),
      readyForQuery('I'),
    )
    assert.deepEqual(client, [
      'ParseComplete',
      'BindComplete',
      'RowDescription',
      'DataRow',
      'CommandComplete SELECT 1',
      'ErrorResponse 42501 hoop: blocked by policy rule r-block: no drops',
      'ReadyForQuery',
    ])
    assert.deepEqual(events, ['finish select 1: 1 rows', 'refuse drop table t: block by r-block'])
    assert.equal(q.length, 0)
    assert.equal(await send(encodeParse('s4', 'select 4')), 'forwarded', 'Sync ends the skipping')
  })

  it('a portal suspended by a row limit: each Execute is finished with its own rows', async () => {
    const {q, events, send, serve} = setup()
    for (const m of [encodeParse('', 'select generate_series(1, 3)'), encodeBind('', ''), encodeExecute('', 2), encodeSync()]) await send(m)
    assert.deepEqual(serve(parseComplete(), bindComplete(), dataRow('1'), dataRow('2'), portalSuspended(), readyForQuery('T')), [
      'ParseComplete',
      'BindComplete',
      'DataRow',
      'DataRow',
      'PortalSuspended',
      'ReadyForQuery',
    ])
    assert.deepEqual(events, ['finish select generate_series(1, 3): 2 rows'])

    // The same portal again (inside a transaction it outlives Sync): the rest of its rows.
    for (const m of [encodeExecute('', 2), encodeSync()]) await send(m)
    assert.deepEqual(serve(dataRow('3'), commandComplete('SELECT 1'), readyForQuery('T')), ['DataRow', 'CommandComplete SELECT 1', 'ReadyForQuery'])
    assert.deepEqual(events, ['finish select generate_series(1, 3): 2 rows', 'finish select generate_series(1, 3): 1 rows'])
    assert.equal(q.length, 0)
  })

  it("the server's error during an Execute finishes that statement with the error and drops the pipeline's answers up to Sync", async () => {
    const {q, events, send, serve} = setup()
    const pipeline = [
      encodeParse('', 'insert into t values (1)'),
      encodeBind('', ''),
      encodeExecute(''),
      encodeParse('', 'select 1/0'),
      encodeBind('', ''),
      encodeExecute(''),
      encodeParse('', 'select 3'),
      encodeBind('', ''),
      encodeExecute(''),
      encodeSync(),
    ]
    for (const m of pipeline) assert.equal(await send(m), 'forwarded')
    const client = serve(
      parseComplete(),
      bindComplete(),
      commandComplete('INSERT 0 1'),
      parseComplete(),
      bindComplete(),
      serverError('22012', 'division by zero'),
      readyForQuery('I'),
    )
    assert.deepEqual(client, ['ParseComplete', 'BindComplete', 'CommandComplete INSERT 0 1', 'ParseComplete', 'BindComplete', 'ErrorResponse 22012 division by zero', 'ReadyForQuery'])
    // The insert's row count comes from its command tag. 'select 3' was admitted but skipped by the
    // server: it is finished as not run, so the audit has no statement without an end.
    assert.deepEqual(events, [
      'finish insert into t values (1): 1 rows',
      'finish select 1/0: 0 rows, error 22012 division by zero',
      'finish select 3: 0 rows, error not run: an earlier message of the pipeline failed',
    ])
    assert.equal(q.length, 0)

    // The next pipeline correlates from a clean queue.
    for (const m of [encodeParse('', 'select 5'), encodeBind('', ''), encodeExecute(''), encodeSync()]) await send(m)
    serve(parseComplete(), bindComplete(), dataRow('5'), commandComplete('SELECT 1'), readyForQuery('I'))
    assert.equal(events[3], 'finish select 5: 1 rows')
  })

  it('a simple Query with several statements is one statement for the gate, its results counted together; an error ends it', async () => {
    const {q, events, send, serve} = setup()
    await send(encodeQuery('select 1; select 2, 3'))
    serve(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'))
    const h = q.head
    assert.equal(h?.kind === 'query' && h.index, 1, 'the next RowDescription belongs to the second statement')
    serve(rowDescription('b', 'c'), dataRow('2', '3'), dataRow('4', '5'), commandComplete('SELECT 2'))
    assert.deepEqual(events, [], 'finished only at ReadyForQuery')
    serve(readyForQuery('I'))
    assert.deepEqual(events, ['finish select 1; select 2, 3: 3 rows'])

    await send(encodeQuery('select 1; select 1/0; select 3'))
    const client = serve(rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), serverError('22012', 'division by zero'), readyForQuery('I'))
    assert.deepEqual(client, ['RowDescription', 'DataRow', 'CommandComplete SELECT 1', 'ErrorResponse 22012 division by zero', 'ReadyForQuery'])
    assert.equal(events[1], 'finish select 1; select 1/0; select 3: 1 rows, error 22012 division by zero')
    assert.equal(q.length, 0)
  })

  it('a refused simple Query answers with the refusal (and the approval command for a review) and is refused, not finished', async () => {
    const review: Verdict = {effect: 'review', ruleId: 'r-review', message: 'writes need approval', approvalId: 'A7'}
    const {q, events, send, serve} = setup([[/delete/i, review]])
    assert.equal(await send(encodeQuery('delete from t')), 'refused')
    assert.deepEqual(serve(serverError('42601', 'syntax error at or near "hoop_refused_statement"'), readyForQuery('I')), [
      'ErrorResponse 42501 hoop: review required by policy rule r-review: writes need approval (approval A7; an approver runs: hoop approvals approve A7)' +
        ' (hint: an approver runs: hoop approvals approve A7)',
      'ReadyForQuery',
    ])
    assert.deepEqual(events, ['refuse delete from t: review by r-review'])
    assert.equal(q.length, 0)
  })

  it("the answers to the engine's own Describe never reach the client; the columns are kept on the portal", async () => {
    const {q, events, send, serve} = setup()
    for (const m of [encodeParse('', 'select 1 as a'), encodeBind('', '')]) await send(m)
    // What the engine does for an Execute it must mask: Describe the portal first, then Execute.
    const portal = q.portal('')
    q.describeInternally(portal)
    q.execute(portal)
    await send(encodeSync())
    const client = serve(parseComplete(), bindComplete(), rowDescription('a'), dataRow('1'), commandComplete('SELECT 1'), readyForQuery('I'))
    assert.deepEqual(client, ['ParseComplete', 'BindComplete', 'DataRow', 'CommandComplete SELECT 1', 'ReadyForQuery'])
    assert.deepEqual(portal.rowDesc?.map((f) => f.name), ['a'])
    assert.deepEqual(events, ['finish select 1 as a: 1 rows'])
  })
})
