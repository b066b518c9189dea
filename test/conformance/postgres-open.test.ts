// What only the PostgreSQL store does when it opens: it refuses a schema newer than it knows, and
// never shows the URL's password in what it throws.
import assert from 'node:assert/strict'
import {HoopError} from '../../src/shared/errors.js'
import {MIGRATIONS} from '../../src/store/pg-migrations.js'
import {PostgresStore, redactUrl} from '../../src/store/postgres.js'
import {adminQuery, postgresBackend} from './backends.js'

const isStoreUnavailable = (re: RegExp) => (err: unknown) => err instanceof HoopError && err.code === 'STORE_UNAVAILABLE' && re.test(err.message)

describe('PostgreSQL store: opening', () => {
  const backend = postgresBackend()
  after(() => backend.cleanup())

  it('refuses a store whose schema a newer hoop migrated, and leaves it as it was', async () => {
    const b = await backend.fresh()
    await (await b.open()).close()
    const next = MIGRATIONS.length + 1
    await adminQuery(`INSERT INTO schema_migrations (version, name) VALUES (${next}, 'from the future')`, b.url)
    await assert.rejects(b.open(), isStoreUnavailable(new RegExp(`schema is at version ${next}, newer than this hoop knows \\(${MIGRATIONS.length}\\); upgrade hoop`)))
    const rows = await adminQuery<{n: number}>('SELECT count(*)::int AS n FROM schema_migrations', b.url)
    assert.equal(rows[0].n, next)
  })

  it('names an unknown database with the password redacted', async () => {
    const url = 'postgresql://postgres:pw-secret-123@127.0.0.1:5432/hoop_store_test_no_such_db'
    await assert.rejects(PostgresStore.open({url}), (err: unknown) => {
      assert.ok(isStoreUnavailable(/cannot open the store at postgresql:\/\/postgres:redacted@127\.0\.0\.1:5432\/hoop_store_test_no_such_db: .*does not exist/)(err), String(err))
      assert.doesNotMatch(String((err as Error).message), /pw-secret-123/)
      return true
    })
  })

  it('redacts passwords in the userinfo and in query parameters', () => {
    assert.equal(redactUrl('postgres://u:p%40ss@db.internal:6432/hoop?sslmode=require&password=x'), 'postgres://u:redacted@db.internal:6432/hoop?sslmode=require&password=redacted')
    assert.equal(redactUrl('postgresql://db/hoop'), 'postgresql://db/hoop')
    assert.equal(redactUrl('not a url with secret'), '<a store URL that does not parse>')
  })
})
