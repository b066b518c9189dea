// The gateway refuses a store it cannot vouch for: on open, against the witness file's last head
// and its own last checkpoint (rolled back, forked, replaced, cut short, witness removed), with an
// explicit, recorded override; while running, a database file swapped, overwritten or truncated
// fails every append closed, and the head held in memory goes to the witness so a restart on the
// swapped store is refused too.
import assert from 'node:assert/strict'
import type Database from 'better-sqlite3'
import {copyFileSync, readFileSync, renameSync, rmSync, truncateSync} from 'node:fs'
import {join} from 'node:path'
import {exportEvidence} from '../../../src/audit/export.js'
import {AuditLog} from '../../../src/audit/log.js'
import {HoopError} from '../../../src/shared/errors.js'
import {openDb, sampleEvents, tempDir} from './_helpers.js'

interface Fixture {
  dir: string
  witness: string
}

function fixture(): Fixture {
  const f = {dir: '', witness: '', cleanup: () => {}}
  beforeEach(() => {
    const t = tempDir()
    Object.assign(f, {dir: t.dir, cleanup: t.cleanup, witness: join(t.dir, 'elsewhere', 'witness.jsonl')})
  })
  afterEach(() => f.cleanup())
  return f
}

function open(db: Database.Database, f: Fixture, o: {accept?: boolean; guard?: boolean; witness?: string} = {}): AuditLog {
  return AuditLog.open({db, dataDir: f.dir, checkpointEvery: {events: 8, ms: 0}, anchors: {witness: o.witness ?? f.witness}, vouch: {acceptRollback: o.accept}, guardStore: o.guard})
}

async function grow(db: Database.Database, f: Fixture, sessions: number, tag = 'A', o: {witness?: string} = {}): Promise<void> {
  const log = open(db, f, o)
  for (let s = 0; s < sessions; s++) for (const e of sampleEvents(`ses_${tag}${String(s).padStart(11, '0')}`)) await log.append(e)
  await log.close()
}

/** Stops, keeps a copy of the database, runs on, then puts the copy back (hoop.db only, WAL folded in). */
async function rollBack(f: Fixture, before: number, after: number, afterTag = 'B'): Promise<Database.Database> {
  let db = openDb(f.dir)
  await grow(db, f, before)
  db.pragma('wal_checkpoint(TRUNCATE)')
  copyFileSync(join(f.dir, 'hoop.db'), join(f.dir, 'old.db'))
  await grow(db, f, after, afterTag)
  db.close()
  copyFileSync(join(f.dir, 'old.db'), join(f.dir, 'hoop.db'))
  db = openDb(f.dir)
  return db
}

function refused(kind: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof HoopError, String(err))
    assert.equal(err.code, 'AUDIT_STORE_REFUSED')
    assert.equal(err.exitCode, 26)
    assert.match(err.message, kind)
    assert.match(err.message, /--accept-store-rollback/)
    return true
  }
}

