// Every kind of tampering is detected and the right record is named.
import assert from 'node:assert/strict'
import type Database from 'better-sqlite3'
import {createHash, generateKeyPairSync} from 'node:crypto'
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseCsv} from '../../../src/audit/csv.js'
import {exportEvidence, FILES} from '../../../src/audit/export.js'
import {fingerprintOf, signManifest, signTreeHead, type SignedTreeHead} from '../../../src/audit/keys.js'
import {AuditLog} from '../../../src/audit/log.js'
import {readTarGz, TarGzWriter} from '../../../src/audit/tar.js'
import {verifyLive, verifyPackage} from '../../../src/audit/verify.js'
import {alice, bob, openDb, sampleEvents, tempDir} from './_helpers.js'

type Files = Map<string, Buffer>

async function unpack(file: string): Promise<{root: string; files: Files}> {
  const files: Files = new Map()
  let root = ''
  await readTarGz(file, (name) => {
    root = name.slice(0, name.indexOf('/'))
    const parts: Buffer[] = []
    return {data: (c) => parts.push(Buffer.from(c)), end: () => files.set(name.slice(root.length + 1), Buffer.concat(parts))}
  })
  return {root, files}
}

async function repack(pkg: {root: string; files: Files}, out: string): Promise<string> {
  const tar = new TarGzWriter(out)
  for (const [name, data] of pkg.files) await tar.addBuffer(`${pkg.root}/${name}`, data)
  await tar.finish()
  return out
}

function lines(b: Buffer): string[] {
  return b.toString('utf8').split('\n').filter(Boolean)
}

function setLines(files: Files, ls: string[]): void {
  files.set(FILES.events, Buffer.from(ls.join('\n') + '\n'))
}

