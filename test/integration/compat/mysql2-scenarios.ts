// mysql2 scenarios for the compatibility suite: each runs through mysql2's public API on one
// connection and returns what an application would observe (rows, field metadata, result headers,
// errors), with what legitimately differs between two connections (thread ids) left out. The suite
// runs each against MariaDB directly and through hoop, and compares. Temporary tables keep the two
// runs apart and need no cleaning.
import {createHash} from 'node:crypto'
import type {Connection as CallbackConnection, RowDataPacket} from 'mysql2'
import mysql, {type Connection, type FieldPacket, type ResultSetHeader} from 'mysql2/promise'

export type Scenario = (c: Connection) => Promise<unknown>

/** What an application sees of a result's columns. */
export function fieldsOf(fields: FieldPacket[] | undefined): unknown {
  return fields?.map((f) => ({name: f.name, orgName: f.orgName, table: f.table, orgTable: f.orgTable, db: f.db, type: f.columnType, charset: f.characterSet, length: f.columnLength, flags: f.flags, decimals: f.decimals}))
}

/** A result header without the per-connection parts. */
function headerOf(h: ResultSetHeader): unknown {
  return {affectedRows: h.affectedRows, insertId: h.insertId, info: h.info, serverStatus: h.serverStatus, warningStatus: h.warningStatus, changedRows: h.changedRows}
}

/** Whatever a query answers, made comparable: rows or headers, and fields. */
function observed(r: unknown): unknown {
  if (Array.isArray(r)) return r.map((x) => observed(x))
  if (r && typeof r === 'object' && 'affectedRows' in r) return headerOf(r as ResultSetHeader)
  return r
}

/** The error an application sees (mysql2's own fields). */
export async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
    return 'no error'
  } catch (err) {
    const e = err as {code?: string; errno?: number; sqlState?: string; sqlMessage?: string; message?: string}
    return {code: e.code, errno: e.errno, sqlState: e.sqlState, message: e.sqlMessage ?? e.message}
  }
}

/** The callback-API connection a promise connection wraps (its events, its streaming query()). */
export function coreOf(c: Connection): CallbackConnection {
  return (c as unknown as {connection: CallbackConnection}).connection
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

/** Every byte value, so binary columns are checked end to end. */
const ALL_BYTES = Buffer.from(Array.from({length: 256}, (_, i) => i))

const TYPES_TABLE = `CREATE TEMPORARY TABLE compat_types (
  id int primary key auto_increment, ti tinyint, si smallint unsigned, i int, bi bigint, ubi bigint unsigned,
  de decimal(30,10), f float, d double, b bit(10), dt date, dtm datetime(6), ts timestamp(3) NULL, tm time(2), y year,
  c char(5), vc varchar(100), tx mediumtext, bin binary(4), vb varbinary(300), bl blob, en enum('a','b'), st set('x','y','z'), j json, pt point)`
const TYPES_ROWS = `INSERT INTO compat_types (ti, si, i, bi, ubi, de, f, d, b, dt, dtm, ts, tm, y, c, vc, tx, bin, vb, bl, en, st, j, pt) VALUES
  (-128, 65535, -2147483648, -9223372036854775808, 18446744073709551615, 12345678901234567890.0123456789, 1.5, 2.25e300, b'1010101010',
   '2024-02-29', '1999-12-31 23:59:59.999999', '2038-01-19 03:14:07.123', '-838:59:59.00', 2155, 'ab', 'héllo 🦭 wörld', REPEAT('t', 70000),
   x'00ff10ab', x'${ALL_BYTES.toString('hex')}', x'${ALL_BYTES.toString('hex')}', 'b', 'x,z', '{"k": [1, "two", null, {"d": 1.5}]}', POINT(1.5, -2)),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (0, 0, 0, 0, 0, 0, 0, 0, b'0', '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', 1901, '', '', '', x'00000000', '', '', 'a', '', '[]', POINT(0, 0))`

/** Text and binary protocol over every common type, NULLs, every byte value, dates at their edges. */
export const types: Scenario = async (c) => {
  await c.query(TYPES_TABLE)
  const [ins] = await c.query<ResultSetHeader>(TYPES_ROWS)
  const [rows, fields] = await c.query('SELECT * FROM compat_types ORDER BY id')
  const [prows, pfields] = await c.execute('SELECT * FROM compat_types WHERE id >= ? ORDER BY id', [1])
  const [nul] = await c.execute('SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e', [null, ALL_BYTES, new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 678)), 12345678901234567890n, true])
  return {ins: observed(ins), rows, fields: fieldsOf(fields), prows, pfields: fieldsOf(pfields), nul}
}

/** The same rows as strings (dateStrings, bigNumberStrings): the raw text the server sent. */
export const typesAsStrings: Scenario = async (c) => {
  await c.query(TYPES_TABLE)
  await c.query(TYPES_ROWS)
  const [rows] = await c.query({sql: 'SELECT * FROM compat_types ORDER BY id', rowsAsArray: true})
  const [prows] = await c.execute({sql: 'SELECT * FROM compat_types ORDER BY id', rowsAsArray: true})
  return {rows, prows}
}

