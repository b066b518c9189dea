// The catalog cache (docs/postgres.md, "Catalog cache"), against the real PostgreSQL: a database
// of its own with hoop's event triggers installed from docs/sql/catalog-notify.sql, so that every
// committed DDL notifies the catalog connection. What is asserted is what the analysis (and, through
// the engine, the client) gets: a name answered from the cache must be answered again once another
// session changes the catalog, and without the triggers in place exactly as installed nothing is
// cached. The check interval is lengthened to a minute where the notification alone must do it.
import {strict as assert} from 'node:assert'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {Catalog, type CatalogConn, CATALOG_TRIGGER_BODY, openCatalog} from '../../../src/engines/postgres/catalog.js'
import {ColumnMatcher} from '../../../src/masking/columns.js'
import {silentLogger} from '../../../src/shared/log.js'
import {loadPgParser} from '../../../src/sql/pg-parser.js'
import type {OutputColumn} from '../../../src/sql/taint.js'
import {ROOT} from '../../helpers/cli.js'
import {connect} from '../../helpers/engine-server.js'
import {adminQuery} from '../../conformance/backends.js'
import {allow, startHarness} from './harness.js'

const DB = `hoop_catcache_${process.pid}`
const PLAIN = `hoop_catcache_plain_${process.pid}`
const url = (db: string) => `postgresql://postgres@127.0.0.1:5432/${db}`
const INSTALL = readFileSync(join(ROOT, 'docs', 'sql', 'catalog-notify.sql'), 'utf8')
const OBJECTS = `CREATE TABLE customers (id int primary key, name text, email text);
  INSERT INTO customers VALUES (1, 'Ann', 'ann@example.com');
  CREATE VIEW v AS SELECT id, name AS contact FROM customers;`
const matcher = new ColumnMatcher(['customers.email'])

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Runs SQL on `db` as the superuser, outside hoop (another session). */
async function on(db: string, sql: string): Promise<void> {
  const c = new pg.Client({connectionString: url(db)})
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

/** What the catalogs logged at info level. */
const infos: string[] = []
const logger = {...silentLogger, info: (msg: string, fields?: Record<string, unknown>) => void infos.push(`${msg} ${JSON.stringify(fields)}`)}

function catalogOn(db: string, checkEveryMs?: number, opened?: (c: CatalogConn) => void): Catalog {
  const dial = {openUpstream: () => connect(5432), target: {host: '127.0.0.1', tls: {mode: 'disable' as const}}}
  const open = async () => {
    const conn = await openCatalog(dial, {user: 'postgres', database: db}, silentLogger)
    opened?.(conn)
    return conn
  }
  return new Catalog(open, logger, checkEveryMs)
}

/** Whether the first output of `sql` derives from a masked column (or from user code). */
async function firstMasked(catalog: Catalog, sql: string): Promise<boolean> {
  const a = await catalog.analyze(sql, matcher)
  const first = a?.[0]?.outputs?.[0] as OutputColumn | undefined
  assert.ok(first && !('star' in first), `an output column for ${sql}`)
  return first.source !== undefined
}

/** Round trips that `n` more analyses of a statement make, after a first one (which also analyses the view's definition). */
async function roundTripsFor(catalog: Catalog, n: number, sql = 'SELECT upper(contact) FROM v WHERE id = 1'): Promise<number> {
  assert.equal(await firstMasked(catalog, sql), false)
  const before = catalog.stats.roundTrips
  for (let i = 0; i < n; i++) assert.equal(await firstMasked(catalog, sql), false)
  return catalog.stats.roundTrips - before
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < 100, `timed out waiting for ${what}`)
    await sleep(50)
  }
}

