// One PostgreSQL transaction on one pooled connection, for the migrations and for callers that
// need row locks (SELECT ... FOR UPDATE) held from a check to the write that follows it.
import type pg from 'pg'

/** Runs `fn` between BEGIN and COMMIT; any error rolls back and is thrown as is. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let failed = false
  // A connection lost while checked out is emitted as 'error' on the client (and fails the query
  // in flight); without a listener that event would crash the process.
  const lost = (): void => {
    failed = true
  }
  client.on('error', lost)
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    failed = true
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  } finally {
    // A connection that failed mid-transaction is not handed to anyone else.
    client.off('error', lost)
    client.release(failed)
  }
}
