// Column origins from the target's catalog. RowDescription names a column by table OID and
// attribute number; masking needs schema, table and column names (and, for a view, which of its
// columns derive from a masked one). The look-ups run on a second authenticated connection of the
// gateway's own, never on the client's, and are cached per session where that is safe. They are
// named prepared statements with array parameters: PostgreSQL plans each once per connection, where
// planning the text every time cost it 0.43 + 0.85 ms of CPU per statement against 0.27 + 0.15 ms
// prepared (pgbench, this machine) -- the per-statement look-ups cost far more than a point SELECT.
// A failed look-up resolves to undefined, which masking treats as "mask the column" (fail closed).
//
// Where the target's database has hoop's event triggers (docs/sql/catalog-notify.sql: every
// committed DDL notifies CATALOG_CHANNEL), the catalog connection LISTENs, and what a statement's
// analysis looks up (is a name trusted code, which views have a name) is kept until a notification
// says the catalog changed, so a session's repeated statements need no round trip. The triggers are
// checked on the connection at least every CHECK_EVERY_MS; without them, or once the connection is
// gone, every statement looks up as before (docs/postgres.md, "Catalog cache").
import type {Duplex} from 'node:stream'
import type {ColumnMatcher} from '../../masking/columns.js'
import type {Frame} from '../../protocol/pg/framer.js'
import {B, decodeErrorFields, encodeBind, encodeExecute, encodeParse, encodeSync, encodeTerminate} from '../../protocol/pg/messages.js'
import {errorMessage, HoopError} from '../../shared/errors.js'
import type {Logger} from '../../shared/log.js'
import {loadPgParser, type PgParses} from '../../sql/pg-parser.js'
import {analyzeSql, type OutputItem, type StatementAnalysis} from '../../sql/pg-taint.js'
import {outputAt} from '../../sql/taint.js'
import {isPulledEnd, isPulledError} from '../io.js'
import {openAuthenticated, type FrameReader, type PgDial} from './upstream.js'

/** Views over views are followed this deep; a deeper one counts as masked whole. */
const MAX_VIEW_DEPTH = 8

/** OIDs below this were made by initdb: built-in objects (PostgreSQL's FirstNormalObjectId). */
const FIRST_NORMAL_OID = 16384

/** The channel hoop's event triggers notify on each committed DDL (docs/sql/catalog-notify.sql). */
export const CATALOG_CHANNEL = 'hoop_catalog'
/** The trigger function's body, exactly; any other body (one that may not notify) turns the cache off. */
export const CATALOG_TRIGGER_BODY = `BEGIN PERFORM pg_catalog.pg_notify('${CATALOG_CHANNEL}', ''); END`
/** Cached look-ups are used only while the triggers were found in place at most this long ago. */
const CHECK_EVERY_MS = 1000
/** Names cached per session, at most (then the cache starts over). */
const MAX_CACHED = 10_000

/** Targets (host/database) whose catalog cache state this process has logged: once each. */
const announced = new Set<string>()

/** A relation as masking needs it. */
export interface RelInfo {
  schema: string
  table: string
  /** Attribute number -> column name. */
  columns: Map<number, string>
  /** A view (or materialized view). */
  view?: true
  /** For a view: what each of its columns derives from (undefined when its definition cannot be analysed). */
  viewOutputs?: OutputItem[]
}

/** What the catalog says of a relation, before any mask plan is applied. */
interface CatalogRow {
  schema: string
  table: string
  columns: Map<number, string>
  viewdef?: string
}

/**
 * A session's catalog: opened on the first look-up, closed with the session. Names are cached by
 * OID; a view's derived columns are analysed per mask plan (matcher), since two statements of one
 * session may mask different columns.
 */
