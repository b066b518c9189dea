// Retention that keeps the proof: payloads expire by policy or are erased on request, legal holds
// stop that, and the chain, proofs and signed heads still verify, with each removal named.
import assert from 'node:assert/strict'
import type Database from 'better-sqlite3'
import {createHash} from 'node:crypto'
import {join} from 'node:path'
import {canonicalize} from '../../../src/audit/canonical.js'
import {events} from '../../../src/audit/events.js'
import {exportEvidence, FILES} from '../../../src/audit/export.js'
import {AuditLog} from '../../../src/audit/log.js'
import {leafHash} from '../../../src/audit/merkle.js'
import {erasePayloads, setHold} from '../../../src/audit/retention.js'
import {readTarGz} from '../../../src/audit/tar.js'
import {verifyLive, verifyPackage} from '../../../src/audit/verify.js'
import {alice, bob, openDb, sampleEvents, tempDir} from './_helpers.js'

const NOW = new Date('2024-07-01T00:00:00Z')
const POLICY = {payloads: {statement: 30, default: 365}}

async function packageFiles(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  await readTarGz(file, (name) => {
    const parts: Buffer[] = []
    return {data: (c: Buffer) => parts.push(c), end: () => out.set(name.split('/').slice(1).join('/'), Buffer.concat(parts).toString('utf8'))}
  })
  return out
}