describe('the gateway vouches for its store on start', () => {
  const f = fixture()

  it('an honest store reopens, again and again', async () => {
    const db = openDb(f.dir)
    await grow(db, f, 1)
    await grow(db, f, 1, 'B')
    await open(db, f).close()
    db.close()
  })

  it('a store rolled back to an earlier copy is refused, with only the witness file', async () => {
    const db = await rollBack(f, 2, 2)
    assert.throws(() => open(db, f), refused(/tree head of size 32 .* covers 32 events, but the store ends at seq 16: it was rolled back to an earlier copy or cut short \(16 published events are missing\)/))
    db.close()
  })

  it('a rolled-back store that grew past its old size (a fork) is refused', async () => {
    const db = await rollBack(f, 2, 1)
    // Grown by a gateway that published elsewhere (or not at all).
    await grow(db, f, 2, 'C', {witness: join(f.dir, 'other.jsonl')})
    assert.throws(() => open(db, f), refused(/the store's first 24 events do not rebuild the tree head of size 24 .*: the store is a different log \(forked or rewritten\)/))
    db.close()
  })

  it('an empty store in place of the old one is refused as replaced', async () => {
    let db = openDb(f.dir)
    await grow(db, f, 1)
    db.close()
    for (const s of ['', '-wal', '-shm']) rmSync(join(f.dir, `hoop.db${s}`), {force: true})
    db = openDb(f.dir)
    assert.throws(() => open(db, f), refused(/the store is empty: it was replaced by a new one/))
    db.close()
  })

  it('a store cut short below its own last checkpoint is refused even without a witness line', async () => {
    const db = openDb(f.dir)
    await grow(db, f, 2)
    db.prepare('DELETE FROM audit_events WHERE seq > 10').run()
    rmSync(f.witness)
    assert.throws(() => open(db, f, {witness: join(f.dir, 'new-witness.jsonl')}), refused(/its own last checkpoint\) covers 16 events, but the store ends at seq 10/))
    db.close()
  })

  it('a witness file removed while the store says heads were published to it is refused', async () => {
    const db = openDb(f.dir)
    await grow(db, f, 1)
    rmSync(f.witness)
    assert.throws(() => open(db, f), refused(/the witness file .* is missing, but this store records 1 tree head\(s\) published to it/))
    db.close()
  })

  it('--accept-store-rollback opens it, says why, and marks the next witness line; the next start vouches for it', async () => {
    const db = await rollBack(f, 2, 2)
    const log = open(db, f, {accept: true})
    assert.equal(log.accepted?.kind, 'behind')
    assert.equal(log.accepted?.head?.tree_size, 32)
    // Nothing new was appended yet: the head of the accepted store is published all the same.
    log.checkpoint()
    await log.close()
    const last = JSON.parse(readFileSync(f.witness, 'utf8').trim().split('\n').at(-1)!) as {accepted?: {problem: string}; tree_head: {tree_size: number}}
    assert.equal(last.accepted?.problem, 'behind')
    assert.equal(last.tree_head.tree_size, 16)
    await open(db, f).close()
    // Export holds the store to the heads since the accepted line, not the ones before it.
    const sum = await exportEvidence({db, dataDir: f.dir, out: join(f.dir, 'p.tar.gz')})
    assert.equal(sum.treeSize, 16)
    db.close()
  })
})

describe('the gateway fails closed when its store changes under it', () => {
  const f = fixture()

  async function running(): Promise<{db: Database.Database; log: AuditLog}> {
    const db = openDb(f.dir)
    const log = open(db, f, {guard: true})
    for (const e of sampleEvents()) await log.append(e)
    for (const e of sampleEvents('ses_BBBBBBBBBBBB').slice(0, 3)) await log.append(e)
    return {db, log}
  }

  async function refusesAppends(log: AuditLog, reason: RegExp): Promise<void> {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(log.append(sampleEvents()[1]), (err: HoopError) => {
        assert.equal(err.code, 'AUDIT_UNAVAILABLE')
        assert.match(err.message, reason)
        return true
      })
    }
    assert.throws(() => log.checkpoint(), /cannot be vouched for/)
  }

  it('a database file replaced by another (rename over it): every append refused; the restart refuses the swapped store', async () => {
    const {db, log} = await running()
    const other = openDb(join(f.dir, 'other'))
    const side = AuditLog.open({db: other, dataDir: join(f.dir, 'other'), checkpointEvery: {events: 0, ms: 0}})
    for (const e of sampleEvents('ses_CCCCCCCCCCCC')) await side.append(e)
    await side.close()
    other.close()
    // Moved in as a whole: the file, without the old one's WAL.
    renameSync(join(f.dir, 'other', 'hoop.db'), join(f.dir, 'hoop.db'))
    for (const s of ['-wal', '-shm']) rmSync(join(f.dir, `hoop.db${s}`), {force: true})
    await refusesAppends(log, /was replaced by another file while the gateway ran/)
    await log.close()
    db.close()
    // The head of all 11 acknowledged events went to the witness: the swapped store (8 events) is refused.
    const last = JSON.parse(readFileSync(f.witness, 'utf8').trim().split('\n').at(-1)!) as {tree_head: {tree_size: number}}
    assert.equal(last.tree_head.tree_size, 11)
    const reopened = openDb(f.dir)
    assert.throws(() => open(reopened, f), refused(/tree head of size 11/))
    reopened.close()
  })

  it('a database file overwritten in place by an older copy: the next commit sees the store no longer ends at its last event', async () => {
    const {db, log} = await running()
    db.pragma('wal_checkpoint(TRUNCATE)')
    copyFileSync(join(f.dir, 'hoop.db'), join(f.dir, 'old.db'))
    for (const e of sampleEvents('ses_DDDDDDDDDDDD')) await log.append(e)
    db.pragma('wal_checkpoint(TRUNCATE)')
    copyFileSync(join(f.dir, 'old.db'), join(f.dir, 'hoop.db'))
    await refusesAppends(log, /cannot be vouched for: (the store ends at seq 11 .* committed up to seq 19|the database file .* shrank)/)
    await log.close()
    db.close()
  })

  it('a database file truncated while idle: the periodic check notices within a second', async () => {
    const {db, log} = await running()
    db.pragma('wal_checkpoint(TRUNCATE)')
    await log.append(sampleEvents()[0]) // the writer learns the file's size
    truncateSync(join(f.dir, 'hoop.db'), 0)
    await new Promise((r) => setTimeout(r, 1300))
    await refusesAppends(log, /shrank from \d+ to 0 bytes while the gateway ran \(truncated\)/)
    await log.close()
    db.close()
  })

  it('a database file cut short behind the writer\'s back: the commit that meets it refuses it for good', async () => {
    const {db, log} = await running()
    db.pragma('wal_checkpoint(TRUNCATE)')
    truncateSync(join(f.dir, 'hoop.db'), 4096)
    await refusesAppends(log, /cannot be vouched for: (the database file .* is corrupt or was cut short|the store ends at seq|the database file .* shrank)/)
    await log.close()
    db.close()
  })

  it('a database file deleted while running', async () => {
    const {db, log} = await running()
    rmSync(join(f.dir, 'hoop.db'))
    await refusesAppends(log, /the database file .* is gone \(ENOENT\)/)
    await log.close()
    db.close()
  })
})