export class Catalog {
  private conn: Promise<CatalogConn> | undefined
  private readonly byOid = new Map<number, Promise<CatalogRow | 'missing' | undefined>>()
  /** A view definition's outputs, per mask plan (matcher key), nesting depth and definition text. */
  private readonly views = new Map<string, Promise<OutputItem[] | undefined>>()
  /** Cached analysis look-ups (module comment): routine key -> trusted, relation name -> its views in every schema. */
  private readonly trustedNames = new Map<string, boolean>()
  private readonly viewsNamed = new Map<string, CatalogRow[]>()
  /** Counts the catalog's change notifications: a look-up answered across one is not cached. */
  private generation = 0
  /** Until when (ms) the cache may answer: the triggers were last found in place CHECK_EVERY_MS before. */
  private cacheUntil = 0

  constructor(
    private readonly open: () => Promise<CatalogConn>,
    private readonly log: Logger,
    /** How long a check of the triggers lets the cache answer (tests lengthen it). */
    private readonly checkEveryMs = CHECK_EVERY_MS,
  ) {}

  /** Analyses answered from the cache, round trips made, change notifications received (tests, debugging). */
  readonly stats = {cached: 0, roundTrips: 0, notifications: 0}

  /**
   * Resolves a table OID to schema, table and column names (and a view's derived columns).
   * 'missing' when no committed relation has the OID (created in the client's open transaction);
   * undefined when the look-up failed.
   */
  async relation(oid: number, matcher: ColumnMatcher): Promise<RelInfo | 'missing' | undefined> {
    let p = this.byOid.get(oid)
    if (!p) {
      p = this.lookupAll(BY_OID, [String(oid >>> 0)]).then((rows) => (rows === undefined ? undefined : (rows[0] ?? 'missing')))
      this.byOid.set(oid, p)
    }
    const row = await p
    if (row === 'missing') {
      // Not committed yet: it may be later in this session, so ask again next time.
      this.byOid.delete(oid)
      return row
    }
    return this.withViewOutputs(row, matcher)
  }

  /**
   * Every committed relation a (possibly schema-qualified) name could mean, as COPY names it: the
   * client's search_path is not the catalog connection's, so an unqualified name is looked up in
   * every schema (temporary schemas included) and the caller masks what any of them would.
   * Undefined when the look-up failed; empty when no committed relation has that name.
   */
  async relationsByName(schema: string | undefined, table: string, matcher: ColumnMatcher): Promise<RelInfo[] | undefined> {
    const rows = await this.lookupAll(BY_NAME, [table, schema ?? ''])
    if (!rows) return undefined
    const out: RelInfo[] = []
    for (const r of rows) {
      const info = await this.withViewOutputs(r, matcher)
      if (info) out.push(info)
    }
    return out
  }

  close(): void {
    this.conn?.then((c) => c.close()).catch(() => {})
  }

  /** The catalog connection, opened (and LISTENing) on first use. */
  private connection(): Promise<CatalogConn> {
    return (this.conn ??= this.open().then((c) => {
      c.onNotification = () => {
        this.stats.notifications++
        this.changed()
      }
      c.onClose = () => this.changed()
      return c
    }))
  }

  /** The catalog changed (or the listener went away): nothing cached holds, and nothing is cached until checked again. */
  private changed(): void {
    this.generation++
    this.dropCache()
    this.byOid.clear()
    this.views.clear()
  }

  /** Drops the analysis look-ups kept while the triggers were in place. */
  private dropCache(): void {
    this.cacheUntil = 0
    this.trustedNames.clear()
    this.viewsNamed.clear()
  }

