// Outside anchors against a forger who controls the store but not the signing key: a rollback to an
// earlier copy, the tail deleted with the checkpoints that cover it, an event forged with the chain
// recomputed and every checkpoint deleted, and a rolled-back store grown past its old size all pass
// `verify --live` on their own; each is caught with nothing but the witness file (or one published
// head) and the pinned key.
import assert from 'node:assert/strict'
import type Database from 'better-sqlite3'
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {readAnchorFiles} from '../../../src/audit/anchor-check.js'
import {lastWitnessAnchor} from '../../../src/audit/anchors.js'
import {exportEvidence} from '../../../src/audit/export.js'
import {AuditLog} from '../../../src/audit/log.js'
import {readTarGz} from '../../../src/audit/tar.js'
import {VERIFY_LIMITS, verifyLive, verifyPackage} from '../../../src/audit/verify.js'
import {HoopError} from '../../../src/shared/errors.js'
import {forge, openDb, sampleEvents, tempDir} from './_helpers.js'

const anchorsOf = (...files: string[]) => readAnchorFiles(files, VERIFY_LIMITS)

/** Appends `n` sample sessions (8 events each) with a checkpoint every 8 events. */
async function grow(db: Database.Database, dir: string, witness: string, sessions: number, tag = 'A'): Promise<string> {
  const log = AuditLog.open({db, dataDir: dir, checkpointEvery: {events: 8, ms: 0}, anchors: {witness}})
  for (let s = 0; s < sessions; s++) for (const e of sampleEvents(`ses_${tag}${String(s).padStart(11, '0')}`)) await log.append(e)
  await log.close()
  return log.publicKeyPem()
}

/** A consistent copy of the store (the WAL folded in first). */
function snapshot(db: Database.Database, dir: string, to: string): void {
  db.pragma('wal_checkpoint(TRUNCATE)')
  copyFileSync(join(dir, 'hoop.db'), to)
}

/**
 * A store rolled back: `before` sessions, a copy taken, `after` more sessions published to the
 * witness, then the copy put back. Returns the reopened database and the public key.
 */
async function rolledBack(dir: string, witness: string, before: number, after: number): Promise<{db: Database.Database; pub: string}> {
  let db = openDb(dir)
  const pub = await grow(db, dir, witness, before)
  const copy = join(dir, 'old.db')
  snapshot(db, dir, copy)
  await grow(db, dir, witness, after, 'B')
  db.close()
  copyFileSync(copy, join(dir, 'hoop.db'))
  db = openDb(dir)
  return {db, pub}
}

/** A temp data dir per test, and a witness file "on another volume" (another directory). */
function fixture(): {dir: string; witness: string} {
  const f = {dir: '', witness: '', cleanup: () => {}}
  beforeEach(() => {
    const t = tempDir()
    f.dir = t.dir
    f.cleanup = t.cleanup
    f.witness = join(t.dir, 'other-volume', 'witness.jsonl')
  })
  afterEach(() => f.cleanup())
  return f
}

