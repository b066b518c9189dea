// Export and verify on the PostgreSQL store, with the code that serves the SQLite store. Rather
// than port export.ts and verify.ts (synchronous, on better-sqlite3) to an asynchronous driver, the
// audit tables are copied from one consistent snapshot (a REPEATABLE READ, READ ONLY transaction:
// every page sees the same committed log, however many replicas append meanwhile) into a private
// temporary SQLite file with the existing schema, and the existing code runs on that file. The
// copy goes page by page (keyset pagination, PAGE rows at a time), so memory stays bounded; the
// file lives in a directory made 0700 by mkdtemp and is removed afterwards, even on failure.
// Recordings are not copied: export and verify do not read them.
import Database from 'better-sqlite3'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {PostgresStore} from '../store/postgres.js'
import type {Row} from '../store/rows.js'
import {ensureAuditSchema} from './schema.js'

const PAGE = 5_000

interface Copy {
  table: string
  /** The key the pages are ordered and resumed by (unique). */
  key: string
  columns: readonly string[]
}

const COPIES: readonly Copy[] = [
  {table: 'audit_events', key: 'seq', columns: ['seq', 'time', 'kind', 'session', 'subject', 'connection', 'hash', 'prev_hash', 'leaf', 'body', 'payload']},
  {table: 'audit_checkpoints', key: 'tree_size', columns: ['tree_size', 'root_hash', 'head_hash', 'timestamp', 'key_fingerprint', 'signature']},
  {table: 'audit_keys', key: 'fingerprint', columns: ['fingerprint', 'public_pem', 'first_used_at']},
  {table: 'audit_anchors', key: 'id', columns: ['id', 'tree_size', 'root_hash', 'kind', 'target', 'published_at', 'token', 'gen_time']},
  {table: 'audit_payload_removals', key: 'seq', columns: ['seq', 'how', 'at', 'ref']},
  {table: 'audit_holds', key: 'id', columns: ['id', 'scope', 'target', 'reason', 'placed_at', 'placed_by', 'released_at']},
]

/** bigint columns arrive as strings from pg; SQLite wants numbers for its INTEGER columns. */
const BIGINT = new Set(['seq', 'tree_size', 'id'])

function sqliteValue(column: string, v: unknown): unknown {
  if (v === null || v === undefined) return null
  return BIGINT.has(column) ? Number(v) : v
}

/**
 * Copies the audit log as one snapshot into a temporary SQLite file, runs `fn` on it, and removes
 * the file. `witness` is recorded as the file's witness path, so export checks the store against
 * this replica's published heads.
 */
export async function withAuditSnapshot<T>(store: PostgresStore, opts: {witness?: string}, fn: (db: Database.Database) => T | Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-audit-snapshot-'))
  let db: Database.Database | undefined
  try {
    db = new Database(join(dir, 'hoop.db'))
    db.pragma('journal_mode = OFF')
    db.pragma('synchronous = OFF')
    ensureAuditSchema(db)
    if (opts.witness) db.prepare("INSERT INTO audit_meta (key, value) VALUES ('witness_path', ?)").run(opts.witness)
    const target = db
    await store.transaction(async (q) => {
      await q('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
      for (const c of COPIES) await copyTable(q, target, c)
    })
    return await fn(db)
  } finally {
    db?.close()
    rmSync(dir, {recursive: true, force: true})
  }
}

async function copyTable(q: (sql: string, args?: unknown[]) => Promise<Row[]>, db: Database.Database, c: Copy): Promise<void> {
  const insert = db.prepare(`INSERT INTO ${c.table} (${c.columns.join(', ')}) VALUES (${c.columns.map(() => '?').join(', ')})`)
  const insertPage = db.transaction((rows: Row[]) => {
    for (const r of rows) insert.run(...c.columns.map((col) => sqliteValue(col, r[col])))
  })
  let after: unknown
  for (;;) {
    const rows =
      after === undefined
        ? await q(`SELECT ${c.columns.join(', ')} FROM ${c.table} ORDER BY ${c.key} LIMIT $1`, [PAGE])
        : await q(`SELECT ${c.columns.join(', ')} FROM ${c.table} WHERE ${c.key} > $1 ORDER BY ${c.key} LIMIT $2`, [after, PAGE])
    insertPage(rows)
    if (rows.length < PAGE) return
    after = rows[rows.length - 1][c.key]
  }
}