  /**
   * Taint analysis of `sql` that sees through views and user code. Columns of the views it names
   * that derive from a masked column count as masked columns (views over views too). The routines
   * it runs (functions, operators, cast types) that are not trusted (`analysisLookups`), or that
   * this session defined (`defined`: it may have shadowed a built-in's name in its open
   * transaction), are opaque to it. Undefined when it does not parse.
   */
  async analyze(sql: string, matcher: ColumnMatcher, defined: ReadonlySet<string> = new Set(), parses?: PgParses, depth = 0): Promise<StatementAnalysis[] | undefined> {
    await loadPgParser()
    const first = analyzeSql(sql, matcher, undefined, parses)
    if (!first || matcher.empty) return first
    const own = new Set([...defined, ...first.flatMap((a) => (a.defines ? [a.defines] : []))])
    const called = new Set(first.flatMap((a) => a.routines ?? []))
    const rels = first.flatMap((a) => a.relations ?? [])
    const {user, views} = await this.analysisLookups([...called].filter((k) => !own.has(k)), rels)
    for (const k of called) if (own.has(k)) user.add(k)
    const derived = await this.derivedViewColumns(views, rels, matcher, depth)
    if (derived.length === 0 && user.size === 0) return first
    return analyzeSql(sql, derived.length ? matcher.extend(derived) : matcher, user, parses)
  }

  /**
   * Column patterns for the columns of the views among `rels` that derive from a masked column
   * (below): what the built-in rules check a storing statement's sources against (gate.ts,
   * refuseStoredFromViews). Its own round trip, since the sources need not be names the statement's
   * taint analysis looked up (a prepared statement's EXECUTE, SQL text a function runs).
   */
  async maskedViewColumns(rels: readonly {schema?: string; table: string}[], matcher: ColumnMatcher): Promise<string[]> {
    const {views} = await this.analysisLookups([], rels)
    return this.derivedViewColumns(views, rels, matcher, 0)
  }

  /**
   * Column patterns for the columns of `views` (the views among `rels`) that derive from a masked
   * column. Every view of a name counts (the client's search_path is not the catalog
   * connection's). A view whose definition cannot be analysed, or nested too deep, has every column
   * masked; when the look-up failed (`views` undefined), so has every relation named.
   */
  private async derivedViewColumns(views: CatalogRow[] | undefined, rels: readonly {schema?: string; table: string}[], matcher: ColumnMatcher, depth: number): Promise<string[]> {
    if (!views) return rels.map((r) => columnPattern(r.schema ?? '*', r.table, '*'))
    const out: string[] = []
    for (const row of views) {
      const outputs = await this.viewOutputs(row.viewdef ?? '', matcher, depth + 1)
      for (const [attnum, name] of row.columns) {
        const o = outputs ? outputAt(outputs, attnum - 1, outputs.length) : 'unknown'
        if (o === 'unknown' || o.source) out.push(columnPattern(row.schema, row.table, name))
      }
    }
    return out
  }

  /**
   * In one round trip, what analysing a statement needs from the catalog: which of `keys`
   * (`routineKey` keys) may be user code, and the views (and materialized views) among `rels`.
   * A routine name is trusted only when every object of that name in the committed catalog is
   * trusted code, whatever the schema or the client's search_path: a built-in (made by initdb) or
   * a member of an installed extension (citext, PostGIS...: put there by whoever could install it,
   * and no subject can add to it); a type also must have no other cast function into it. A name
   * the catalog does not hold may have been made in the open transaction: user code. When the
   * look-up fails every key is user code and `views` is undefined. Not cached: another session may
   * create a routine or a view of any name at any time.
   */
  private async analysisLookups(keys: readonly string[], rels: readonly {schema?: string; table: string}[]): Promise<{user: Set<string>; views: CatalogRow[] | undefined}> {
    const user = new Set(keys)
    // A backslash reads differently without standard_conforming_strings: not asked, masked (fail closed).
    if (rels.some((r) => `${r.schema ?? ''}${r.table}`.includes('\\'))) return {user, views: undefined}
    const tables = [...new Set(rels.map((r) => r.table))]
    if (keys.length === 0 && tables.length === 0) return {user, views: []}
    try {
      const conn = await this.connection()
      // What the cache cannot answer is asked; all of it when the triggers are due for a check.
      const fresh = Date.now() < this.cacheUntil
      // The cache's answers are taken before the round trip: a notification during it empties the cache.
      const cachedKeys = new Map<string, boolean>()
      const cachedViews = new Map<string, CatalogRow[]>()
      if (fresh) {
        for (const k of keys) {
          const trusted = this.trustedNames.get(k)
          if (trusted !== undefined) cachedKeys.set(k, trusted)
        }
        for (const t of tables) {
          const views = this.viewsNamed.get(t)
          if (views) cachedViews.set(t, views)
        }
      }
      const asked = await this.lookUp(
        conn,
        keys.filter((k) => !cachedKeys.has(k)),
        tables.filter((t) => !cachedViews.has(t)),
        !fresh,
      )
      for (const k of keys) if (cachedKeys.get(k) ?? asked.trusted.has(k)) user.delete(k)
      const found = tables.flatMap((t) => cachedViews.get(t) ?? asked.views.get(t) ?? [])
      // Asked by name in every schema: keep the views a (schema-qualified) name could mean.
      const named = (row: CatalogRow) => rels.some((r) => r.table === row.table && (!r.schema || r.schema === row.schema))
      return {user, views: found.filter(named)}
    } catch (err) {
      this.log.warn('pg catalog lookup failed; treating routines as user code and views as masked (fail closed)', {error: errorMessage(err)})
      return {user, views: undefined}
    }
  }