describe('audit anchors: the live store against published heads', () => {
  const f = fixture()

  it('the witness file gets every signed head, fsynced, one JSONL line each', async () => {
    const db = openDb(f.dir)
    await grow(db, f.dir, f.witness, 3)
    const lines = readFileSync(f.witness, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as {tree_head: {tree_size: number}})
    assert.deepEqual(lines.map((l) => l.tree_head.tree_size), [8, 16, 24])
    const last = lastWitnessAnchor(f.witness)
    assert.equal(last.state === 'ok' && last.anchor.tree_head.tree_size, 24)
    const published = db.prepare("SELECT tree_size FROM audit_anchors WHERE kind = 'witness' ORDER BY tree_size").all() as {tree_size: number}[]
    assert.deepEqual(published.map((r) => r.tree_size), [8, 16, 24])
    db.close()
  })

  it('a torn last line (a crash mid-write) is skipped; the line before it counts', async () => {
    const db = openDb(f.dir)
    await grow(db, f.dir, f.witness, 2)
    db.close()
    writeFileSync(f.witness, readFileSync(f.witness, 'utf8') + '{"tree_head":{"tree_si')
    const last = lastWitnessAnchor(f.witness)
    assert.ok(last.state === 'ok' && last.torn && last.anchor.tree_head.tree_size === 16)
  })

  it('rollback to an earlier copy: verify --live passes alone, fails with the witness as anchor', async () => {
    const {db, pub} = await rolledBack(f.dir, f.witness, 2, 2)
    assert.equal(verifyLive(db, {publicKey: pub}).ok, true, 'the old copy verifies on its own')
    const r = verifyLive(db, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, false)
    assert.equal(r.first?.record, 'event seq 17')
    assert.match(r.first!.reason, /tree head of size 32 .* store ends at seq 16: the store was rolled back or truncated/)
    db.close()
  })

  it('the tail deleted with the checkpoints that cover it: caught by one later head', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 4)
    db.prepare('DELETE FROM audit_events WHERE seq > 20').run()
    db.prepare('DELETE FROM audit_checkpoints WHERE tree_size > 20').run()
    assert.equal(verifyLive(db, {publicKey: pub}).ok, true, 'nothing in the store says so')
    // One published head is enough: the witness file's last line, saved as a file of its own.
    const head = join(f.dir, 'head.json')
    writeFileSync(head, JSON.stringify((JSON.parse(readFileSync(f.witness, 'utf8').trim().split('\n').at(-1)!) as {tree_head: unknown}).tree_head, null, 2))
    const r = verifyLive(db, {publicKey: pub, anchors: await anchorsOf(head)})
    assert.equal(r.ok, false)
    assert.equal(r.first?.record, 'event seq 21')
    db.close()
  })

  it('a forged event with the chain recomputed and every checkpoint deleted: the rewrite is located between two heads', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 4)
    forge(db, 12, (e) => {
      e.data.text = 'SELECT 1'
    })
    db.prepare('DELETE FROM audit_checkpoints').run()
    assert.equal(verifyLive(db, {publicKey: pub}).ok, true, 'a recomputed chain verifies on its own')
    const r = verifyLive(db, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, false)
    assert.equal(r.first?.record, 'events seq 9..16', r.first?.reason)
    assert.match(r.first!.reason, /rewritten/)
    // Heads before the forgery still hold; the proof from the newest good one is reported.
    assert.ok(r.failures.every((f) => f.record !== 'events seq 1..8'))
    db.close()
  })

  it('a rolled-back store grown past its old size (a fork) is caught', async () => {
    const {db, pub} = await rolledBack(f.dir, f.witness, 2, 1)
    const forkWitness = join(f.dir, 'unused.jsonl')
    await grow(db, f.dir, forkWitness, 3, 'C')
    assert.equal(verifyLive(db, {publicKey: pub}).ok, true)
    const r = verifyLive(db, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, false)
    assert.equal(r.first?.record, 'events seq 17..24')
    db.close()
  })

  it('an honest store is consistent with every head it published, with an RFC 6962 proof', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 3)
    const r = verifyLive(db, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, true, JSON.stringify(r.failures))
    assert.equal(r.anchors?.length, 1)
    assert.equal(r.anchors![0].result, 'consistent')
    assert.equal(r.anchors![0].tree_size, 24)
    assert.deepEqual(r.anchors![0].proof, {from_size: 24, to_size: 24, nodes: []})
    db.close()
  })

  it('a forged anchor (not signed by the pinned key) and an unreadable anchor file are named', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 1)
    const line = JSON.parse(readFileSync(f.witness, 'utf8').trim()) as {tree_head: {tree_size: number}}
    line.tree_head.tree_size = 9
    const forged = join(f.dir, 'forged.json')
    writeFileSync(forged, JSON.stringify(line))
    const junk = join(f.dir, 'junk.jsonl')
    writeFileSync(junk, 'not json\n')
    const r = verifyLive(db, {publicKey: pub, anchors: await anchorsOf(forged, junk)})
    assert.equal(r.ok, false)
    const records = r.failures.map((f) => f.record)
    assert.ok(records.includes(`anchor (size 9) from ${forged}`), records.join('; '))
    assert.ok(records.includes(`anchor file ${junk} line 1`), records.join('; '))
    db.close()
  })
})

async function fileOf(pkg: string, name: string): Promise<string> {
  let out = ''
  await readTarGz(pkg, (n) => {
    const parts: Buffer[] = []
    return {data: (c) => parts.push(Buffer.from(c)), end: () => n.endsWith(`/${name}`) && (out = Buffer.concat(parts).toString('utf8'))}
  })
  return out
}