/** Prepared statements with 10,000 parameters, in and out. */
export const manyParameters: Scenario = async (c) => {
  const n = 10_000
  await c.query('CREATE TEMPORARY TABLE compat_many (a int)')
  const values = Array.from({length: n}, (_, i) => i * 7)
  const [ins] = await c.execute<ResultSetHeader>(`INSERT INTO compat_many (a) VALUES ${values.map(() => '(?)').join(',')}`, values)
  const [sum] = await c.execute(`SELECT COUNT(*) AS n, SUM(a) AS s FROM compat_many WHERE a IN (${values.map(() => '?').join(',')})`, values)
  const [wide] = await c.execute(`SELECT ${values.slice(0, 2000).map(() => '?').join(', ')}`, values.slice(0, 2000))
  return {ins: observed(ins), sum, wide: sha(JSON.stringify(wide))}
}

/** 8 MB parameters and rows (below max_allowed_packet, 16 MiB), text and binary protocol. */
export const largeValues: Scenario = async (c) => {
  const big = Buffer.alloc(8 * 1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 0xff
  const text = big.toString('base64').slice(0, 8_000_000)
  await c.query('CREATE TEMPORARY TABLE compat_big (id int, b longblob, t longtext)')
  await c.execute('INSERT INTO compat_big VALUES (1, ?, ?)', [big, text])
  await c.query(`INSERT INTO compat_big VALUES (2, x'${big.subarray(0, 3_000_000).toString('hex')}', ${c.escape(text)})`)
  const [rows] = await c.query<({id: number; b: Buffer; t: string} & RowDataPacket)[]>('SELECT id, b, t FROM compat_big ORDER BY id')
  const [prows] = await c.execute<({id: number; b: Buffer; t: string} & RowDataPacket)[]>('SELECT id, b, t FROM compat_big WHERE id > ? ORDER BY id', [0])
  const digest = (rs: {id: number; b: Buffer; t: string}[]) => rs.map((r) => ({id: r.id, b: sha(r.b), bl: r.b.length, t: sha(r.t), tl: r.t.length}))
  return {rows: digest(rows), prows: digest(prows), sentB: sha(big), sentT: sha(text)}
}

/** Several statements in one COM_QUERY: result sets, OKs and an error in the middle. */
export const multiStatements: Scenario = async (c) => {
  const [r, f] = await c.query(`CREATE TEMPORARY TABLE compat_multi (id int primary key auto_increment, v varchar(10));
    INSERT INTO compat_multi (v) VALUES ('a'), ('b'); SELECT * FROM compat_multi; UPDATE compat_multi SET v = 'c' WHERE id = 2;
    SELECT COUNT(*) AS n FROM compat_multi; DO 1`)
  const err = await errorOf(c.query('SELECT 1 AS one; SELECT * FROM no_such_table_compat; SELECT 3'))
  const [after] = await c.query('SELECT v FROM compat_multi ORDER BY id')
  return {r: observed(r), f: (f as unknown as (FieldPacket[] | undefined)[]).map((x) => fieldsOf(x)), err, after}
}

/** JSON values: columns, functions, parameters. */
export const json: Scenario = async (c) => {
  await c.query('CREATE TEMPORARY TABLE compat_json (id int, j json)')
  await c.execute('INSERT INTO compat_json VALUES (1, ?), (2, ?), (3, NULL)', [JSON.stringify({a: [1, 2, {b: 'é'}]}), '"just a string"'])
  const [rows, fields] = await c.query("SELECT id, j, JSON_EXTRACT(j, '$.a[2]') AS x, JSON_OBJECT('id', id) AS o FROM compat_json ORDER BY id")
  const [prows] = await c.execute("SELECT id, j, JSON_VALID(j) AS valid FROM compat_json WHERE id <= ? ORDER BY id", [3])
  return {rows, fields: fieldsOf(fields), prows}
}

/** Errors and warnings: the codes, states and messages applications branch on. */
export const errorsAndWarnings: Scenario = async (c) => {
  await c.query('CREATE TEMPORARY TABLE compat_err (id int primary key, n int not null)')
  await c.query('INSERT INTO compat_err VALUES (1, 1)')
  const dup = await errorOf(c.query('INSERT INTO compat_err VALUES (1, 2)'))
  const pdup = await errorOf(c.execute('INSERT INTO compat_err VALUES (?, ?)', [1, 2]))
  const syntax = await errorOf(c.query('SELEC 1'))
  const psyntax = await errorOf(c.execute('SELEC ?', [1]))
  const [warn] = await c.query<ResultSetHeader>("INSERT IGNORE INTO compat_err VALUES (1, 3), (2, NULL)")
  const [shown] = await c.query('SHOW WARNINGS')
  const [div] = await c.query('SELECT 1 / 0 AS x')
  return {dup, pdup, syntax, psyntax, warn: observed(warn), shown, div}
}

/** Transactions: rollback, commit, savepoints, and the in-transaction status flag. */
export const transactions: Scenario = async (c) => {
  await c.query('CREATE TEMPORARY TABLE compat_tx (id int primary key) ENGINE=InnoDB')
  await c.beginTransaction()
  const [a] = await c.query<ResultSetHeader>('INSERT INTO compat_tx VALUES (1)')
  await c.rollback()
  const [afterRollback] = await c.query('SELECT COUNT(*) AS n FROM compat_tx')
  await c.beginTransaction()
  await c.execute('INSERT INTO compat_tx VALUES (?)', [2])
  await c.query('SAVEPOINT s1')
  await c.execute('INSERT INTO compat_tx VALUES (?)', [3])
  await c.query('ROLLBACK TO SAVEPOINT s1')
  const [inTx] = await c.query<ResultSetHeader>('DO 1')
  await c.commit()
  const [committed] = await c.query('SELECT id FROM compat_tx ORDER BY id')
  return {a: observed(a), afterRollback, inTx: observed(inTx), committed}
}

/** Stored procedures: several result sets from one CALL, text and binary protocol. */
export const procedures: Scenario = async (c) => {
  const name = `compat_proc_${process.pid}`
  await c.query(`CREATE OR REPLACE PROCEDURE ${name}(IN x int) BEGIN SELECT x AS a; SELECT x * 2 AS b, 'two' AS c; END`)
  try {
    const [r] = await c.query(`CALL ${name}(21)`)
    const [p] = await c.execute(`CALL ${name}(?)`, [5])
    return {r: observed(r), p: observed(p)}
  } finally {
    await c.query(`DROP PROCEDURE ${name}`)
  }
}

/** A result set streamed row by row (200,000 rows), and INSERT ... RETURNING. */
export const streamingAndReturning: Scenario = async (c) => {
  const rows = await new Promise<{n: number; digest: string}>((resolve, reject) => {
    const h = createHash('sha256')
    let n = 0
    coreOf(c)
      .query('SELECT seq, CONCAT("row-", seq) AS label FROM seq_1_to_200000')
      .stream()
      .on('data', (r: {seq: number; label: string}) => {
        n++
        h.update(`${r.seq}:${r.label};`)
      })
      .on('end', () => resolve({n, digest: h.digest('hex')}))
      .on('error', reject)
  })
  await c.query('CREATE TEMPORARY TABLE compat_ret (id int primary key auto_increment, v varchar(5))')
  const [ret] = await c.query("INSERT INTO compat_ret (v) VALUES ('a'), ('b') RETURNING id, v")
  const [pret] = await c.execute('INSERT INTO compat_ret (v) VALUES (?) RETURNING id, v', ['c'])
  return {rows, ret, pret}
}

/** Statement objects: prepare once, execute many times, close; and the statement cache. */
export const statementObjects: Scenario = async (c) => {
  const st = await c.prepare('SELECT ? + ? AS s, CONCAT(?, ?) AS t')
  const out: unknown[] = []
  for (let i = 0; i < 50; i++) out.push((await st.execute([i, i * 2, 'x', String(i)]))[0])
  await st.close()
  for (let i = 0; i < 50; i++) out.push((await c.execute('SELECT ? AS v', [i]))[0])
  c.unprepare('SELECT ? AS v')
  out.push((await c.execute('SELECT ? AS v', ['again']))[0])
  await c.ping()
  const [[me]] = await c.query<({id: number} & RowDataPacket)[]>('SELECT CONNECTION_ID() AS id')
  return {out, threadIdIsConnectionId: me.id === c.threadId}
}

/** Every scenario, by name. */
export const scenarios: Record<string, Scenario> = {types, typesAsStrings, manyParameters, largeValues, multiStatements, json, errorsAndWarnings, transactions, procedures, streamingAndReturning, statementObjects}

/** The connection options each scenario needs beyond host, port, user and database. */
export const scenarioOptions: Record<string, object> = {
  typesAsStrings: {dateStrings: true, supportBigNumbers: true, bigNumberStrings: true},
  types: {supportBigNumbers: true},
  multiStatements: {multipleStatements: true},
}

/**
 * A pool of one connection to `port`: the server kills its idle connection (KILL from a direct
 * one); once the client has seen the end, does the pool's next query run on a new connection?
 */
export async function poolReplacesKilled(port: number): Promise<boolean> {
  const pool = mysql.createPool({host: '127.0.0.1', port, user: 'root', database: 'test', connectionLimit: 1})
  const admin = await mysql.createConnection({host: '127.0.0.1', port: 3306, user: 'root'})
  try {
    const conn = await pool.getConnection()
    const id = conn.threadId
    const ended = new Promise((resolve) => conn.connection.once('end', resolve))
    conn.release()
    await admin.query(`KILL ${id}`)
    await ended
    const [[row]] = await pool.query<({id: number} & RowDataPacket)[]>('SELECT CONNECTION_ID() AS id')
    return row.id !== id
  } finally {
    await admin.end()
    await pool.end()
  }
}