  /**
   * One round trip for the routine keys and relation names the cache cannot answer (none when it
   * answers everything), with the check of the triggers when `check`. What comes back is cached
   * when the triggers were found in place and no change notification arrived meanwhile.
   */
  private async lookUp(conn: CatalogConn, keys: readonly string[], tables: readonly string[], check: boolean): Promise<{trusted: Set<string>; views: Map<string, CatalogRow[]>}> {
    const out = {trusted: new Set<string>(), views: new Map<string, CatalogRow[]>()}
    const routines = trustedRoutinesCall(keys)
    const views: Call | undefined = tables.length ? {...VIEWS_NAMED, params: [pgArray(tables)]} : undefined
    if (!routines && !views && !check) {
      this.stats.cached++
      return out
    }
    this.stats.roundTrips++
    const generation = this.generation
    const started = Date.now()
    const results = await conn.run([routines, views, check ? TRIGGERS_IN_PLACE : undefined].filter((c): c is Call => c !== undefined))
    if (routines) for (const [k] of results.shift() ?? []) if (k) out.trusted.add(k)
    if (views) {
      for (const t of tables) out.views.set(t, [])
      for (const row of groupRelations(results.shift() ?? [])) out.views.get(row.table)?.push(row)
    }
    if (check) {
      const [count, pid, listening] = results.shift()?.[0] ?? []
      // The same backend that LISTENs must answer (a transaction-pooling proxy would switch backends).
      conn.listenerPid ??= pid ?? undefined
      const inPlace = count === '2' && listening === 'true' && pid === conn.listenerPid && conn.listening
      if (!announced.has(conn.target)) {
        announced.add(conn.target)
        if (inPlace) this.log.info('pg catalog cache on: the target notifies its catalog changes', {target: conn.target})
        else this.log.info('pg catalog cache off: each masked statement looks the catalog up (install docs/sql/catalog-notify.sql to cache)', {target: conn.target})
      }
      // A notification during the round trip leaves the cache off until the next check.
      if (inPlace && generation === this.generation) this.cacheUntil = started + this.checkEveryMs
      else if (!inPlace) this.dropCache()
    }
    if (generation !== this.generation || Date.now() >= this.cacheUntil) return out
    if (this.trustedNames.size + this.viewsNamed.size + keys.length + tables.length > MAX_CACHED) {
      this.trustedNames.clear()
      this.viewsNamed.clear()
    }
    for (const k of keys) this.trustedNames.set(k, out.trusted.has(k))
    for (const [t, rows] of out.views) this.viewsNamed.set(t, rows)
    return out
  }

  /** What each output of a view definition derives from, under a mask plan; undefined when it cannot be told. */
  private viewOutputs(viewdef: string, matcher: ColumnMatcher, depth: number): Promise<OutputItem[] | undefined> {
    if (depth > MAX_VIEW_DEPTH) return Promise.resolve(undefined)
    // Per depth: the same view met deeper may hit the limit (masked whole), which must not stick to it.
    const key = `${matcher.key}\n${depth}\n${viewdef}`
    let p = this.views.get(key)
    if (!p) this.views.set(key, (p = this.analyze(viewdef, matcher, new Set(), undefined, depth).then((a) => a?.[0]?.outputs)))
    return p
  }

