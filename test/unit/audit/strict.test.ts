// The package reader is strict and bounded: only the regular files the manifest lists, each once,
// nothing after the end-of-archive marker, capped sizes, lines and time, and every malformed input
// a named failure. Regression tests for what a forger found (issue 14, item 1).
import assert from 'node:assert/strict'
import type Database from 'better-sqlite3'
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {lstatSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {gunzipSync, gzipSync} from 'node:zlib'
import {exportEvidence, FILES} from '../../../src/audit/export.js'
import {AuditLog} from '../../../src/audit/log.js'
import {BLOCK} from '../../../src/audit/tar.js'
import {LineSplitter, verifyPackage, type VerifyResult} from '../../../src/audit/verify.js'
import {bob, openDb, sampleEvents, tempDir} from './_helpers.js'
import {type Entry, find, readPackage, rootOf, tarBytes, writePackage} from './_tar.js'

function refused(r: VerifyResult, record: string | RegExp, reason: RegExp): void {
  assert.equal(r.ok, false, 'the package must not verify')
  if (typeof record === 'string') assert.equal(r.first!.record, record, JSON.stringify(r.first))
  else assert.match(r.first!.record, record)
  assert.match(r.first!.reason, reason)
}

function tarAvailable(): boolean {
  return spawnSync('tar', ['--version']).status === 0
}

/** Everything under `dir` but directories (files, links, ...), relative. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, {recursive: true, encoding: 'utf8'}).filter((p) => !lstatSync(join(dir, p)).isDirectory())
}

/** A pax extended header record: "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`
  let len = body.length + 1
  while (String(len).length + body.length !== len) len++
  return Buffer.from(`${len}${body}`)
}

describe('audit evidence: strict, bounded package reading', function () {
  let t: ReturnType<typeof tempDir>
  let db: Database.Database
  let pkgFile: string
  let pub: string
  let entries: Entry[]
  let root: string
  let n = 0
  const out = () => join(t.dir, `forged-${++n}.tar.gz`)
  const at = (rel: string) => `${root}/${rel}`
  /** The package's entries with the one named `rel` replaced by `by` (several entries, or none). */
  const replace = (rel: string, ...by: Entry[]): Entry[] => entries.flatMap((e) => (e.name === at(rel) ? by : [e]))

  before(async () => {
    t = tempDir()
    db = openDb(t.dir)
    const log = AuditLog.open({db, dataDir: t.dir, checkpointEvery: {events: 5, ms: 0}})
    for (let s = 0; s < 2; s++) for (const e of sampleEvents(`ses_${'AB'[s].repeat(12)}`, s === 1 ? bob : undefined)) await log.append(e)
    await log.close()
    pub = log.publicKeyPem()
    pkgFile = join(t.dir, 'evidence.tar.gz')
    await exportEvidence({db, dataDir: t.dir, out: pkgFile})
    entries = readPackage(pkgFile)
    root = rootOf(entries)
  })
  after(() => {
    db.close()
    t.cleanup()
  })

  it('an untouched package verifies, and tar -x extracts exactly the files it verified', async function () {
    const r = await verifyPackage(pkgFile, {publicKey: pub})
    assert.equal(r.ok, true, JSON.stringify(r.failures))
    assert.ok(r.checks.some((c) => c.name === 'archive' && c.ok))
    if (!tarAvailable()) this.skip()
    const dir = join(t.dir, 'extracted')
    spawnSync('mkdir', [dir])
    const x = spawnSync('tar', ['-xzf', pkgFile, '-C', dir], {encoding: 'utf8'})
    assert.equal(x.status, 0, x.stderr)
    const manifest = JSON.parse(find(entries, FILES.manifest).data.toString()) as {files: {path: string; sha256: string}[]}
    const extracted = filesUnder(dir).map((p) => relative(root, p)).sort()
    assert.deepEqual(extracted, [...manifest.files.map((f) => f.path), FILES.manifest, FILES.manifestSig].sort())
    for (const f of manifest.files) assert.equal(createHash('sha256').update(readFileSync(join(dir, root, f.path))).digest('hex'), f.sha256, f.path)
  })

  describe('entries: regular files the manifest lists, each once', function () {
    it('a symbolic link that replaces a report is refused by name (and tar -x would follow it)', async function () {
      const forged = writePackage(out(), [
        ...entries,
        // After the real report: tar -x replaces the file with a link to whatever the forger wants.
        {name: at('reports/approvals.csv'), data: Buffer.alloc(0), type: '2', linkname: '/tmp/forged-approvals.csv'},
      ])
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${at('reports/approvals.csv')}"`, /symbolic link \(tar type '2'\) to "\/tmp\/forged-approvals.csv": only regular files/)
      if (!tarAvailable()) return
      const dir = join(t.dir, `x-${n}`)
      spawnSync('mkdir', [dir])
      spawnSync('tar', ['-xzf', forged, '-C', dir])
      assert.equal(spawnSync('readlink', [join(dir, root, 'reports/approvals.csv')], {encoding: 'utf8'}).stdout.trim(), '/tmp/forged-approvals.csv', 'the forgery is real: tar made the link')
    })

    it('a hard link that replaces a report is refused by name', async () => {
      const forged = writePackage(out(), replace('reports/approvals.csv', {name: at('reports/approvals.csv'), data: Buffer.alloc(0), type: '1', linkname: at('summary.md')}))
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${at('reports/approvals.csv')}"`, /hard link \(tar type '1'\) to ".*summary.md": only regular files/)
    })

    it('every other entry type is refused by name: devices, directories, FIFOs, pax and GNU headers', async () => {
      const kinds: [string, RegExp][] = [
        ['3', /character device/],
        ['4', /block device/],
        ['5', /directory/],
        ['6', /FIFO/],
        ['7', /contiguous file/],
        ['x', /pax extended header/],
        ['g', /pax global extended header/],
        ['L', /GNU long name header/],
        ['K', /GNU long link name header/],
        ['S', /GNU sparse file/],
        ['Z', /not a regular file \(tar type 'Z'\)/],
      ]
      for (const [type, what] of kinds) {
        const name = at('reports/approvals.csv')
        const forged = writePackage(out(), replace('reports/approvals.csv', {name, data: type === '5' ? Buffer.alloc(0) : find(entries, 'reports/approvals.csv').data, type}))
        refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${name}"`, what)
      }
    })

    it('a pax header that renames the next entry is refused before it takes effect', async () => {
      const approvals = find(entries, 'reports/approvals.csv')
      const forged = writePackage(out(), replace('reports/approvals.csv', {name: `${root}/PaxHeaders/approvals.csv`, data: paxRecord('path', approvals.name), type: 'x'}, {...approvals, name: at('reports/other.csv')}))
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${root}/PaxHeaders/approvals.csv"`, /pax extended header/)
    })

    it('a header in GNU (not POSIX ustar) format is refused', async () => {
      const forged = writePackage(out(), replace('summary.md', {...find(entries, 'summary.md'), magic: 'ustar  \0'}))
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${at('summary.md')}"`, /not in POSIX ustar format/)
    })

    it('a duplicate entry is refused before its second copy is read', async () => {
      const approvals = find(entries, 'reports/approvals.csv')
      const forged = writePackage(out(), [...entries, {...approvals, data: Buffer.from('seq,forged\r\n')}])
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${approvals.name}"`, /appears twice/)
    })

    it('names with "..", absolute names and names outside the package directory are refused', async () => {
      const summary = find(entries, 'summary.md')
      for (const [name, why] of [
        [`${root}/../summary.md`, /"\.\." in its name/],
        [`${root}/reports/../summary.md`, /"\.\." in its name/],
        ['/tmp/summary.md', /absolute name/],
        [`${root}//summary.md`, /empty or "\." path component/],
        [`${root}/./summary.md`, /empty or "\." path component/],
        [`other/summary.md`, /outside the package directory/],
        [`${root}/reports\\summary.md`, /backslash/],
        [`${root}/sum\x1bmary.md`, /printable ASCII/],
      ] as const) {
        const forged = writePackage(out(), replace('summary.md', {...summary, name}))
        const r = await verifyPackage(forged, {publicKey: pub})
        refused(r, /^tar entry "/, why)
        assert.ok(!r.first!.record.includes('\x1b'), 'names are shown escaped')
      }
    })

    it('an entry not in the manifest is refused by name', async () => {
      const forged = writePackage(out(), [...entries, {name: at('reports/extra.csv'), data: Buffer.from('a,b\r\n')}])
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${at('reports/extra.csv')}"`, /not listed in the manifest/)
    })

    it('a missing entry is named', async () => {
      const r = await verifyPackage(writePackage(out(), replace('reports/masking.csv')), {publicKey: pub})
      refused(r, 'file reports/masking.csv', /listed in the manifest but missing/)
    })

    it('the manifest comes first; a manifest that lists unknown files or omits package files is refused', async () => {
      const [manifest, ...rest] = entries
      refused(await verifyPackage(writePackage(out(), [...rest, manifest]), {publicKey: pub}), /^tar entry "/, /comes first, but a package starts with manifest.json/)
      const m = JSON.parse(manifest.data.toString())
      const withExtra = {...m, files: [...m.files, {path: 'reports/extra.csv', sha256: '0'.repeat(64), bytes: 0}]}
      refused(await verifyPackage(writePackage(out(), [{...manifest, data: Buffer.from(JSON.stringify(withExtra))}, ...rest]), {publicKey: pub}), 'file manifest.json', /lists "reports\/extra.csv", which is not a file of an evidence package/)
      const without = {...m, files: m.files.filter((f: {path: string}) => f.path !== 'summary.md')}
      refused(await verifyPackage(writePackage(out(), [{...manifest, data: Buffer.from(JSON.stringify(without))}, ...rest]), {publicKey: pub}), 'file manifest.json', /does not list summary.md/)
    })
  })

  describe('end of archive', function () {
    it('zero padding after the end marker (as tar pads to its record size) is accepted', async () => {
      // The two-block marker, then zeros to the next 10 KiB record (a whole record more when the marker does not fit).
      const pad = 10240 - ((tarBytes(entries).length - 1024) % 10240)
      const r = await verifyPackage(writePackage(out(), entries, {end: Buffer.alloc(pad >= 1024 ? pad : pad + 10240)}), {publicKey: pub})
      assert.equal(r.ok, true, JSON.stringify(r.failures))
    })

    it('data after the end marker is refused', async () => {
      const approvals = find(entries, 'reports/approvals.csv')
      const more = tarBytes([{...approvals, name: at('reports/approvals2.csv')}])
      refused(await verifyPackage(writePackage(out(), entries, {end: Buffer.concat([Buffer.alloc(1024), more])}), {publicKey: pub}), 'package', /data after the end-of-archive marker/)
      // The same as a second gzip member (cat a.tar.gz b.tar.gz).
      refused(await verifyPackage(writePackage(out(), entries, {after: gzipSync(more)}), {publicKey: pub}), 'package', /data after the end-of-archive marker/)
      // Garbage after the gzip stream.
      refused(await verifyPackage(writePackage(out(), entries, {after: Buffer.from('trailing garbage')}), {publicKey: pub}), 'package', /not a valid gzip stream/)
    })

    it('a lone zero block followed by more entries is refused (GNU tar would extract them)', async () => {
      const more = tarBytes([{name: at('reports/approvals.csv'), data: Buffer.from('forged\r\n')}])
      refused(await verifyPackage(writePackage(out(), entries, {end: Buffer.concat([Buffer.alloc(BLOCK), more])}), {publicKey: pub}), 'package', /lone zero block/)
    })

    it('1 GiB of zeros after the end marker is refused after reading at most 1 MiB of it', async () => {
      // 1 GiB of zeros gzips to ~1 MB; the old reader decompressed all of it, for minutes.
      const zeros = gzipSync(Buffer.alloc(64 * 2 ** 20))
      const bomb = out()
      writeFileSync(bomb, Buffer.concat([gzipSync(tarBytes(entries)), ...Array.from({length: 16}, () => zeros)]))
      const before = process.cpuUsage()
      refused(await verifyPackage(bomb, {publicKey: pub}), 'package', /more than 1048576 bytes after the end-of-archive marker/)
      const cpu = process.cpuUsage(before)
      console.log(`      (refused after ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms of CPU)`)
    })

    it('a truncated archive names the entry it ends in', async () => {
      const tar = tarBytes(entries)
      const cut = out()
      writeFileSync(cut, gzipSync(tar.subarray(0, BLOCK + 10)))
      refused(await verifyPackage(cut, {publicKey: pub}), /^tar entry ".*manifest.json"$/, /ends inside entry .*manifest.json.*truncated/)
      writeFileSync(cut, gzipSync(tar.subarray(0, tar.length - BLOCK)))
      refused(await verifyPackage(cut, {publicKey: pub}), 'package', /without its end-of-archive marker/)
    })
  })

  describe('bounds, checked before reading', function () {
    it('an entry declaring a huge size is refused from its header', async () => {
      const forged = writePackage(out(), replace('reports/session-log.jsonl', {name: at('reports/session-log.jsonl'), data: Buffer.alloc(0), declaredSize: 2 ** 33 - 1}), {end: Buffer.alloc(0)})
      refused(await verifyPackage(forged, {publicKey: pub}), `tar entry "${at('reports/session-log.jsonl')}"`, /declares 8589934591 bytes, more than the limit of 4294967296 per file/)
    })

    it('limits on entry size, metadata size, total size and entry count are options', async () => {
      refused(await verifyPackage(pkgFile, {publicKey: pub, maxEntryBytes: 3000}), `tar entry "${at(FILES.events)}"`, /declares \d+ bytes, more than the limit of 3000 per file/)
      refused(await verifyPackage(pkgFile, {publicKey: pub, maxMetadataBytes: 100}), `tar entry "${at(FILES.manifest)}"`, /more than the limit of 100 for a file verify reads whole/)
      const listed = (JSON.parse(entries[0].data.toString()).files as {bytes: number}[]).reduce((s, f) => s + f.bytes, 0)
      refused(await verifyPackage(pkgFile, {publicKey: pub, maxTotalBytes: listed - 1}), 'file manifest.json', new RegExp(`lists ${listed} bytes of files, more than the limit of ${listed - 1}`))
      // Headers and padding count too.
      refused(await verifyPackage(pkgFile, {publicKey: pub, maxTotalBytes: listed + 100}), /^(package|tar entry ".*")$/, new RegExp(`larger than the limit of ${listed + 100} bytes uncompressed`))
      refused(await verifyPackage(pkgFile, {publicKey: pub, maxEntries: 5}), /^tar entry "/, /more than 5 entries/)
      refused(await verifyPackage(pkgFile, {publicKey: pub, maxTotalBytes: 1000}), 'package', /package file is \d+ bytes, more than the limit of 1000/)
    })

    it('a 50 MB line in events.jsonl is refused with file and line, in bounded memory', async () => {
      const events = find(entries, FILES.events)
      const lines = events.data.toString().split('\n')
      const long = Buffer.concat([Buffer.from('{"seq":3,"x":"'), Buffer.alloc(50 * 2 ** 20, 'a'), Buffer.from('"}\n')])
      const forged = writePackage(out(), replace(FILES.events, {...events, data: Buffer.concat([Buffer.from(lines.slice(0, 2).join('\n') + '\n'), long, Buffer.from(lines.slice(3).join('\n'))])}))
      const r = await verifyPackage(forged, {publicKey: pub})
      assert.deepEqual({record: r.first!.record, file: r.first!.file, line: r.first!.line}, {record: 'events.jsonl line 3', file: 'events.jsonl', line: 3})
      assert.match(r.first!.reason, /longer than the limit of 1048576 bytes per line/)
      // Live memory while verifying, in a process of its own (the old reader held the whole line).
      const keyFile = join(t.dir, 'pub.pem')
      writeFileSync(keyFile, pub)
      const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(new URL('./_verify-child.ts', import.meta.url)), forged, keyFile], {encoding: 'utf8'})
      assert.equal(child.status, 0, child.stderr)
      const {first, peak} = JSON.parse(child.stdout) as {first: {record: string}; peak: number}
      assert.equal(first.record, 'events.jsonl line 3')
      console.log(`      (live heap + buffers grew by at most ${(peak / 2 ** 20).toFixed(1)} MiB while verifying)`)
      assert.ok(peak < 16 * 2 ** 20, `verify held ${peak} bytes for a 50 MB line it refuses`)
      // The deadline: this package takes longer than 1 ms to read.
      refused(await verifyPackage(forged, {publicKey: pub, timeoutMs: 1}), 'package', /did not finish within the time limit of 0.001 s \(stopped while reading/)
    })

    it('long lines in checkpoints.jsonl and proofs/consistency.jsonl are refused with file and line', async () => {
      const r = await verifyPackage(pkgFile, {publicKey: pub, maxLineBytes: 300})
      assert.equal(r.ok, false)
      const f = r.failures.find((x) => x.file === FILES.checkpoints)!
      assert.deepEqual([f.record, f.line], ['checkpoints.jsonl line 1', 1])
      assert.match(f.reason, /longer than the limit of 300 bytes per line/)
      assert.ok(r.failures.some((x) => x.record === 'proofs/consistency.jsonl line 1'))
    })
  })

  describe('malformed content: named failures, never exceptions', function () {
    const withFile = (rel: string, data: Buffer | string) => {
      const e = find(entries, rel)
      return writePackage(out(), replace(rel, {...e, data: Buffer.from(data)}))
    }

    it('a non-JSON line in checkpoints.jsonl, and a JSON line that is not a tree head', async () => {
      const cps = find(entries, FILES.checkpoints).data.toString().split('\n')
      const r1 = await verifyPackage(withFile(FILES.checkpoints, [cps[0], 'not json', ...cps.slice(1)].join('\n')), {publicKey: pub})
      refused(r1, 'checkpoints.jsonl line 2', /not valid JSON/)
      assert.deepEqual([r1.first!.file, r1.first!.line], [FILES.checkpoints, 2])
      refused(await verifyPackage(withFile(FILES.checkpoints, ['{}', ...cps].join('\n')), {publicKey: pub}), 'checkpoints.jsonl line 1', /has no valid tree_size/)
      refused(await verifyPackage(withFile(FILES.consistency, '{"from_size":1,"to_size":2,"nodes":"x"}\n'), {publicKey: pub}), 'proofs/consistency.jsonl line 1', /has no valid nodes/)
    })

    it('a non-JSON or malformed --previous', async () => {
      for (const [previous, why] of [
        ['not json', /not valid JSON/],
        ['{"tree_size": 3,\n "root_hash": }', /not valid JSON/],
        ['[1, 2]', /not a JSON object/],
        ['{"tree_size": "5"}', /no valid tree_size/],
        ['', /not valid JSON/],
      ] as const) {
        refused(await verifyPackage(pkgFile, {publicKey: pub, previous}), 'earlier tree head (--previous)', why)
      }
    })

    it('bad JSON in events.jsonl, the manifest, the tree head and the range proof', async () => {
      const events = find(entries, FILES.events).data.toString().split('\n')
      events[4] = events[4].slice(0, -1)
      const r = await verifyPackage(withFile(FILES.events, events.join('\n')), {publicKey: pub})
      refused(r, 'events.jsonl line 5', /not valid JSON/)
      assert.equal(r.first!.line, 5)
      const m = await verifyPackage(withFile(FILES.manifest, '{\n  "format": "hoop-audit-evidence"\n  "files": []\n}\n'), {publicKey: pub})
      refused(m, 'file manifest.json', /not valid JSON \(line 3\)/)
      assert.equal(m.first!.line, 3)
      refused(await verifyPackage(withFile(FILES.manifest, '[]'), {publicKey: pub}), 'file manifest.json', /not a JSON object/)
      refused(await verifyPackage(withFile(FILES.treeHead, '{"tree_size": 24'), {publicKey: pub}), 'signed tree head', /tree-head.json not valid JSON/)
      refused(await verifyPackage(withFile(FILES.treeHead, '{"tree_size": 24}'), {publicKey: pub}), 'signed tree head', /tree-head.json has no valid root_hash/)
      refused(await verifyPackage(withFile(FILES.rangeProof, '{"first_seq": 1, "nodes": 7}'), {publicKey: pub}), 'file proofs/range.json', /no valid first_seq/)
      refused(await verifyPackage(withFile(FILES.rangeProof, 'nope'), {publicKey: pub}), 'file proofs/range.json', /not valid JSON/)
    })

    it('an event the report builder cannot read is a named failure', async () => {
      const events = find(entries, FILES.events).data.toString().split('\n').filter(Boolean)
      const last = JSON.parse(events.at(-1)!)
      events[events.length - 1] = JSON.stringify({...last, actor: {...last.actor, groups: 'not-a-list'}})
      refused(await verifyPackage(withFile(FILES.events, events.join('\n') + '\n'), {publicKey: pub}), `event seq ${last.seq}`, /not a well-formed audit event/)
    })

    it('an event line in a package whose range is empty is an inserted event', async () => {
      const empty = join(t.dir, 'empty.tar.gz')
      await exportEvidence({db, dataDir: t.dir, out: empty, from: '2099-01-01T00:00:00Z'})
      const es = readPackage(empty)
      const line = find(entries, FILES.events).data.toString().split('\n')[0] + '\n'
      const forged = writePackage(out(), es.map((e) => (e.name.endsWith(`/${FILES.events}`) ? {...e, data: Buffer.from(line)} : e)))
      refused(await verifyPackage(forged, {publicKey: pub}), 'event seq 1', /the manifest's range is empty: an event was inserted/)
    })

    it('a corrupt gzip stream, a file that is not gzip, an empty file, a corrupt tar header', async () => {
      const gz = readFileSync(pkgFile)
      const f = out()
      // The CRC-32 in the gzip trailer.
      const crc = Buffer.from(gz)
      crc[crc.length - 6] ^= 0x55
      writeFileSync(f, crc)
      refused(await verifyPackage(f, {publicKey: pub}), 'package', /not a valid gzip stream: incorrect data check/)
      // Deflate data: whatever it decodes to is refused, by gzip, by tar or by the checks.
      for (const from of [20, 200, 2000, Math.floor(gz.length / 2)]) {
        const flipped = Buffer.from(gz)
        for (let i = from; i < from + 16; i++) flipped[i] ^= 0x55
        writeFileSync(f, flipped)
        assert.equal((await verifyPackage(f, {publicKey: pub})).ok, false, `flipped at ${from}`)
      }
      writeFileSync(f, gunzipSync(gz))
      refused(await verifyPackage(f, {publicKey: pub}), 'package', /not a valid gzip stream/)
      writeFileSync(f, '')
      refused(await verifyPackage(f, {publicKey: pub}), 'package', /not a valid gzip stream: unexpected end of file/)
      writeFileSync(f, gzipSync(Buffer.alloc(0)))
      refused(await verifyPackage(f, {publicKey: pub}), 'package', /without its end-of-archive marker/)
      const tar = tarBytes(entries)
      const second = BLOCK * (1 + Math.ceil(entries[0].data.length / BLOCK))
      tar[second + 3] ^= 1
      writeFileSync(f, gzipSync(tar))
      refused(await verifyPackage(f, {publicKey: pub}), 'package', new RegExp(`the tar header at byte ${second} is corrupt \\(checksum mismatch\\)`))
      const bad = tarBytes(entries)
      bad.write('12x4567', second + 124, 'latin1')
      const h = bad.subarray(second, second + BLOCK)
      h.write('        ', 148, 'latin1')
      h.write(h.reduce((s, b) => s + b, 0).toString(8).padStart(6, '0') + '\0 ', 148, 'latin1')
      writeFileSync(f, gzipSync(bad))
      refused(await verifyPackage(f, {publicKey: pub}), /^tar entry "/, /malformed size field/)
    })
  })

  describe('line splitting', function () {
    it('LineSplitter gives the same lines for input split at every byte, and stops at an over-long line', () => {
      const text = Buffer.from('{"a":1}\n\nxyz\nlast')
      const split = (parts: Buffer[], max = 100) => {
        const got: string[] = []
        const s = new LineSplitter(max, (b, n) => got.push(`${n}:${b}`), (n) => got.push(`${n}:too long`))
        for (const p of parts) s.push(p)
        s.end()
        return got
      }
      assert.deepEqual(split([text]), ['1:{"a":1}', '2:', '3:xyz', '4:last'])
      for (let i = 0; i <= text.length; i++) for (let j = i; j <= text.length; j++) assert.deepEqual(split([text.subarray(0, i), text.subarray(i, j), text.subarray(j)]), split([text]), `split at ${i}, ${j}`)
      for (let i = 0; i <= text.length; i++) assert.deepEqual(split([text.subarray(0, i), text.subarray(i)], 4), ['1:too long'])
      assert.deepEqual(split([Buffer.from('abcd\nabcde\nx')], 4), ['1:abcd', '2:too long'])
    })
  })
})
