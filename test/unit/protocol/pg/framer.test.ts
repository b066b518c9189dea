import {strict as assert} from 'node:assert'
import {Framer, MAX_STARTUP_PACKET, type Frame} from '../../../../src/protocol/pg/framer.js'
import {
  asFrame,
  decodeClientMessage,
  decodeStartup,
  encodeBind,
  encodeDescribe,
  encodeExecute,
  encodeParse,
  encodeQuery,
  encodeSSLRequest,
  encodeStartup,
  encodeSync,
  encodeCancelRequest,
  encodeTerminate,
  F,
  message,
} from '../../../../src/protocol/pg/messages.js'

function frameAll(framer: Framer, chunks: Buffer[]): Frame[] {
  const out: Frame[] = []
  for (const c of chunks) {
    const err = framer.push(c, (f) => out.push({...f, bytes: Buffer.from(f.bytes)}))
    assert.equal(err, undefined)
  }
  return out
}

/** Joins streamed pieces back into whole messages (what the engine forwards). */
function joinPieces(frames: Frame[]): Buffer[] {
  const out: Buffer[][] = []
  for (const f of frames) {
    if (f.piece === 'middle' || f.piece === 'last') out[out.length - 1].push(f.bytes)
    else out.push([f.bytes])
  }
  return out.map((parts) => Buffer.concat(parts))
}