  private async withViewOutputs(row: CatalogRow | undefined, matcher: ColumnMatcher): Promise<RelInfo | undefined> {
    if (!row) return undefined
    const info: RelInfo = {schema: row.schema, table: row.table, columns: row.columns}
    if (row.viewdef === undefined) return info
    info.view = true
    info.viewOutputs = await this.viewOutputs(row.viewdef, matcher, 1)
    return info
  }

  /** The relations a prepared look-up finds, one row each; undefined when the look-up failed. */
  private async lookupAll(statement: Omit<Call, 'params'>, params: string[]): Promise<CatalogRow[] | undefined> {
    try {
      const conn = await this.connection()
      const [rows] = await conn.run([{...statement, params}])
      return groupRelations(rows ?? [])
    } catch (err) {
      this.log.warn('pg catalog lookup failed; masking the column (fail closed)', {error: errorMessage(err)})
      return undefined
    }
  }
}

/** Relations matching `where` (over pg_class c, pg_namespace n), one row per column; see groupRelations. */
function relationsSql(where: string): string {
  return `SELECT n.nspname, c.relname, c.relkind::text, a.attnum::text, a.attname,
                CASE WHEN c.relkind IN ('v','m') THEN pg_catalog.pg_get_viewdef(c.oid) END, c.oid::text
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE ${where}
          ORDER BY c.oid, a.attnum`
}

/** A prepared catalog query and its (text) parameters. */
interface Call {
  name: string
  sql: string
  params: string[]
}

const BY_OID = {name: 'hoop_rel_by_oid', sql: relationsSql('c.oid = $1::pg_catalog.oid')}
/** A relation COPY may name: $2 is its schema, or '' for every schema. */
const BY_NAME = {name: 'hoop_rel_by_name', sql: relationsSql(`c.relname = $1::pg_catalog.name AND ($2::pg_catalog.text = '' OR n.nspname = $2::pg_catalog.name) AND c.relkind IN ('r','p','v','m','f')`)}
/** The views and materialized views of the names in $1, in every schema. */
const VIEWS_NAMED = {name: 'hoop_views_named', sql: relationsSql(`c.relkind IN ('v','m') AND c.relname = ANY($1::pg_catalog.name[])`)}

/**
 * '2' when both of hoop's event triggers are in place (docs/sql/catalog-notify.sql), with the
 * backend's pid and whether it LISTENs on CATALOG_CHANNEL. In place means: enabled ALWAYS
 * (also under session_replication_role = replica), on every command tag, running a PL/pgSQL
 * function owned by a superuser whose body is exactly CATALOG_TRIGGER_BODY and whose search_path is
 * pinned (a session's own search_path cannot shadow pg_notify).
 */
const TRIGGERS_IN_PLACE: Call = {
  name: 'hoop_catalog_triggers',
  sql: `SELECT count(DISTINCT t.evtevent)::text, pg_catalog.pg_backend_pid()::text, ($2::pg_catalog.text IN (SELECT pg_catalog.pg_listening_channels()))::text FROM pg_catalog.pg_event_trigger t
          JOIN pg_catalog.pg_proc p ON p.oid = t.evtfoid
          JOIN pg_catalog.pg_language l ON l.oid = p.prolang
          JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
         WHERE t.evtevent IN ('ddl_command_end', 'sql_drop') AND t.evtenabled = 'A' AND t.evttags IS NULL
           AND l.lanname = 'plpgsql' AND r.rolsuper AND p.prosrc = $1 AND p.proconfig = '{search_path=pg_catalog}'`,
  params: [CATALOG_TRIGGER_BODY, CATALOG_CHANNEL],
}

