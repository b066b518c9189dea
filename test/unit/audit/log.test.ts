import assert from 'node:assert/strict'
import {generateKeyPairSync} from 'node:crypto'
import {statSync} from 'node:fs'
import {join} from 'node:path'
import {events, scrubStatement} from '../../../src/audit/events.js'
import {verifyTreeHead} from '../../../src/audit/keys.js'
import {AuditLog, GENESIS_HASH} from '../../../src/audit/log.js'
import {verifyLive} from '../../../src/audit/verify.js'
import {HoopError} from '../../../src/shared/errors.js'
import {alice, openDb, sampleEvents, tempDir} from './_helpers.js'

describe('audit log writer', () => {
  let t: ReturnType<typeof tempDir>
  beforeEach(() => (t = tempDir()))
  afterEach(() => t.cleanup())

  it('group commit: 10,000 concurrent appends are all durable, chained in order, and verify', async () => {
    const db = openDb(t.dir)
    const log = AuditLog.open({db, dataDir: t.dir})
    const e = events.authFailure({method: 'bearer', reason: 'expired', clientAddress: '10.0.0.1'})
    const acks = await Promise.all(Array.from({length: 10_000}, () => log.append(e)))
    assert.deepEqual(acks.map((a) => a.seq), Array.from({length: 10_000}, (_, i) => i + 1))
    await log.close()
    // Read through a fresh connection: what was acknowledged is on disk.
    db.close()
    const db2 = openDb(t.dir)
    const rows = db2.prepare('SELECT seq, hash, prev_hash FROM audit_events ORDER BY seq').all() as {seq: number; hash: string; prev_hash: string}[]
    assert.equal(rows.length, 10_000)
    assert.equal(rows[0].prev_hash, GENESIS_HASH)
    for (let i = 1; i < rows.length; i++) assert.equal(rows[i].prev_hash, rows[i - 1].hash)
    assert.equal(acks[9_999].hash, rows[9_999].hash)
    const res = verifyLive(db2)
    assert.equal(res.ok, true, JSON.stringify(res.first))
    assert.equal(res.events, 10_000)
    db2.close()
  })

  it('keeps its signing key in the data dir with mode 0600 and signs checkpoints with it', async () => {
    const db = openDb(t.dir)
    const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 3, ms: 0}})
    for (const e of sampleEvents()) await log.append(e)
    assert.equal(statSync(join(t.dir, 'audit-signing.key')).mode & 0o777, 0o600)
    const cps = db.prepare('SELECT tree_size FROM audit_checkpoints ORDER BY tree_size').all() as {tree_size: number}[]
    assert.ok(cps.length >= 2, 'periodic checkpoints by event count')
    await log.close()
    const last = db.prepare('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1').get() as Record<string, string | number>
    assert.equal(last.tree_size, 8, 'final checkpoint on close covers everything')
    const {createPublicKey} = await import('node:crypto')
    assert.ok(verifyTreeHead({v: 1, ...last} as never, createPublicKey(log.publicKeyPem())))
    assert.match(log.fingerprint(), /^[0-9a-f]{64}$/)
    // Reopening continues the chain with the same key.
    const log2 = AuditLog.open({db, dataDir: t.dir})
    assert.equal(log2.fingerprint(), log.fingerprint())
    const next = await log2.append(sampleEvents()[0])
    assert.equal(next.seq, 9)
    await log2.close()
    assert.equal(verifyLive(db).ok, true)
    db.close()
  })

  it('takes a key from HOOP_AUDIT_SIGNING_KEY', async () => {
    const {privateKey, publicKey} = generateKeyPairSync('ed25519')
    process.env.HOOP_AUDIT_SIGNING_KEY = privateKey.export({type: 'pkcs8', format: 'pem'}).toString()
    try {
      const db = openDb(t.dir)
      const log = AuditLog.open({db, dataDir: t.dir})
      assert.equal(log.publicKeyPem(), publicKey.export({type: 'spki', format: 'pem'}).toString())
      await log.close()
      db.close()
    } finally {
      delete process.env.HOOP_AUDIT_SIGNING_KEY
    }
  })

  it('fails closed: when the store cannot write, the append rejects and nothing is acknowledged; then recovers', async () => {
    const db = openDb(t.dir)
    const log = AuditLog.open({db, dataDir: t.dir})
    await log.append(sampleEvents()[0])
    db.exec("CREATE TRIGGER audit_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    await assert.rejects(log.append(sampleEvents()[1]), (err: HoopError) => err.code === 'AUDIT_UNAVAILABLE' && /disk full/.test(err.message))
    db.exec('DROP TRIGGER audit_full')
    const ok = await log.append(sampleEvents()[2])
    assert.equal(ok.seq, 2, 'no gap for the refused event')
    // An event that cannot be encoded is refused alone; the rest of its group commits.
    const bad = events.statement({session: 's', identity: alice, connection: 'c', statementId: '9', text: 'x\ud800', decision: 'allow'})
    const [r1, r2] = await Promise.allSettled([log.append(bad), log.append(sampleEvents()[3])])
    assert.equal(r1.status, 'rejected')
    assert.equal(r2.status === 'fulfilled' && r2.value.seq, 3)
    await log.close()
    assert.equal(verifyLive(db).ok, true)
    await assert.rejects(log.append(sampleEvents()[0]), /closed/)
    db.close()
  })

  it('never stores inline credentials in statement text', () => {
    assert.equal(scrubStatement("ALTER ROLE bob WITH PASSWORD 'hunter2' VALID UNTIL 'infinity'").text, "ALTER ROLE bob WITH PASSWORD '[redacted]' VALID UNTIL 'infinity'")
    assert.equal(scrubStatement("CREATE USER 'x'@'%' IDENTIFIED BY 's3cr''et'").text, "CREATE USER 'x'@'%' IDENTIFIED BY '[redacted]'")
    const e = events.statement({session: 's', identity: alice, connection: 'c', statementId: '1', text: "select dblink('host=a password=abc', 'x')", decision: 'allow'})
    assert.doesNotMatch(JSON.stringify(e), /abc/)
  })
})