describe('pg framer', () => {
  const regular = Buffer.concat([encodeParse('s1', 'select $1', [23]), encodeBind('', 's1', ['42', null], [1]), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync(), encodeQuery('select 1; select 2')])

  it('yields the same messages whatever the split point (regular messages)', () => {
    const whole = frameAll(new Framer('regular', 1 << 20), [regular])
    assert.deepEqual(whole.map((f) => String.fromCharCode(f.type)).join(''), 'PBDESQ')
    for (let i = 0; i <= regular.length; i++) {
      const split = frameAll(new Framer('regular', 1 << 20), [regular.subarray(0, i), regular.subarray(i)])
      assert.deepEqual(split.map((f) => f.bytes.toString('hex')), whole.map((f) => f.bytes.toString('hex')), `split at ${i}`)
    }
  })

  it('yields the same messages fed one byte at a time, across the startup -> regular switch', () => {
    const stream = Buffer.concat([encodeSSLRequest(), encodeStartup({user: 'u', database: 'd'}), regular])
    const frames = frameAll(new Framer('startup', 1 << 20), [...stream].map((b) => Buffer.from([b])))
    assert.equal(frames.length, 8)
    assert.equal(decodeStartup(frames[0]).kind, 'SSLRequest')
    const st = decodeStartup(frames[1])
    assert.ok(st.kind === 'Startup' && st.params.user === 'u' && st.params.database === 'd')
    assert.deepEqual(frames.slice(2).map((f) => decodeClientMessage(f).kind), ['Parse', 'Bind', 'Describe', 'Execute', 'Sync', 'Query'])
  })

  it('frames the bytes behind a StartupMessage in the same chunk as regular messages, whatever the split (first query in the startup segment)', () => {
    const stream = Buffer.concat([encodeSSLRequest(), encodeStartup({user: 'u', database: 'd'}), encodeQuery('select 1'), encodeTerminate()])
    for (let i = 0; i <= stream.length; i++) {
      const frames = frameAll(new Framer('startup', 1 << 20), [stream.subarray(0, i), stream.subarray(i)])
      assert.deepEqual(
        frames.map((f) => (f.type === 0 ? decodeStartup(f).kind : decodeClientMessage(f).kind)),
        ['SSLRequest', 'Startup', 'Query', 'Terminate'],
        `split at ${i}`,
      )
    }
  })

  it('caps a startup packet at 10,000 bytes like PostgreSQL, from the header (a 16 MiB startup packet is refused unbuffered)', () => {
    const framer = new Framer('startup', 256 << 20)
    const head = Buffer.alloc(8)
    head.writeInt32BE(16 << 20)
    head.writeInt32BE(196608, 4)
    assert.deepEqual(framer.push(head, () => assert.fail('no frame')), {kind: 'length', declared: 16 << 20, limit: MAX_STARTUP_PACKET})
    assert.equal(framer.buffered, 0)
    const big = encodeStartup({user: 'u', options: 'x'.repeat(MAX_STARTUP_PACKET)})
    assert.ok(new Framer('startup', 256 << 20).push(big, () => assert.fail('no frame')))
  })

  it('is linear: a 16 MiB query in 1 KiB pieces is joined once (quadratic concatenation held it for seconds)', () => {
    const sql = 'select ' + "'".padEnd(16 * 1024 * 1024 - 20, 'a') + "'"
    const q = encodeQuery(sql)
    const framer = new Framer('regular', 32 << 20)
    const frames: Frame[] = []
    let peakHeld = 0
    for (let off = 0; off < q.length; off += 1024) {
      assert.equal(framer.push(q.subarray(off, off + 1024), (f) => frames.push(f)), undefined)
      peakHeld = Math.max(peakHeld, framer.buffered)
    }
    assert.equal(frames.length, 1)
    assert.ok(frames[0].bytes.equals(q))
    assert.ok(peakHeld < q.length)
    assert.equal(framer.buffered, 0)
  })

  it('copies tiny pieces together: a message fed one byte at a time is held as bytes, not as one Buffer per byte', () => {
    const q = encodeQuery('select ' + '1'.repeat(200_000))
    const framer = new Framer('regular', 1 << 20)
    const frames: Frame[] = []
    const held = () => (framer as unknown as {parts: Buffer[]}).parts.length
    for (let i = 0; i < q.length - 1; i++) framer.push(q.subarray(i, i + 1), (f) => frames.push(f))
    assert.equal(framer.buffered, q.length - 1)
    assert.ok(held() <= 4, `${held()} buffers held`)
    framer.push(q.subarray(q.length - 1), (f) => frames.push(f))
    assert.equal(frames.length, 1)
    assert.ok(frames[0].bytes.equals(q))
  })

  it('streams a large CopyData in pieces as it arrives, beyond the whole-message limit, and frames what follows', () => {
    const payload = Buffer.alloc(300_000, 0x78)
    const copy = message(F.CopyData, payload)
    const stream = Buffer.concat([copy, message(F.CopyDone), encodeSync()])
    const opts = {stream: {types: [F.CopyData], above: 1024, max: 1 << 20}}
    for (const size of [1, 7, 1000, 65536, stream.length]) {
      const framer = new Framer('regular', 64 * 1024, opts)
      const chunks: Buffer[] = []
      for (let off = 0; off < stream.length; off += size) chunks.push(stream.subarray(off, off + size))
      const frames = frameAll(framer, chunks)
      if (size < copy.length) {
        assert.equal(frames[0].piece, 'first', `size ${size}`)
        assert.equal(frames.filter((f) => f.piece === 'last').length, 1)
        // Never more held than a header's bytes while streaming.
        assert.ok(framer.buffered <= 4)
      }
      const whole = joinPieces(frames)
      assert.equal(whole.length, 3, `size ${size}`)
      assert.ok(whole[0].equals(copy), `size ${size}`)
      assert.deepEqual(whole.slice(1).map((b) => decodeClientMessage(asFrame(b)).kind), ['CopyDone', 'Sync'])
    }
    // Split at every byte, with a small streaming threshold.
    const small = Buffer.concat([encodeQuery('copy t from stdin'), message(F.CopyData, Buffer.alloc(200, 0x79)), message(F.CopyDone)])
    for (let i = 0; i <= small.length; i++) {
      const frames = frameAll(new Framer('regular', 1024, {stream: {types: [F.CopyData], above: 16, max: 4096}}), [small.subarray(0, i), small.subarray(i)])
      assert.ok(Buffer.concat(joinPieces(frames)).equals(small), `split at ${i}`)
      assert.deepEqual(joinPieces(frames).map((b) => decodeClientMessage(asFrame(b)).kind), ['Query', 'CopyData', 'CopyDone'], `split at ${i}`)
    }
    // Other types keep the whole-message limit, and CopyData its own.
    assert.ok(new Framer('regular', 64 * 1024, opts).push(encodeQuery('x'.repeat(70_000)), () => {}))
    const tooBig = Buffer.from([F.CopyData, 0, 0x20, 0, 0])
    assert.deepEqual(new Framer('regular', 64 * 1024, opts).push(tooBig, () => {}), {kind: 'length', declared: 0x200000, limit: 1 << 20})
  })

  it('refuses a declared length above the limit from the header alone, without buffering the body', () => {
    const framer = new Framer('regular', 1024)
    const err = framer.push(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), () => assert.fail('no frame'))
    assert.deepEqual(err, {kind: 'length', declared: 0x7fffffff, limit: 1024})
    assert.equal(framer.buffered, 0)
    // and stays failed
    assert.ok(framer.push(encodeSync(), () => assert.fail('no frame')))
  })

  it('refuses a declared length below 4 (regular) or 8 (startup)', () => {
    assert.ok(new Framer('regular', 1024).push(Buffer.from([0x51, 0, 0, 0, 3]), () => {}))
    assert.ok(new Framer('startup', 1024).push(Buffer.from([0, 0, 0, 4]), () => {}))
  })

  describe('runs of a coalesced type (the server\'s CopyData of a COPY TO)', () => {
    const copyData = (row: string) => message(F.CopyData, Buffer.from(row))
    const rows = ['1\talice\n', '2\tbob\n', '', '3\tcarol\n']
    // CopyOutResponse-like head, the rows, CopyDone, CommandComplete, more rows after another message.
    const stream = Buffer.concat([message(0x48, Buffer.from([0, 0, 2, 0, 0, 0, 0])), ...rows.map(copyData), message(0x63, Buffer.alloc(0)), copyData('4\n'), message(0x43, Buffer.from('COPY 4\0'))])
    const coalescing = () => {
      const f = new Framer('regular', 1 << 20)
      f.coalesce(F.CopyData)
      return f
    }
    /** Each run back into its messages, checking its count. */
    const messagesOf = (frames: Frame[]) =>
      frames.flatMap((f) => {
        const out: string[] = []
        for (let at = 0; at < f.bytes.length; at += 1 + f.bytes.readInt32BE(at + 1)) out.push(f.bytes.subarray(at, at + 1 + f.bytes.readInt32BE(at + 1)).toString('hex'))
        assert.equal(out.length, f.count ?? 1)
        assert.ok(f.count === undefined || (f.count > 1 && f.type === F.CopyData))
        return out
      })

    it('frames adjacent whole CopyData messages of one chunk as one run with their count', () => {
      const frames = frameAll(coalescing(), [stream])
      assert.deepEqual(frames.map((f) => [String.fromCharCode(f.type), f.count ?? 1]), [['H', 1], ['d', 4], ['c', 1], ['d', 1], ['C', 1]])
    })

    it('yields the same messages as without coalescing, whatever the split point', () => {
      const plain = frameAll(new Framer('regular', 1 << 20), [stream]).map((f) => f.bytes.toString('hex'))
      for (let i = 0; i <= stream.length; i++) {
        for (const j of [i, Math.min(stream.length, i + 7), Math.min(stream.length, i + 23)]) {
          const frames = frameAll(coalescing(), [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)])
          assert.deepEqual(messagesOf(frames), plain, `split at ${i} and ${j}`)
        }
      }
      assert.deepEqual(messagesOf(frameAll(coalescing(), [...stream].map((b) => Buffer.from([b])))), plain)
    })

    it('checks every message of a run against the limit: an oversized one behind a run fails the framer, the run before it is whole', () => {
      const bad = Buffer.from([F.CopyData, 0x00, 0x10, 0x00, 0x00])
      const framer = new Framer('regular', 1024)
      framer.coalesce(F.CopyData)
      const frames: Frame[] = []
      assert.deepEqual(framer.push(Buffer.concat([copyData('a'), copyData('b'), bad]), (f) => frames.push(f)), {kind: 'length', declared: 0x100000, limit: 1024})
      assert.deepEqual(frames.map((f) => f.count ?? 1), [2])
      assert.ok(framer.push(copyData('c'), () => assert.fail('no frame after a failure')))
    })
  })
})