function groupRelations(rows: (string | null)[][]): CatalogRow[] {
  const byOid = new Map<string, CatalogRow>()
  for (const r of rows) {
    let row = byOid.get(r[6] ?? '')
    if (!row) {
      row = {schema: r[0] ?? '', table: r[1] ?? '', columns: new Map()}
      if (r[5]) row.viewdef = r[5]
      byOid.set(r[6] ?? '', row)
    }
    row.columns.set(Number(r[3]), r[4] ?? '')
  }
  return [...byOid.values()]
}

/** The look-up naming which of `keys` are trusted routines (see Catalog.analysisLookups); undefined when there is nothing to ask. */
function trustedRoutinesCall(keys: readonly string[]): Call | undefined {
  const names = (kind: string) => keys.filter((k) => k.startsWith(`${kind}:`) && !k.includes('\\')).map((k) => k.slice(kind.length + 1))
  const [fns, ops, types] = [names('function'), names('operator'), names('type')]
  if (fns.length + ops.length + types.length === 0) return undefined
  return {...TRUSTED_ROUTINES, params: [pgArray(fns), pgArray(ops), pgArray(types)]}
}

/** Built-in (made by initdb) or a member of an installed extension. */
const trusted = (catalog: string, oid: string) =>
  `(${oid} < ${FIRST_NORMAL_OID} OR EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.${catalog}'::pg_catalog.regclass AND d.objid = ${oid} AND d.deptype = 'e'))`

/** Of the function ($1), operator ($2) and type ($3) names, those whose every object is trusted; a type also has no untrusted cast into it. */
const TRUSTED_ROUTINES = {
  name: 'hoop_trusted_routines',
  sql: `SELECT 'function:' || p.proname FROM pg_catalog.pg_proc p WHERE p.proname = ANY($1::pg_catalog.name[]) GROUP BY p.proname HAVING bool_and(${trusted('pg_proc', 'p.oid')})
  UNION ALL SELECT 'operator:' || o.oprname FROM pg_catalog.pg_operator o WHERE o.oprname = ANY($2::pg_catalog.name[]) GROUP BY o.oprname HAVING bool_and(${trusted('pg_operator', 'o.oid')})
  UNION ALL SELECT 'type:' || t.typname FROM pg_catalog.pg_type t
        LEFT JOIN pg_catalog.pg_cast c ON c.casttarget = t.oid AND c.castfunc <> 0 AND NOT ${trusted('pg_proc', 'c.castfunc')}
        WHERE t.typname = ANY($3::pg_catalog.name[]) GROUP BY t.typname HAVING bool_and(${trusted('pg_type', 't.oid')} AND c.oid IS NULL)`,
}

/** A PostgreSQL array literal of text elements (a Bind parameter's text form, never SQL text). */
function pgArray(items: readonly string[]): string {
  return `{${items.map((x) => `"${x.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`
}

/**
 * A second authenticated connection to the target, for catalog queries only (never the client's).
 * It LISTENs on CATALOG_CHANNEL; where LISTEN is refused (a hot standby) it serves look-ups without.
 */
export async function openCatalog(dial: PgDial, params: Record<string, string>, log: Logger): Promise<CatalogConn> {
  const conn = await openAuthenticated(dial, {...params, application_name: 'hoop-catalog'}, log)
  conn.stream.on('error', () => {})
  const catalog = new CatalogConn(conn.stream, conn.reader, `${dial.target.host}/${params.database ?? ''}`)
  await catalog.run([LISTEN]).then(
    () => (catalog.listening = true),
    (err) => log.debug('pg catalog connection cannot LISTEN; every statement looks up', {error: errorMessage(err)}),
  )
  return catalog
}

const LISTEN: Call = {name: 'hoop_listen', sql: `LISTEN ${CATALOG_CHANNEL}`, params: []}

/**
 * Minimal extended-protocol client for catalog look-ups on the gateway's own connection; one round
 * trip at a time. Each statement is parsed once (named) and then only bound and executed. One loop
 * reads every frame the server sends: a round trip's answers, and between them the change
 * notifications (`onNotification`); `onClose` runs once when the connection is gone.
 */
