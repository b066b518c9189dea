// The default durability makes each group durable with an fdatasync of the `-wal` file off the
// event loop (log.ts, syncGroups): acknowledgements wait for it and stay in order while the next
// groups gather (and a large one is written), signed heads cover durable events only, and a failed fdatasync fails the
// log closed. The fdatasync is held or failed through the `syncWal` seam (a real disk cannot be
// made to fail on demand here); the store, its WAL and the real fdatasync are used otherwise.
import assert from 'node:assert/strict'
import {fdatasync} from 'node:fs'
import {AuditLog} from '../../../src/audit/log.js'
import {verifyLive} from '../../../src/audit/verify.js'
import type {HoopError} from '../../../src/shared/errors.js'
import {openDb, sampleEvents, tempDir} from './_helpers.js'

type Done = (err: NodeJS.ErrnoException | null) => void

/** An fdatasync that waits until the test lets it run (or fail). */
function heldSync() {
  const calls: {fd: number; done: Done}[] = []
  return {
    calls,
    syncWal: (fd: number, done: Done) => void calls.push({fd, done}),
    release: (i: number) => fdatasync(calls[i].fd, calls[i].done),
    fail: (i: number) => calls[i].done(Object.assign(new Error('EIO: i/o error, fdatasync'), {code: 'EIO'})),
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return
    await new Promise((r) => setImmediate(r))
  }
  assert.fail(`never happened: ${what}`)
}

describe('audit log: durable without blocking the event loop', () => {
  let t: ReturnType<typeof tempDir>
  beforeEach(() => (t = tempDir()))
  afterEach(() => t.cleanup())

  /** A log whose fdatasyncs are held, with its first event appended and that event's fdatasync started. */
  async function started() {
    const db = openDb(t.dir)
    const sync = heldSync()
    const log = AuditLog.open({db, dataDir: t.dir, syncWal: sync.syncWal})
    const acked: number[] = []
    const ev = sampleEvents()
    const append = (e: (typeof ev)[number]) => log.append(e).then((a) => acked.push(a.seq))
    const first = append(ev[0])
    await until(() => sync.calls.length === 1, 'the first group is written and its fdatasync starts')
    const stored = () => (db.prepare('SELECT count(*) AS n FROM audit_events').get() as {n: number}).n
    return {db, sync, log, acked, ev, append, first, stored}
  }

  /** Closes the log (its final fdatasync, number `n`, released) and checks the store. */
  async function closeAndVerify({db, sync, log}: Awaited<ReturnType<typeof started>>, n: number): Promise<void> {
    const closing = log.close()
    await until(() => sync.calls.length === n + 1, 'close makes its final checkpoint durable')
    sync.release(n)
    await closing
    assert.equal(verifyLive(db).ok, true)
    db.close()
  }

  it('acknowledges a group only after its fdatasync, in order; appends made meanwhile form the next group', async () => {
    const h = await started()
    const {sync, log, acked, ev, append, first, stored} = h
    assert.equal(stored(), 1, 'the group is in the store (written to the OS)')
    assert.equal(acked.length, 0, 'but not acknowledged before its fdatasync returns')
    assert.equal(log.size, 0, 'nor counted as durable')

    // A few appends made while the fdatasync is in flight wait for it, then go as one group.
    const second = append(ev[1])
    const third = append(ev[2])
    await new Promise((r) => setImmediate(r))
    await new Promise((r) => setImmediate(r))
    assert.equal(sync.calls.length, 1, 'one fdatasync in flight at a time')
    assert.equal(log.checkpoint().tree_size, 0, 'a signed head covers durable events only')

    sync.release(0)
    await first
    assert.deepEqual(acked, [1], 'the first fdatasync acknowledges the group it covered, not the later ones')
    assert.equal(stored(), 3, 'the appends gathered meanwhile are written when it returns')
    await until(() => sync.calls.length === 2, 'the next fdatasync covers them')
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(acked, [1])
    sync.release(1)
    await Promise.all([second, third])
    assert.deepEqual(acked, [1, 2, 3], 'acknowledgements in chain order')
    assert.equal(log.size, 3)
    assert.equal(log.checkpoint().tree_size, 3)
    await closeAndVerify(h, 2)
  })

  it('pipelining: many appends made while an fdatasync is in flight are written at once, acknowledged after the next one', async () => {
    const h = await started()
    const {sync, acked, ev, append, first, stored} = h
    const many = Array.from({length: 600}, (_, i) => append(ev[i % ev.length]))
    await until(() => stored() === 601, 'the large group is written while the first fdatasync is in flight')
    assert.equal(acked.length, 0)
    assert.equal(sync.calls.length, 1)
    sync.release(0)
    await first
    await until(() => sync.calls.length === 2, 'the next fdatasync starts')
    assert.deepEqual(acked, [1])
    sync.release(1)
    await Promise.all(many)
    assert.deepEqual(
      acked,
      Array.from({length: 601}, (_, i) => i + 1),
      'in chain order',
    )
    await closeAndVerify(h, 2)
  })

  it('a failed fdatasync refuses the groups it covered and every later append (fail closed); the store stays verifiable', async () => {
    const db = openDb(t.dir)
    const sync = heldSync()
    const log = AuditLog.open({db, dataDir: t.dir, syncWal: sync.syncWal})
    const ev = sampleEvents()
    const ok = log.append(ev[0])
    await until(() => sync.calls.length === 1, 'the first fdatasync starts')
    sync.release(0)
    assert.equal((await ok).seq, 1)

    const lost = log.append(ev[1])
    await until(() => sync.calls.length === 2, 'the second fdatasync starts')
    const waiting = log.append(ev[2]) // appended while the failing fdatasync is in flight
    sync.fail(1)
    const refused = (err: HoopError) => err.code === 'AUDIT_UNAVAILABLE' && /fdatasync/.test(err.message) && /EIO/.test(err.message)
    await assert.rejects(lost, refused)
    await assert.rejects(waiting, refused, 'an append made while the failed fdatasync ran is refused too')
    await assert.rejects(log.append(ev[3]), refused, 'every later append is refused')
    assert.equal(log.accepts(), false)
    assert.equal(log.unavailable?.code, 'AUDIT_UNAVAILABLE')
    assert.equal(log.size, 1, 'the durable size stays at the last acknowledged event')
    assert.throws(() => log.checkpoint(), refused, 'no head is signed over events that may be lost')
    await log.close()
    assert.equal(sync.calls.length, 2, 'no fdatasync is retried after a failure')
    // Nothing was lost here (no power loss): the store verifies, and a restarted log continues it.
    assert.equal(verifyLive(db).ok, true)
    const again = AuditLog.open({db, dataDir: t.dir})
    // It holds the refused event whose fdatasync failed (written to the OS); the one gathered
    // meanwhile was never written.
    assert.equal((await again.append(ev[4])).seq, 3)
    await again.close()
    db.close()
  })

  it('durability os acknowledges at the commit, without an fdatasync', async () => {
    const db = openDb(t.dir)
    const sync = heldSync()
    const log = AuditLog.open({db, dataDir: t.dir, durability: 'os', syncWal: sync.syncWal})
    const all = await Promise.all(sampleEvents().map((e) => log.append(e)))
    assert.deepEqual(
      all.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6, 7, 8],
    )
    await log.close()
    assert.equal(sync.calls.length, 0)
    db.close()
  })
})