describe('audit anchors: evidence packages', () => {
  const f = fixture()

  it('a package carries the published heads (anchors.jsonl) and verifies against them and the witness', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 3)
    const pkg = join(f.dir, 'p.tar.gz')
    const sum = await exportEvidence({db, dataDir: f.dir, out: pkg})
    assert.equal(sum.anchors, 3)
    const lines = (await fileOf(pkg, 'anchors.jsonl')).trim().split('\n').map((l) => JSON.parse(l) as {tree_head: {tree_size: number}; published: {kind: string; target: string}[]})
    assert.deepEqual(lines.map((l) => l.tree_head.tree_size), [8, 16, 24])
    assert.deepEqual(lines[0].published.map((p) => p.kind), ['witness'])
    const r = await verifyPackage(pkg, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, true, JSON.stringify(r.failures))
    assert.ok(r.anchors!.every((a) => a.result === 'consistent'))
    db.close()
  })

  it('a package of part of the log is checked against an anchor by the consistency proof the export wrote', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 4)
    const pkg = join(f.dir, 'p.tar.gz')
    // The last session only: seqs 25..32 of a tree of 32.
    const last = (db.prepare('SELECT time FROM audit_events WHERE seq = 25').get() as {time: string}).time
    await exportEvidence({db, dataDir: f.dir, out: pkg, from: last})
    const r = await verifyPackage(pkg, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, true, JSON.stringify(r.failures))
    const w = r.anchors!.find((a) => a.source.startsWith(f.witness))!
    assert.equal(w.tree_size, 32)
    assert.equal(w.result, 'consistent')
    db.close()
  })

  it('export refuses a store that is behind its witness (rolled back): it never signs past a gap', async () => {
    const {db} = await rolledBack(f.dir, f.witness, 2, 2)
    await assert.rejects(exportEvidence({db, dataDir: f.dir, out: join(f.dir, 'p.tar.gz')}), (err: HoopError) => {
      assert.equal(err.code, 'AUDIT_STORE_REFUSED')
      assert.match(err.message, /covers 32 events, but the store ends at seq 16/)
      return true
    })
    db.close()
  })

  it('export refuses a store whose events after the last signed head do not chain', async () => {
    const db = openDb(f.dir)
    await grow(db, f.dir, f.witness, 2)
    const log = AuditLog.open({db, dataDir: f.dir, checkpointEvery: {events: 100, ms: 0}})
    for (const e of sampleEvents('ses_TAIL00000000').slice(0, 3)) await log.append(e)
    await log.flush()
    db.prepare(`UPDATE audit_events SET body = replace(body, '"time":"2', '"time":"1') WHERE seq = 18`).run()
    await assert.rejects(exportEvidence({db, dataDir: f.dir, out: join(f.dir, 'p.tar.gz')}), /event seq 18 does not match its stored hash/)
    await log.close().catch(() => {})
    db.close()
  })

  it('a package exported from a rolled-back store with the witness hidden verifies alone, not against the witness', async () => {
    const {db, pub} = await rolledBack(f.dir, f.witness, 2, 2)
    const pkg = join(f.dir, 'p.tar.gz')
    // The forger exports with the witness out of sight (and the store's own record of it gone).
    db.prepare('DELETE FROM audit_meta').run()
    await exportEvidence({db, dataDir: f.dir, out: pkg, witness: join(f.dir, 'nowhere.jsonl')})
    const alone = await verifyPackage(pkg, {publicKey: pub})
    assert.equal(alone.ok, true, JSON.stringify(alone.failures))
    const r = await verifyPackage(pkg, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, false)
    assert.equal(r.first?.record, 'signed tree head (size 16)')
    assert.match(r.first!.reason, /the gateway had published a head of size 32 .*: the log was rolled back before this package was exported/)
    db.close()
  })

  it('a later anchor than an honest older package is reported, not failed', async () => {
    const db = openDb(f.dir)
    const pub = await grow(db, f.dir, f.witness, 2)
    const pkg = join(f.dir, 'p.tar.gz')
    await exportEvidence({db, dataDir: f.dir, out: pkg})
    await new Promise((r) => setTimeout(r, 5))
    await grow(db, f.dir, f.witness, 1, 'B')
    const r = await verifyPackage(pkg, {publicKey: pub, anchors: await anchorsOf(f.witness)})
    assert.equal(r.ok, true, JSON.stringify(r.failures))
    assert.ok(r.anchors!.some((a) => a.result === 'later' && a.tree_size === 24))
    assert.ok(r.notes.some((n) => /newer than this package/.test(n)))
    db.close()
  })
})