export class CatalogConn {
  private chain: Promise<unknown> = Promise.resolve()
  private readonly parsed = new Set<string>()
  /** The running round trip's frame handler; undefined when the connection is gone. */
  private handle: ((f: Frame | undefined) => void) | undefined
  private gone = false
  /** LISTEN succeeded: change notifications reach onNotification. */
  listening = false
  /** The backend the first check of the triggers ran on: every later check must run there too. */
  listenerPid: string | undefined
  onNotification: () => void = () => {}
  onClose: () => void = () => {}

  constructor(
    private readonly stream: Duplex,
    private readonly reader: FrameReader,
    /** host/database, for logs. */
    readonly target = '',
  ) {
    void this.pump()
  }

  /** Several prepared look-ups in one round trip (one Sync): the rows of each, in order. */
  run(calls: readonly Call[]): Promise<(string | null)[][][]> {
    const run = () =>
      new Promise<(string | null)[][][]>((resolve, reject) => {
        if (this.gone) return reject(new HoopError('TARGET_REFUSED', 'catalog connection closed'))
        const parsing: string[] = []
        const out: Buffer[] = []
        for (const c of calls) {
          if (!this.parsed.has(c.name) && !parsing.includes(c.name)) {
            out.push(encodeParse(c.name, c.sql))
            parsing.push(c.name)
          }
          out.push(encodeBind('', c.name, c.params), encodeExecute(''))
        }
        out.push(encodeSync())
        const results: (string | null)[][][] = []
        let rows: (string | null)[][] = []
        let error: string | undefined
        this.handle = (f) => {
          if (f === undefined) return reject(new HoopError('TARGET_REFUSED', 'catalog connection closed'))
          if (f.type === B.ParseComplete) this.parsed.add(parsing.shift() ?? '')
          else if (f.type === B.DataRow) rows.push(decodeTextRow(f))
          else if (f.type === B.CommandComplete) {
            results.push(rows)
            rows = []
          } else if (f.type === B.ErrorResponse) error = decodeErrorFields(f).M
          else if (f.type === B.ReadyForQuery) {
            this.handle = undefined
            if (error) reject(new HoopError('TARGET_REFUSED', `catalog query failed: ${error}`))
            else resolve(results)
          }
        }
        this.stream.write(Buffer.concat(out))
      })
    const p = this.chain.then(run, run)
    this.chain = p.catch(() => {})
    return p
  }

  close(): void {
    if (!this.stream.destroyed) this.stream.end(encodeTerminate())
    setTimeout(() => this.stream.destroy(), 1000).unref()
  }

  /** Reads every frame until the connection ends; frames outside a round trip (notices, parameter changes) are dropped. */
  private async pump(): Promise<void> {
    for (;;) {
      const f = await this.reader.one()
      if (isPulledEnd(f) || isPulledError(f)) break
      if (f.type === B.NotificationResponse) this.onNotification()
      else this.handle?.(f)
    }
    this.gone = true
    this.listening = false
    this.onClose()
    this.handle?.(undefined)
    this.handle = undefined
  }
}

function decodeTextRow(f: Frame): (string | null)[] {
  const b = f.bytes
  const n = b.readInt16BE(5)
  let off = 7
  const out: (string | null)[] = []
  for (let i = 0; i < n; i++) {
    const len = b.readInt32BE(off)
    off += 4
    if (len < 0) out.push(null)
    else {
      out.push(b.toString('utf8', off, off + len))
      off += len
    }
  }
  return out
}


/** A mask pattern naming one column; a name the pattern syntax cannot hold becomes `*` (broader, never narrower). */
function columnPattern(schema: string, table: string, column: string): string {
  const part = (x: string) => (/[."]/.test(x) || x.trim() !== x || x === '' ? '*' : x)
  return `${part(schema)}.${part(table)}.${part(column)}`
}
