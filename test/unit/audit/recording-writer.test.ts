// Recording chunks of every session are written in shared batches (issue 15, direction 4): these
// tests pin when a batch is written (the byte bound, the timer, a session's end, the gateway's
// close), that the order of chunks across sessions is kept, and that one session's refused
// chunks do not fail the others in its batch.
import assert from 'node:assert/strict'
import {recordingDigest, SessionRecorder} from '../../../src/audit/recorder.js'
import {BATCH_BYTES, flushRecordings} from '../../../src/audit/recording-writer.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {tempDir} from './_helpers.js'

describe('recording writer: shared batches across sessions', () => {
  let t: ReturnType<typeof tempDir>
  let store: SqliteStore
  beforeEach(() => {
    t = tempDir()
    store = new SqliteStore(t.dir)
  })
  afterEach(() => {
    store.close()
    t.cleanup()
  })

  const recorder = (id: string) => new SessionRecorder({db: store.db, sessionId: id, capBytes: 64 * 1024 * 1024})
  /** Stored chunks in insertion (rowid) order. */
  const rows = () => store.db.prepare('SELECT session_id, idx, payload FROM audit_recording_chunks ORDER BY rowid').all() as {session_id: string; idx: number; payload: Buffer}[]

  it('keeps the order of chunks across sessions, and one session ending stores every queued chunk', () => {
    const a = recorder('ses_AAAAAAAAAAAA')
    const b = recorder('ses_BBBBBBBBBBBB')
    a.record('client', 'bytes', Buffer.from('a0'))
    b.record('client', 'bytes', Buffer.from('b0'))
    b.record('server', 'bytes', Buffer.from('b1'))
    a.record('server', 'bytes', Buffer.from('a1'))
    assert.equal(rows().length, 0, 'small chunks wait for the batch')
    const sa = a.finish()
    assert.deepEqual(
      rows().map((r) => `${r.session_id.slice(4, 5)}${r.idx}:${r.payload.toString()}`),
      ['A0:a0', 'B0:b0', 'B1:b1', 'A1:a1'],
    )
    b.record('client', 'bytes', Buffer.from('b2'))
    const sb = b.finish()
    assert.equal(sa.chunks, 2)
    assert.equal(sb.chunks, 3)
    assert.equal(recordingDigest(store.db, 'ses_AAAAAAAAAAAA'), sa.sha256)
    assert.equal(recordingDigest(store.db, 'ses_BBBBBBBBBBBB'), sb.sha256)
  })

  it('a caller reusing its buffer does not change what was recorded', () => {
    const a = recorder('ses_AAAAAAAAAAAA')
    const buf = Buffer.from('first')
    a.record('client', 'bytes', buf)
    buf.write('later')
    a.finish()
    assert.equal(rows()[0].payload.toString(), 'first')
  })

  it('writes the queue as soon as it holds BATCH_BYTES, inside the call that reached the bound', () => {
    const a = recorder('ses_AAAAAAAAAAAA')
    const b = recorder('ses_BBBBBBBBBBBB')
    const chunk = Buffer.alloc(1024, 7)
    const n = BATCH_BYTES / chunk.length
    for (let i = 0; i < n - 1; i++) (i % 2 ? a : b).record('client', 'bytes', chunk)
    assert.equal(rows().length, 0, 'below the bound nothing is written')
    a.record('client', 'bytes', chunk)
    assert.equal(rows().length, n, 'the whole queue, both sessions, is written at the bound')
    assert.equal(a.failed || b.failed, false)
  })

  it('writes a partial batch on its own shortly after, without any session ending', async () => {
    const a = recorder('ses_AAAAAAAAAAAA')
    a.record('client', 'statement', 'SELECT 1')
    for (let i = 0; i < 200 && rows().length === 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(rows().length, 1)
  })

  it('flushRecordings (the gateway, before it closes the store) stores every queued chunk', () => {
    const a = recorder('ses_AAAAAAAAAAAA')
    a.record('client', 'statement', 'SELECT 1')
    a.record('server', 'result', {rows: 1})
    flushRecordings(store.db)
    assert.equal(rows().length, 2)
    assert.equal(a.finish().chunks, 2)
  })

  it("a session whose chunks the store refuses fails alone; the other sessions in the batch are stored", () => {
    const a = recorder('ses_AAAAAAAAAAAA')
    const b = recorder('ses_BBBBBBBBBBBB')
    // A stray row takes the place of A's first chunk, so A's insert breaks the primary key.
    store.db.prepare("INSERT INTO audit_recording_chunks (session_id, idx, at_ms, direction, kind, encoding, size, sha256) VALUES ('ses_AAAAAAAAAAAA', 0, 0, 'client', 'bytes', 'binary', 0, '')").run()
    b.record('client', 'bytes', Buffer.from('b0'))
    a.record('client', 'bytes', Buffer.from('a0'))
    b.record('server', 'bytes', Buffer.from('b1'))
    const sa = a.finish()
    const sb = b.finish()
    assert.match(sa.failed ?? '', /could not store recording chunks: UNIQUE constraint failed/)
    assert.equal(sa.droppedBytes, 2)
    assert.equal(sb.failed, undefined)
    assert.equal(sb.chunks, 2)
    assert.equal(recordingDigest(store.db, 'ses_BBBBBBBBBBBB'), sb.sha256)
  })
})
