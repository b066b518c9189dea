// A wait on one replica must not miss a decision made on another while the wait's own first read is
// in flight: the other replica's signal can arrive before that read returns (seen in CI: the wait
// then slept until its next periodic re-read).
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {ApprovalService} from '../../../src/approvals/index.js'
import {SqliteApprovalStore} from '../../../src/approvals/store-sqlite.js'
import type {Identity} from '../../../src/identity/types.js'
import type {ReviewDecision} from '../../../src/policy/index.js'

const alice: Identity = {kind: 'user', subject: 'alice-sub', name: 'alice', groups: ['eng']}
const bob: Identity = {kind: 'user', subject: 'bob-sub', name: 'bob', groups: ['dba']}
const review: ReviewDecision = {ruleId: 'r', approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 3600, scope: 'statement'}

describe('approval wait: a decision signalled during the first read', () => {
  let dir: string
  let db: Database.Database
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-approval-wait-'))
    db = new Database(join(dir, 'hoop.db'))
  })
  afterEach(() => {
    db.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('is seen at once, not at the next periodic re-read', async function () {
    this.timeout(20_000)
    // Replica B's store: once armed, its next read returns what it read (pending) only after
    // replica A has approved and B has heard the signal, which is what a slow round trip allows.
    let during: (() => Promise<void>) | undefined
    const storeB = new SqliteApprovalStore(db)
    const plainGet = storeB.get.bind(storeB)
    storeB.get = async (id: string) => {
      const rec = await plainGet(id)
      const hook = during
      during = undefined
      if (hook) await hook()
      return rec
    }
    const svcA = new ApprovalService(new SqliteApprovalStore(db), {recheckMs: 3_600_000})
    const svcB = new ApprovalService(storeB, {recheckMs: 3_600_000})
    const held = await svcB.resolve({identity: alice, connection: 'pg', statement: 'DELETE FROM t', review})
    assert.equal(held.status, 'pending')
    during = async () => {
      await svcA.approve(held.approval.id, bob, 'ok')
      svcB.changed(held.approval.id)
    }
    // B re-reads on its own once an hour, and its wait's deadline is an hour away: only the signal
    // heard during the first read can end the wait within the ten seconds given here.
    const stop = new AbortController()
    try {
      const woken = svcB.wait(held.approval.id, alice, 3_600_000, stop.signal)
      const asleep = new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), 10_000).unref())
      const rec = await Promise.race([woken, asleep])
      assert.equal(during, undefined, 'the decision happened during the first read')
      assert.notEqual(rec, 'still waiting', 'the wait missed the signal heard during its first read')
      assert.equal(rec !== 'still waiting' && rec.state, 'approved')
    } finally {
      stop.abort()
    }
  })
})