describe('audit evidence: tamper detection', function () {
  let t: ReturnType<typeof tempDir>
  let db: Database.Database
  let pkgFile: string
  let pub: string
  let n = 0
  const out = () => join(t.dir, `tampered-${++n}.tar.gz`)

  before(async () => {
    t = tempDir()
    db = openDb(t.dir)
    const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 5, ms: 0}})
    for (let s = 0; s < 3; s++) for (const e of sampleEvents(`ses_${'ABC'[s].repeat(12)}`, s === 1 ? bob : alice, s === 2 ? 'stage-db' : 'prod-db')) await log.append(e)
    await log.close()
    pub = log.publicKeyPem()
    pkgFile = join(t.dir, 'evidence.tar.gz')
    const sum = await exportEvidence({db, dataDir: t.dir, out: pkgFile})
    assert.equal(sum.events, 24)
  })
  after(() => {
    db.close()
    t.cleanup()
  })

  it('an untouched package verifies, against the pinned key and (saying so) against its own key', async () => {
    const pinned = await verifyPackage(pkgFile, {publicKey: pub})
    assert.equal(pinned.ok, true, JSON.stringify(pinned.failures))
    assert.equal(pinned.keyTrust, 'pinned')
    assert.equal(pinned.events, 24)
    assert.ok(pinned.checkpoints >= 4, 'earlier checkpoints are checked for consistency')
    const own = await verifyPackage(pkgFile)
    assert.equal(own.ok, true)
    assert.equal(own.keyTrust, 'package')
    assert.match(own.notes.join('\n'), /included in the package/)
  })

  it('reports are valid CSV and JSONL that match the events', async () => {
    const {files} = await unpack(pkgFile)
    const approvals = parseCsv(files.get('reports/approvals.csv')!.toString('utf8'))
    assert.deepEqual(approvals[0].slice(0, 4), ['seq', 'time', 'approval_id', 'event'])
    assert.equal(approvals.length, 1 + 6)
    const decided = approvals.find((r) => r[3] === 'approved')!
    assert.equal(decided[5], 'bob <bob@example.com>')
    assert.equal(decided[10], 'ok, checked')
    const requested = approvals.find((r) => r[3] === 'requested')!
    assert.equal(requested[10], 'ticket OPS-1, "urgent"')
    const log = parseCsv(files.get('reports/session-log.csv')!.toString('utf8'))
    const cmd = log.find((r) => r[10]?.startsWith('SELECT id'))!
    assert.equal(cmd[10], 'SELECT id, email FROM users WHERE note = \'a,b "c"\nd\'')
    assert.ok(log.every((r) => r.length === log[0].length))
    const masking = lines(files.get('reports/masking.jsonl')!).map((l) => JSON.parse(l))
    assert.deepEqual(masking.slice(0, 2).map((m) => [m.column, m.entity, m.count]), [['users.email', null, 3], [null, 'phone', 1]])
    const summary = files.get('summary.md')!.toString('utf8')
    for (const c of ['A.9.2', 'A.12.4.1', 'A.12.4.2', 'A.12.4.3', 'A.14.2.5', 'A.5.15', 'A.8.2', 'A.8.11', 'A.8.15', 'A.8.16']) assert.ok(summary.includes(c), c)
    const manifest = JSON.parse(files.get('manifest.json')!.toString('utf8'))
    for (const f of manifest.files) assert.equal(createHash('sha256').update(files.get(f.path)!).digest('hex'), f.sha256, f.path)
  })

  it('a changed field names the changed event', async () => {
    const pkg = await unpack(pkgFile)
    const ls = lines(pkg.files.get(FILES.events)!)
    ls[9] = ls[9].replace('SELECT id, email', 'SELECT id, phone')
    setLines(pkg.files, ls)
    const r = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r.ok, false)
    assert.equal(r.first!.record, 'event seq 10')
    assert.match(r.first!.reason, /changed after it was written/)
    assert.ok(r.failures.some((f) => f.record === 'file events.jsonl'), 'the manifest hash fails too')
  })

  it('a deleted event is named as missing', async () => {
    const pkg = await unpack(pkgFile)
    const ls = lines(pkg.files.get(FILES.events)!)
    ls.splice(3, 1)
    setLines(pkg.files, ls)
    const r = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r.first!.record, 'event seq 4')
    assert.match(r.first!.reason, /missing.*deleted/)
  })

  it('two swapped events are named', async () => {
    const pkg = await unpack(pkgFile)
    const ls = lines(pkg.files.get(FILES.events)!)
    ;[ls[5], ls[6]] = [ls[6], ls[5]]
    setLines(pkg.files, ls)
    const r = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r.first!.record, 'event seq 6')
    assert.match(r.first!.reason, /reordered/)
  })

  it('a truncated log names the first missing event', async () => {
    const pkg = await unpack(pkgFile)
    setLines(pkg.files, lines(pkg.files.get(FILES.events)!).slice(0, 20))
    const r = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r.first!.record, 'event seq 21')
    assert.match(r.first!.reason, /truncated/)
  })

  it('an inserted event is named', async () => {
    const pkg = await unpack(pkgFile)
    const ls = lines(pkg.files.get(FILES.events)!)
    // A forged event that links correctly to seq 11 and claims seq 12.
    const prev = createHash('sha256').update(ls[10]).digest('hex')
    const forged = JSON.stringify({...JSON.parse(ls[11]), prev_hash: prev, data: {text: 'SELECT 1', decision: 'allow', statement_id: 'x'}, kind: 'statement'})
    ls.splice(11, 0, forged)
    setLines(pkg.files, ls)
    const r = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r.first!.record, 'event seq 12')
    assert.match(r.first!.reason, /inserted/)
  })

  it('a replaced signature names the signed tree head', async () => {
    const pkg = await unpack(pkgFile)
    const sth = JSON.parse(pkg.files.get(FILES.treeHead)!.toString()) as SignedTreeHead
    const other = generateKeyPairSync('ed25519').privateKey
    const {createPublicKey} = await import('node:crypto')
    const forged = signTreeHead(sth, {privateKey: other, publicKey: createPublicKey(other), publicPem: '', fingerprint: sth.key_fingerprint, source: 'x'})
    pkg.files.set(FILES.treeHead, Buffer.from(JSON.stringify({...sth, signature: forged.signature})))
    const r = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r.first!.record, `signed tree head (size ${sth.tree_size})`)
    assert.match(r.first!.reason, /signature does not verify/)
  })

  it('a swapped public key: caught by the pinned key even when everything is re-signed; caught by signatures otherwise', async () => {
    const pkg = await unpack(pkgFile)
    const {privateKey, publicKey} = generateKeyPairSync('ed25519')
    const evil = {privateKey, publicKey, publicPem: publicKey.export({type: 'spki', format: 'pem'}).toString(), fingerprint: fingerprintOf(publicKey), source: 'x'}
    // 1. Only the key file swapped.
    pkg.files.set(FILES.publicKey, Buffer.from(evil.publicPem))
    pkg.files.set(FILES.fingerprint, Buffer.from(evil.fingerprint + '\n'))
    const r1 = await verifyPackage(await repack(pkg, out()))
    assert.equal(r1.ok, false)
    assert.match(r1.first!.record, /^signed tree head/)
    // 2. A full forgery: key swapped, tree head, checkpoints and manifest re-signed with the new key.
    const sth = JSON.parse(pkg.files.get(FILES.treeHead)!.toString()) as SignedTreeHead
    const {v: _v, signature: _s, key_fingerprint: _k, ...head} = sth
    pkg.files.set(FILES.treeHead, Buffer.from(JSON.stringify(signTreeHead(head, evil))))
    const cps = lines(pkg.files.get(FILES.checkpoints)!).map((l) => {
      const {v: _a, signature: _b, key_fingerprint: _c, ...h} = JSON.parse(l) as SignedTreeHead
      return JSON.stringify(signTreeHead(h, evil))
    })
    pkg.files.set(FILES.checkpoints, Buffer.from(cps.join('\n') + '\n'))
    const manifest = JSON.parse(pkg.files.get(FILES.manifest)!.toString())
    manifest.tree_head.key_fingerprint = evil.fingerprint
    for (const f of manifest.files) f.sha256 = createHash('sha256').update(pkg.files.get(f.path)!).digest('hex')
    const mbuf = Buffer.from(JSON.stringify(manifest, null, 2))
    pkg.files.set(FILES.manifest, mbuf)
    pkg.files.set(FILES.manifestSig, Buffer.from(signManifest(mbuf, evil)))
    const forged = await repack(pkg, out())
    const unpinned = await verifyPackage(forged)
    assert.equal(unpinned.keyTrust, 'package', 'without a pin the verifier says it trusted the included key')
    const pinned = await verifyPackage(forged, {publicKey: pub})
    assert.equal(pinned.ok, false)
    assert.equal(pinned.first!.record, 'file keys/audit-public.pem')
    assert.match(pinned.first!.reason, /not the pinned key/)
  })

  it('a package file edited after export is named, even when the manifest entry is updated too', async () => {
    const pkg = await unpack(pkgFile)
    const csv = pkg.files.get('reports/approvals.csv')!.toString().replace('ok, checked', 'ok, checked twice')
    pkg.files.set('reports/approvals.csv', Buffer.from(csv))
    const r1 = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r1.first!.record, 'file reports/approvals.csv')
    assert.match(r1.first!.reason, /edited after export/)
    const manifest = JSON.parse(pkg.files.get(FILES.manifest)!.toString())
    const entry = manifest.files.find((f: {path: string}) => f.path === 'reports/approvals.csv')
    entry.sha256 = createHash('sha256').update(csv).digest('hex')
    entry.bytes = Buffer.byteLength(csv)
    pkg.files.set(FILES.manifest, Buffer.from(JSON.stringify(manifest, null, 2)))
    const r2 = await verifyPackage(await repack(pkg, out()), {publicKey: pub})
    assert.equal(r2.ok, false)
    assert.equal(r2.first!.record, 'file manifest.json')
    assert.ok(r2.failures.some((f) => f.record === 'file reports/approvals.csv' && /signed events/.test(f.reason)))
  })

  it('a truncated archive is reported', async () => {
    const buf = readFileSync(pkgFile)
    const cut = out()
    writeFileSync(cut, buf.subarray(0, Math.floor(buf.length / 2)))
    const r = await verifyPackage(cut, {publicKey: pub})
    assert.equal(r.ok, false)
    assert.equal(r.first!.record, 'package')
  })

  it('filters keep the range complete: other users’ events become leaf hashes; consistency with an earlier tree head', async () => {
    const first = JSON.parse((await unpack(pkgFile)).files.get(FILES.treeHead)!.toString()) as SignedTreeHead
    const log = AuditLog.open({db, dataDir: t.dir})
    for (const e of sampleEvents('ses_DDDDDDDDDDDD', bob)) await log.append(e)
    await log.close()
    const filtered = join(t.dir, 'bob.tar.gz')
    const sum = await exportEvidence({db, dataDir: t.dir, out: filtered, user: 'bob@example.com', from: '2024-05-01T00:00:00Z'})
    assert.equal(sum.events, 8 + 8 + 2, "bob's sessions plus the approvals bob decided in alice's sessions")
    assert.equal(sum.redacted, 32 - 18)
    const {files} = await unpack(filtered)
    const full = lines(files.get(FILES.events)!).map((l) => JSON.parse(l)).filter((e) => !e.redacted)
    assert.ok(full.every((e) => e.actor.name === 'bob'), "alice's own events appear only as leaf hashes")
    const r = await verifyPackage(filtered, {publicKey: pub, previous: first})
    assert.equal(r.ok, true, JSON.stringify(r.failures))
    assert.ok(r.checks.some((c) => c.name === 'previous' && c.ok))
    // A forged "earlier" head with a different root is not consistent.
    const bad = {...first, root_hash: '00'.repeat(32)}
    const r2 = await verifyPackage(filtered, {publicKey: pub, previous: bad})
    assert.equal(r2.first!.record, `earlier tree head (size ${first.tree_size})`)
  })

  it('live store: a changed, deleted or swapped event and a truncated log are named', () => {
    const check = (mutate: (d: Database.Database) => void, record: string, reason: RegExp) => {
      const c = tempDir()
      try {
        db.pragma('wal_checkpoint(TRUNCATE)')
        copyFileSync(join(t.dir, 'hoop.db'), join(c.dir, 'hoop.db'))
        const copy = openDb(c.dir)
        assert.equal(verifyLive(copy).ok, true)
        mutate(copy)
        const r = verifyLive(copy)
        copy.close()
        assert.equal(r.ok, false)
        assert.equal(r.first!.record, record)
        assert.match(r.first!.reason, reason)
      } finally {
        c.cleanup()
      }
    }
    check((d) => d.prepare(`UPDATE audit_events SET body = replace(body, '"time":"2', '"time":"1') WHERE seq = 7`).run(), 'event seq 7', /changed/)
    // The statement text is the event's payload, kept apart and committed to by payload_hash.
    check((d) => d.prepare("UPDATE audit_events SET payload = replace(payload, 'DROP TABLE', 'DROP VIEW') WHERE seq = 7").run(), 'event seq 7', /payload was changed/)
    check((d) => d.prepare('UPDATE audit_events SET payload = NULL WHERE seq = 7').run(), 'event seq 7', /removed without a record/)
    check((d) => d.prepare('DELETE FROM audit_events WHERE seq = 5').run(), 'event seq 5', /deleted/)
    check((d) => {
      const a = d.prepare('SELECT body, hash FROM audit_events WHERE seq = 3').get() as {body: string; hash: string}
      const b = d.prepare('SELECT body, hash FROM audit_events WHERE seq = 4').get() as {body: string; hash: string}
      d.prepare('UPDATE audit_events SET body = ?, hash = ? WHERE seq = 3').run(b.body, b.hash)
      d.prepare('UPDATE audit_events SET body = ?, hash = ? WHERE seq = 4').run(a.body, a.hash)
    }, 'event seq 3', /swapped/)
    check((d) => d.prepare('DELETE FROM audit_events WHERE seq > 30').run(), 'event seq 31', /truncated/)
    check((d) => d.prepare("UPDATE audit_checkpoints SET signature = 'AAAA' WHERE tree_size = 5").run(), 'checkpoint size 5', /signature/)
  })
})