describe('pg unsigned counts', () => {
  it('accepts Parse and Bind with 40,000 parameters (counts >= 32,768 were read as negative and refused)', () => {
    const n = 40_000
    const parse = decodeClientMessage(asFrame(encodeParse('s', 'select 1', new Array<number>(n).fill(23))))
    assert.ok(parse.kind === 'Parse' && parse.paramTypes.length === n, parse.kind)
    const bind = decodeClientMessage(asFrame(encodeBind('', 's', new Array<string | null>(n).fill('1'), new Array<number>(n).fill(0))))
    assert.ok(bind.kind === 'Bind' && bind.resultFormats.length === n, bind.kind)
    const max = decodeClientMessage(asFrame(encodeBind('', 's', new Array<string | null>(65_535).fill(null))))
    assert.equal(max.kind, 'Bind')
  })
})

describe('pg frontend decoding', () => {
  it('decodes the extended-protocol messages', () => {
    const p = decodeClientMessage(asFrame(encodeParse('n', 'select $1', [25])))
    assert.deepEqual(p, {kind: 'Parse', name: 'n', sql: 'select $1', paramTypes: [25]})
    const b = decodeClientMessage(asFrame(encodeBind('p', 'n', ['x', null], [1, 0])))
    assert.deepEqual(b, {kind: 'Bind', portal: 'p', statement: 'n', resultFormats: [1, 0]})
    assert.deepEqual(decodeClientMessage(asFrame(encodeExecute('p', 5))), {kind: 'Execute', portal: 'p', maxRows: 5})
  })

  it('turns bad bodies into Malformed and unknown letters into Unknown, never throwing', () => {
    assert.equal(decodeClientMessage(asFrame(message(0x51, Buffer.from('no terminator')))).kind, 'Malformed')
    assert.equal(decodeClientMessage(asFrame(message(0x51, Buffer.from('a\0trailing')))).kind, 'Malformed')
    assert.equal(decodeClientMessage(asFrame(message(0x42, Buffer.from('p\0s\0\x7f')))).kind, 'Malformed')
    assert.equal(decodeClientMessage(asFrame(message(0x44, Buffer.from('Xname\0')))).kind, 'Malformed')
    assert.deepEqual(decodeClientMessage(asFrame(message(0x7a))), {kind: 'Unknown', type: 0x7a})
    // Every truncation of a valid Bind is refused as Malformed, not thrown.
    const bind = encodeBind('portal', 'stmt', ['abc', null, 'de'], [1])
    for (let i = 5; i < bind.length; i++) {
      const cut = Buffer.from(bind.subarray(0, i))
      cut.writeInt32BE(i - 1, 1)
      assert.equal(decodeClientMessage(asFrame(cut)).kind, 'Malformed', `cut at ${i}`)
    }
  })

  it('decodes CancelRequest and rejects a non-3 protocol', () => {
    const c = decodeStartup(asFrame(encodeCancelRequest(1234, Buffer.from([1, 2, 3, 4])), true))
    assert.ok(c.kind === 'CancelRequest' && c.pid === 1234 && c.key.equals(Buffer.from([1, 2, 3, 4])))
    assert.equal(decodeStartup(asFrame(encodeStartup({user: 'u'}, 2 << 16), true)).kind, 'Malformed')
  })
})