describe('audit retention keeps the proof', () => {
  let t: {dir: string; cleanup: () => void}
  let db: Database.Database
  let log: AuditLog
  beforeEach(async () => {
    t = tempDir()
    db = openDb(t.dir)
    log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
    for (const e of [...sampleEvents('ses_AAAAAAAAAAAA'), ...sampleEvents('ses_BBBBBBBBBBBB', bob, 'billing-db')]) await log.append(e)
  })
  afterEach(async () => {
    await log.close().catch(() => {})
    db.close()
    t.cleanup()
  })

  const settle = async () => {
    await log.absorbPendingNow()
    log.checkpoint()
  }

  it('v2 events commit to their payload by hash: the text is not in the hashed body', () => {
    const row = db.prepare("SELECT body, payload FROM audit_events WHERE kind = 'statement' ORDER BY seq LIMIT 1").get() as {body: string; payload: string}
    const e = JSON.parse(row.body) as {v: number; payload_hash: string; data: Record<string, unknown>}
    assert.equal(e.v, 2)
    assert.equal(e.data.text, undefined)
    assert.match(row.payload, /SELECT id, email FROM users/)
    assert.equal(createHash('sha256').update(row.payload).digest('hex'), e.payload_hash)
  })

  it('expired payloads leave the chain, proofs and heads verifying, live and in a package, and are named', async () => {
    const r0 = await log.runRetention(POLICY, NOW)
    assert.equal(r0.removed, 4) // two statements per session; approvals are kept for 365 days
    await settle()
    const live = verifyLive(db)
    assert.equal(live.ok, true, JSON.stringify(live.failures))
    assert.equal(live.payloads!.expired, 4)
    const seq = (db.prepare("SELECT seq FROM audit_events WHERE kind = 'audit.retention'").get() as {seq: number}).seq
    assert.ok(live.notes.some((n) => n.includes(`payload expired by retention on 2024-07-01 (audit.retention event seq ${seq})`)), live.notes.join('\n'))
    assert.equal((db.prepare("SELECT count(*) AS n FROM audit_events WHERE kind = 'statement' AND payload IS NOT NULL").get() as {n: number}).n, 0)

    const out = join(t.dir, 'p.tar.gz')
    await exportEvidence({db, dataDir: t.dir, out})
    const files = await packageFiles(out)
    assert.doesNotMatch(files.get(FILES.events)!, /DROP TABLE/)
    assert.match(files.get(FILES.events)!, /"~payload":\{"at":"2024-07-01T00:00:00.000Z","by_seq":\d+,"removed":"expired"\}/)
    assert.match(files.get(FILES.events)!, /ticket OPS-1/) // approval justifications are kept
    const summary = files.get(FILES.summary)!
    assert.match(summary, /payloads expired by retention: 4; erased on request: 0/)
    assert.match(summary, /A\.18\.1\.3 Protection of records \| A\.8\.10 Information deletion/)
    assert.match(summary, /## Anchors/)
    const pkg = await verifyPackage(out, {publicKey: log.publicKeyPem()})
    assert.equal(pkg.ok, true, JSON.stringify(pkg.failures))
    assert.equal(pkg.payloads!.expired, 4)
    assert.ok(pkg.notes.some((n) => n.includes('payload expired by retention on 2024-07-01')), pkg.notes.join('\n'))
  })

  it('an erased session: payloads gone from the store and the package, the erasure named, verify OK', async () => {
    const r = erasePayloads(db, {scope: 'session', target: 'ses_BBBBBBBBBBBB', reason: 'GDPR art. 17 request #12', operator: 'dpo', now: NOW})
    assert.equal(r.removed, 4) // two statements, the approval's request and decision (results without an error have none)
    await settle()
    assert.equal((db.prepare("SELECT count(*) AS n FROM audit_events WHERE session = 'ses_BBBBBBBBBBBB' AND payload IS NOT NULL").get() as {n: number}).n, 0)
    const erasure = db.prepare("SELECT seq, body FROM audit_events WHERE kind = 'audit.erasure'").get() as {seq: number; body: string}
    assert.match(erasure.body, /GDPR art\. 17 request #12/)
    const live = verifyLive(db)
    assert.equal(live.ok, true, JSON.stringify(live.failures))
    assert.equal(live.payloads!.erased, r.removed)
    assert.ok(live.notes.some((n) => n.includes(`payload erased on 2024-07-01 (event seq ${erasure.seq})`)), live.notes.join('\n'))

    const out = join(t.dir, 'p.tar.gz')
    await exportEvidence({db, dataDir: t.dir, out})
    const files = await packageFiles(out)
    const lines = files.get(FILES.events)!.split('\n').filter((l) => l.includes('ses_BBBBBBBBBBBB'))
    assert.ok(lines.length > 0)
    for (const l of lines) assert.doesNotMatch(l, /DROP TABLE|SELECT id|OPS-1/)
    assert.match(files.get(FILES.events)!.split('\n').find((l) => l.includes('ses_AAAAAAAAAAAA') && l.includes('"statement"'))!, /SELECT id, email/)
    assert.match(files.get(FILES.summary)!, /erased on request: session `ses\\_BBBBBBBBBBBB`/)
    const pkg = await verifyPackage(out, {publicKey: log.publicKeyPem()})
    assert.equal(pkg.ok, true, JSON.stringify(pkg.failures))
    assert.ok(pkg.notes.some((n) => n.includes(`payload erased on 2024-07-01 (event seq ${erasure.seq})`)), pkg.notes.join('\n'))
  })

  it('a payload removed without a record is tampering, named by its event', async () => {
    const seq = (db.prepare("SELECT seq FROM audit_events WHERE kind = 'statement' ORDER BY seq LIMIT 1").get() as {seq: number}).seq
    db.prepare('UPDATE audit_events SET payload = NULL WHERE seq = ?').run(seq)
    const live = verifyLive(db)
    assert.equal(live.ok, false)
    assert.equal(live.first!.record, `event seq ${seq}`)
    assert.match(live.first!.reason, /removed without a record/)
    const out = join(t.dir, 'p.tar.gz')
    await exportEvidence({db, dataDir: t.dir, out})
    const pkg = await verifyPackage(out)
    assert.equal(pkg.ok, false)
    assert.equal(pkg.first!.record, `event seq ${seq}`)
  })

  it('an erasure record cannot cover another session: a forged removal is tampering', async () => {
    erasePayloads(db, {scope: 'session', target: 'ses_BBBBBBBBBBBB', reason: 'request', operator: 'dpo', now: NOW})
    await settle()
    const ref = (db.prepare('SELECT ref FROM audit_payload_removals LIMIT 1').get() as {ref: string}).ref
    const seq = (db.prepare("SELECT seq FROM audit_events WHERE kind = 'statement' AND session = 'ses_AAAAAAAAAAAA' ORDER BY seq LIMIT 1").get() as {seq: number}).seq
    db.prepare('UPDATE audit_events SET payload = NULL WHERE seq = ?').run(seq)
    db.prepare("INSERT INTO audit_payload_removals (seq, how, at, ref) VALUES (?, 'erased', ?, ?)").run(seq, NOW.toISOString(), ref)
    const live = verifyLive(db)
    assert.equal(live.ok, false)
    assert.match(live.first!.reason, /does not cover its removal/)
  })

  it('a legal hold (store or config) keeps payloads past their expiry; release lets them expire', async () => {
    setHold(db, {action: 'place', scope: 'connection', target: 'prod-db', reason: 'litigation 2024-17', operator: 'legal'})
    const r = await log.runRetention({...POLICY, holds: [{user: 'u-bob'}]}, NOW)
    assert.equal(r.removed, 0)
    const r2 = await log.runRetention(POLICY, NOW)
    assert.equal(r2.removed, 2) // bob's, on billing-db; prod-db stays held
    assert.equal((db.prepare("SELECT count(*) AS n FROM audit_events WHERE connection = 'prod-db' AND kind = 'statement' AND payload IS NOT NULL").get() as {n: number}).n, 2)
    setHold(db, {action: 'release', scope: 'connection', target: 'prod-db', reason: 'case closed', operator: 'legal'})
    assert.equal((await log.runRetention(POLICY, NOW)).removed, 2)
    await settle()
    assert.equal((db.prepare("SELECT count(*) AS n FROM audit_events WHERE kind = 'audit.hold'").get() as {n: number}).n, 2)
    assert.equal(verifyLive(db).ok, true)
    const out = join(t.dir, 'p.tar.gz')
    await exportEvidence({db, dataDir: t.dir, out})
    const summary = (await packageFiles(out)).get(FILES.summary)!
    assert.match(summary, /placed \| connection `prod-db` \| litigation 2024-17/)
    assert.equal((await verifyPackage(out)).ok, true)
  })
})

describe('audit retention: old-format (v1) stores', () => {
  it('a store of v1 events (payload inline) still verifies, live and exported, next to new v2 events; retention leaves v1 alone', async () => {
    const t = tempDir()
    const db = openDb(t.dir)
    try {
      // As the log wrote events before payloads were kept apart (no payload column yet).
      db.exec(`CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, session TEXT, subject TEXT, connection TEXT,
        hash TEXT NOT NULL, prev_hash TEXT NOT NULL, leaf BLOB NOT NULL, body TEXT NOT NULL)`)
      const insert = db.prepare('INSERT INTO audit_events (seq, time, kind, session, subject, connection, hash, prev_hash, leaf, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      let prev = '0'.repeat(64)
      sampleEvents().forEach((e, i) => {
        const body = canonicalize({...e, v: 1, seq: i + 1, prev_hash: prev})
        const hash = createHash('sha256').update(body).digest('hex')
        insert.run(i + 1, e.time, e.kind, e.session ?? null, e.actor?.subject ?? null, e.connection ?? null, hash, prev, leafHash(body), body)
        prev = hash
      })
      const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 0, ms: 0}})
      await log.append(events.statement({session: 'ses_NEW000000000', identity: alice, connection: 'prod-db', statementId: 's9', text: 'SELECT 1', decision: 'allow'}))
      assert.equal((await log.runRetention({payloads: {default: 1}}, new Date('2030-01-01'))).removed, 1)
      await log.absorbPendingNow()
      log.checkpoint()
      const live = verifyLive(db)
      assert.equal(live.ok, true, JSON.stringify(live.failures))
      assert.equal(live.payloads!.expired, 1)
      const out = join(t.dir, 'p.tar.gz')
      await exportEvidence({db, dataDir: t.dir, out})
      assert.match((await packageFiles(out)).get(FILES.events)!, /DROP TABLE users/)
      const pkg = await verifyPackage(out, {publicKey: log.publicKeyPem()})
      assert.equal(pkg.ok, true, JSON.stringify(pkg.failures))
      await log.close()
    } finally {
      db.close()
      t.cleanup()
    }
  })
})