describe('pg catalog cache: invalidated by the target\'s own DDL notifications', function () {
  this.timeout(60_000)
  const catalogs: Catalog[] = []
  const track = (c: Catalog) => (catalogs.push(c), c)

  before(async () => {
    await loadPgParser()
    for (const db of [DB, PLAIN]) {
      await adminQuery(`DROP DATABASE IF EXISTS ${db}`)
      await adminQuery(`CREATE DATABASE ${db}`)
      await on(db, OBJECTS)
    }
    await on(DB, INSTALL)
  })
  afterEach(() => {
    for (const c of catalogs.splice(0)) c.close()
  })
  after(async () => {
    await sleep(100)
    for (const db of [DB, PLAIN]) await adminQuery(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  })

  it('docs/sql/catalog-notify.sql installs exactly the body the gateway checks for', () => {
    assert.ok(INSTALL.includes(`$$${CATALOG_TRIGGER_BODY}$$`))
  })

  it('answers repeated statements from the cache: no round trip after the first', async () => {
    const c = track(catalogOn(DB, 60_000))
    assert.equal(await roundTripsFor(c, 5), 0)
    assert.equal(c.stats.cached, 5)
  })

  it('a view redefined over a masked column by another session is masked once its notification arrives', async () => {
    const c = track(catalogOn(DB, 60_000))
    assert.equal(await roundTripsFor(c, 1, 'SELECT upper(contact) FROM v'), 0)
    const before = c.stats.roundTrips
    await on(DB, 'CREATE OR REPLACE VIEW v AS SELECT id, email AS contact FROM customers')
    try {
      await until('the notification', () => c.stats.notifications > 0)
      assert.equal(await firstMasked(c, 'SELECT upper(contact) FROM v'), true, 'masked after the change')
      assert.ok(c.stats.roundTrips > before, 'looked up again')
    } finally {
      await on(DB, 'CREATE OR REPLACE VIEW v AS SELECT id, name AS contact FROM customers')
    }
  })

  it('a function shadowing a trusted name, made by a session whose search_path shadows pg_notify, still empties the cache', async () => {
    const c = track(catalogOn(DB, 60_000))
    assert.equal(await roundTripsFor(c, 1, 'SELECT lower(name) FROM customers'), 0, 'lower is a built-in, cached')
    // The DDL session puts its own pg_notify (that notifies nothing) before pg_catalog.
    await on(
      DB,
      `CREATE SCHEMA evil;
       CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE sql AS 'SELECT';
       SET search_path = evil, pg_catalog, public;
       CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS 'SELECT email FROM public.customers LIMIT 1'`,
    )
    try {
      await until('the notification', () => c.stats.notifications > 0)
      assert.equal(await firstMasked(c, 'SELECT lower(name) FROM customers'), true, 'lower may now be user code')
    } finally {
      await on(DB, 'DROP FUNCTION public.lower(text); DROP SCHEMA evil CASCADE')
    }
  })

  it('caches nothing without the triggers: every analysis is a round trip', async () => {
    const c = track(catalogOn(PLAIN))
    assert.equal(await roundTripsFor(c, 3), 3)
    assert.equal(c.stats.cached, 0)
  })

  it('says once per target whether the cache is on, and how to turn it on', () => {
    assert.deepEqual(
      infos.filter((l) => l.includes(`/${DB}"`) || l.includes(`/${PLAIN}"`)),
      [`pg catalog cache on: the target notifies its catalog changes {"target":"127.0.0.1/${DB}"}`, `pg catalog cache off: each masked statement looks the catalog up (install docs/sql/catalog-notify.sql to cache) {"target":"127.0.0.1/${PLAIN}"}`],
    )
  })

  for (const [what, change, undo] of [
    ['enabled for origin sessions only (not ALWAYS)', 'ALTER EVENT TRIGGER hoop_catalog_ddl ENABLE', 'ALTER EVENT TRIGGER hoop_catalog_ddl ENABLE ALWAYS'],
    ['disabled', 'ALTER EVENT TRIGGER hoop_catalog_drop DISABLE', 'ALTER EVENT TRIGGER hoop_catalog_drop ENABLE ALWAYS'],
    [
      'running another body',
      "CREATE OR REPLACE FUNCTION public.hoop_catalog_changed() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$BEGIN NULL; END$$",
      `CREATE OR REPLACE FUNCTION public.hoop_catalog_changed() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$${CATALOG_TRIGGER_BODY}$$`,
    ],
    ['running a function with the session\'s search_path', 'ALTER FUNCTION public.hoop_catalog_changed() RESET search_path', 'ALTER FUNCTION public.hoop_catalog_changed() SET search_path = pg_catalog'],
  ]) {
    it(`caches nothing while a trigger is ${what}`, async () => {
      await on(DB, change)
      try {
        const c = track(catalogOn(DB))
        assert.equal(await roundTripsFor(c, 3), 3)
        assert.equal(c.stats.cached, 0)
      } finally {
        await on(DB, undo)
      }
    })
  }

  it('a trigger changed after the cache filled turns it off at the next check', async () => {
    // Checked every 2 s: long enough for a loaded machine to answer twice from the cache first.
    const c = track(catalogOn(DB, 2_000))
    assert.equal(await roundTripsFor(c, 1), 0, 'cached while the triggers are in place')
    // ALTER EVENT TRIGGER fires no event trigger: only the periodic check can see it.
    await on(DB, 'ALTER EVENT TRIGGER hoop_catalog_ddl DISABLE')
    try {
      await sleep(2_100)
      assert.equal(await roundTripsFor(c, 3), 3, 'a round trip per analysis once the check failed')
    } finally {
      await on(DB, 'ALTER EVENT TRIGGER hoop_catalog_ddl ENABLE ALWAYS')
    }
  })

  it('a catalog connection that stopped listening caches nothing from its next check on', async () => {
    let conn: CatalogConn | undefined
    const c = track(catalogOn(DB, 2_000, (x) => (conn = x)))
    assert.equal(await roundTripsFor(c, 1), 0, 'cached while listening')
    await conn!.run([{name: 'hoop_test_unlisten', sql: 'UNLISTEN *', params: []}])
    await sleep(2_100)
    assert.equal(await roundTripsFor(c, 3), 3)
  })

  it('a catalog connection that is gone caches nothing and fails closed: every column of the view masked', async () => {
    const c = track(catalogOn(DB, 60_000))
    assert.equal(await firstMasked(c, 'SELECT upper(contact) FROM v'), false)
    await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${DB}' AND application_name = 'hoop-catalog'`)
    await sleep(200)
    assert.equal(await firstMasked(c, 'SELECT upper(contact) FROM v'), true)
  })

  it('through the engine: the client gets the masked value once another session redefines the view', async () => {
    const h = await startHarness({judge: () => allow({columns: ['customers.email'], entities: [], ruleIds: ['pii']})})
    const client = new pg.Client({host: '127.0.0.1', port: h.port, user: 'postgres', database: DB})
    await client.connect()
    try {
      const contact = async () => (await client.query<{c: string}>('SELECT upper(contact) AS c FROM v WHERE id = 1')).rows[0].c
      assert.equal(await contact(), 'ANN')
      assert.equal(await contact(), 'ANN')
      await on(DB, 'CREATE OR REPLACE VIEW v AS SELECT id, email AS contact FROM customers')
      // The notification is in flight for a moment (docs/postgres.md, "Catalog cache"); then, and
      // at the latest after the next check of the triggers, the value is masked for good.
      let after = 'ANN'
      for (let i = 0; i < 40 && after === 'ANN'; i++) {
        await sleep(50)
        after = await contact()
      }
      assert.ok(after !== 'ANN' && !/ann@example\.com/i.test(after), `masked, got ${after}`)
      for (let i = 0; i < 3; i++) assert.equal(await contact(), after, 'and stays masked')
    } finally {
      await client.end().catch(() => undefined)
      await h.close()
      await on(DB, 'CREATE OR REPLACE VIEW v AS SELECT id, name AS contact FROM customers')
    }
  })
})
