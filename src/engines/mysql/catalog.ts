// Stored routines from the target's catalog, for masking CALL results. A CALL's result sets come
// from the statements of the procedure's body, which its text does not show; the body is read from
// information_schema.ROUTINES on a second connection of the gateway's own, logged in like the
// client's, never on the client's (a query there would change its session: warnings, FOUND_ROWS,
// last insert id). Nothing is cached: a procedure can be replaced at any time. A failed look-up
// resolves to undefined, which masking treats as "the body reads masked data" (fail closed).
import {errorMessage, HoopError} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {decodeColumnCount, decodeErr, isErr, isProgressReport, isResultTerminator, Reader} from '../../protocol/mysql/messages.js'
import {COM} from '../../protocol/mysql/constants.js'
import {encodeCommand} from '../../protocol/mysql/commands.js'
import type {Upstream} from './upstream.js'

/** What masking needs to judge `CALL name(...)`. */
export interface CallRoutines {
  /** The bodies of every procedure the name could mean (any schema when unqualified); null where the catalog hides it. */
  bodies: (string | null)[]
  /** Names of every stored function, any schema: a body or argument calling one runs code hoop cannot see. */
  functions: string[]
}

export class MysqlCatalog {
  private conn: Promise<Upstream> | undefined
  private chain: Promise<unknown> = Promise.resolve()

  constructor(
    /** Dials and logs in a second connection to the target. */
    private readonly open: () => Promise<Upstream>,
    private readonly deprecateEof: boolean,
    private readonly log: Logger,
  ) {}

  /** The routines for a CALL of `name` (in `schema`, or any); undefined when the look-up failed or the name cannot be quoted safely. */
  async forCall(schema: string | undefined, name: string): Promise<CallRoutines | undefined> {
    // Quoted without backslashes or quotes, whatever the catalog connection's sql_mode reads.
    if ([schema, name].some((s) => s !== undefined && /['\\]/.test(s))) return undefined
    const where = `ROUTINE_TYPE = 'FUNCTION' OR (ROUTINE_TYPE = 'PROCEDURE' AND ROUTINE_NAME = '${name}'${schema ? ` AND ROUTINE_SCHEMA = '${schema}'` : ''})`
    try {
      const rows = await this.query(`SELECT ROUTINE_TYPE, ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ${where}`)
      const out: CallRoutines = {bodies: [], functions: []}
      for (const [type, routine, body] of rows) {
        if (type === 'FUNCTION') out.functions.push(routine ?? '')
        else out.bodies.push(body ?? null)
      }
      return out
    } catch (err) {
      this.log.warn('mysql catalog lookup failed; masking CALL results (fail closed)', {error: errorMessage(err)})
      return undefined
    }
  }

  close(): void {
    this.conn?.then((c) => c.close()).catch(() => {})
  }

  /** One text-protocol query, its rows as strings (null for NULL); one at a time. */
  private query(sql: string): Promise<(string | null)[][]> {
    const run = async () => {
      const up = await (this.conn ??= this.open())
      up.write(encodeCommand(COM.QUERY, sql), 0)
      const first = await this.next(up)
      if (isErr(first)) throw new HoopError('TARGET_REFUSED', `catalog query failed: ${decodeErr(first).message}`)
      const n = decodeColumnCount(first)
      if (n === undefined) throw new HoopError('PROTOCOL_ERROR', 'catalog query: no result set')
      for (let i = 0; i < n; i++) await this.next(up)
      if (!this.deprecateEof) await this.next(up)
      const rows: (string | null)[][] = []
      for (;;) {
        const p = await this.next(up)
        if (isErr(p)) throw new HoopError('TARGET_REFUSED', `catalog query failed: ${decodeErr(p).message}`)
        if (isResultTerminator(p, this.deprecateEof)) return rows
        const r = new Reader(p, 0)
        const row: (string | null)[] = []
        for (let i = 0; i < n; i++) row.push(r.lenencBytes()?.toString('utf8') ?? null)
        rows.push(row)
      }
    }
    const p = this.chain.then(run, run)
    this.chain = p.catch(() => {})
    return p
  }

  private async next(up: Upstream): Promise<Buffer> {
    for (;;) {
      const p = await up.read('catalog query')
      if (!isProgressReport(p.payload)) return p.payload
    }
  }
}
