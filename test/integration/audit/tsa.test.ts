// The RFC 3161 round trip against a real local TSA (openssl ts -reply behind an HTTP server): the
// gateway's log stamps each signed tree head, keeps the token in the store and the witness file,
// exports it in the package, and verify checks it (imprint, CMS signature, chain to the pinned TSA
// CA). openssl ts -verify agrees with every token.
import assert from 'node:assert/strict'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {readAnchorFiles} from '../../../src/audit/anchor-check.js'
import {headDigest} from '../../../src/audit/anchors.js'
import {exportEvidence} from '../../../src/audit/export.js'
import type {SignedTreeHead} from '../../../src/audit/keys.js'
import {AuditLog} from '../../../src/audit/log.js'
import {certificatesFromPem, verifyTimestampToken} from '../../../src/audit/tsa.js'
import {VERIFY_LIMITS, verifyLive, verifyPackage} from '../../../src/audit/verify.js'
import {openDb, sampleEvents, tempDir} from '../../unit/audit/_helpers.js'
import {type LocalTsa, opensslVerifies, startLocalTsa} from './_tsa.js'

interface WitnessLine {
  tree_head: SignedTreeHead
  timestamp?: {tsa: string; token: string; gen_time: string}
}

describe('audit anchors: RFC 3161 timestamps from a real local TSA (openssl)', function () {
  this.timeout(60_000)
  let tsa: LocalTsa
  let other: LocalTsa
  before(async () => {
    ;[tsa, other] = await Promise.all([startLocalTsa(), startLocalTsa({key: 'rsa', name: 'Other TSA'})])
  })
  after(async () => {
    await tsa?.close()
    await other?.close()
  })

  it('stamps each signed head; the token is stored, witnessed, exported and verified (and openssl agrees)', async () => {
    const t = tempDir()
    const db = openDb(t.dir)
    try {
      const witness = join(t.dir, 'witness', 'w.jsonl')
      const ca = certificatesFromPem(readFileSync(tsa.caFile, 'utf8'))
      const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 8, ms: 0}, anchors: {witness, timestamp: {url: tsa.url, trusted: ca}}})
      for (const e of [...sampleEvents('ses_AAAAAAAAAAAA'), ...sampleEvents('ses_BBBBBBBBBBBB')]) await log.append(e)
      await log.close()
      const pub = log.publicKeyPem()

      // Stored: a token per stamped head.
      const rows = db.prepare("SELECT tree_size, token, gen_time FROM audit_anchors WHERE kind = 'tsa' ORDER BY tree_size").all() as {tree_size: number; token: Buffer; gen_time: string}[]
      assert.ok(rows.length >= 1 && rows.at(-1)!.tree_size === 16, `stamped sizes: ${rows.map((r) => r.tree_size)}`)
      assert.ok(tsa.requests >= rows.length)

      // Witnessed: the last line carries the newest head with its token; openssl verifies it.
      const lines = readFileSync(witness, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as WitnessLine)
      const stamped = lines.filter((l) => l.timestamp)
      assert.ok(stamped.length >= 1)
      const last = lines.at(-1)!
      assert.equal(last.tree_head.tree_size, 16)
      assert.ok(last.timestamp, 'the newest head is witnessed with its token')
      for (const l of stamped) {
        const token = Buffer.from(l.timestamp!.token, 'base64')
        const digest = headDigest(l.tree_head)
        assert.equal(await opensslVerifies(tsa, token, digest.toString('hex')), true, 'openssl ts -verify accepts the token for the head')
        const check = verifyTimestampToken(token, {digest, trusted: ca})
        assert.ok(check.ok && check.chain === 'trusted' && check.info.genTime === l.timestamp!.gen_time)
        // The imprint is the head: the same token over another head is refused, by openssl too.
        const otherHead = {...l.tree_head, tree_size: l.tree_head.tree_size + 1}
        assert.equal(await opensslVerifies(tsa, token, headDigest(otherHead).toString('hex')), false)
      }

      // verify --live --anchor witness --tsa-ca: consistent and timestamped.
      const anchors = await readAnchorFiles([witness], VERIFY_LIMITS)
      const live = verifyLive(db, {publicKey: pub, anchors, tsaCa: ca})
      assert.equal(live.ok, true, JSON.stringify(live.failures))
      assert.equal(live.anchors![0].tree_size, 16)
      assert.ok(live.anchors![0].timestamped_at)
      assert.ok(!live.notes.some((n) => /timestamp token/.test(n)), 'the chain was pinned')
      // Without --tsa-ca the token is checked with the certificate it carries, and verify says so.
      const unpinned = verifyLive(db, {publicKey: pub, anchors})
      assert.equal(unpinned.ok, true)
      assert.ok(unpinned.notes.some((n) => /pin the TSA's CA with --tsa-ca/.test(n)))
      // Pinned to another TSA's CA, the token is refused.
      const wrongCa = verifyLive(db, {publicKey: pub, anchors, tsaCa: certificatesFromPem(readFileSync(other.caFile, 'utf8'))})
      assert.equal(wrongCa.ok, false)
      assert.match(wrongCa.first!.reason, /does not chain to a pinned TSA CA/)

      // The package carries the tokens and verifies them.
      const pkg = join(t.dir, 'p.tar.gz')
      await exportEvidence({db, dataDir: t.dir, out: pkg})
      const r = await verifyPackage(pkg, {publicKey: pub, tsaCa: ca})
      assert.equal(r.ok, true, JSON.stringify(r.failures))
      assert.ok(r.anchors!.some((a) => a.source.startsWith('anchors.jsonl') && a.timestamped_at))
    } finally {
      db.close()
      t.cleanup()
    }
  })

  it('a head and its token given as two --anchor files (JSON + DER); a token moved to another head is refused', async () => {
    const t = tempDir()
    const db = openDb(t.dir)
    try {
      const witness = join(t.dir, 'w.jsonl')
      const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 8, ms: 0}, anchors: {witness, timestamp: {url: tsa.url}}})
      for (const e of [...sampleEvents('ses_AAAAAAAAAAAA'), ...sampleEvents('ses_BBBBBBBBBBBB')]) await log.append(e)
      await log.close()
      const pub = log.publicKeyPem()
      const ca = certificatesFromPem(readFileSync(tsa.caFile, 'utf8'))
      const lines = readFileSync(witness, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as WitnessLine)
      const stamped = lines.filter((l) => l.timestamp).at(-1)!
      const head = join(t.dir, 'head.json')
      const token = join(t.dir, 'head.tsr')
      writeFileSync(head, JSON.stringify(stamped.tree_head, null, 2))
      writeFileSync(token, Buffer.from(stamped.timestamp!.token, 'base64'))
      const anchors = await readAnchorFiles([head, token], VERIFY_LIMITS)
      assert.deepEqual(anchors.problems, [])
      assert.ok(anchors.anchors[0].timestamp)
      const ok = verifyLive(db, {publicKey: pub, anchors, tsaCa: ca})
      assert.equal(ok.ok, true, JSON.stringify(ok.failures))
      assert.equal(ok.anchors![0].timestamped_at, stamped.timestamp!.gen_time)

      // The token of the newest head attached to the first one: its imprint names another head.
      const first = lines[0]
      assert.notEqual(first.tree_head.tree_size, stamped.tree_head.tree_size)
      const moved = join(t.dir, 'moved.json')
      writeFileSync(moved, JSON.stringify({tree_head: first.tree_head, timestamp: stamped.timestamp}))
      const bad = verifyLive(db, {publicKey: pub, anchors: await readAnchorFiles([moved], VERIFY_LIMITS), tsaCa: ca})
      assert.equal(bad.ok, false)
      assert.match(bad.first!.record, /^timestamp token of the anchor \(size 8\)/)
      assert.match(bad.first!.reason, /message imprint .* is not the SHA-256 of this tree head/)
    } finally {
      db.close()
      t.cleanup()
    }
  })

  it('a TSA that is down never holds up the log: the head is witnessed without a token, a warning logged', async () => {
    const t = tempDir()
    const db = openDb(t.dir)
    try {
      const witness = join(t.dir, 'w.jsonl')
      const warnings: string[] = []
      const logger = {debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {}, child() {
        return logger
      }}
      const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 8, ms: 0}, anchors: {witness, timestamp: {url: 'http://127.0.0.1:9/tsa', timeoutMs: 2000}}, logger})
      for (const e of sampleEvents()) await log.append(e)
      await log.close()
      const lines = readFileSync(witness, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as WitnessLine)
      assert.equal(lines.at(-1)!.tree_head.tree_size, 8)
      assert.ok(lines.every((l) => !l.timestamp))
      assert.ok(warnings.some((w) => /timestamp authority did not stamp/.test(w)))
    } finally {
      db.close()
      t.cleanup()
    }
  })
})
