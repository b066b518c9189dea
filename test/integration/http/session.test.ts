// The HTTP engine end to end: real curl and Node's fetch -> runHttpSession -> a real node:http
// upstream, all on loopback. Policy is a small judge standing in for the gateway adapter.
import {strict as assert} from 'node:assert'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as net from 'node:net'
import {join} from 'node:path'
import type {Verdict as StatementVerdict} from '../../../src/engines/gate.js'
import type {HttpRequestView} from '../../../src/engines/http/session.js'
import {sh} from '../../helpers/net.js'
import {allow, connect, CUSTOMER, curl, type Harness, rawExchange, startHarness, startUpstream, type Upstream} from './harness.js'

const block = (ruleId: string, message: string): StatementVerdict => ({effect: 'block', ruleId, message})

/** Policy stand-in: blocks, reviews with one-time approvals bound to the request fingerprint, masks. */
class Judge {
  approved = new Set<string>()
  pending = new Map<string, string>()
  private n = 0

  approve(id: string): void {
    const fp = this.pending.get(id)
    assert.ok(fp, `unknown approval ${id}`)
    this.approved.add(fp)
  }

  judge = (v: HttpRequestView): StatementVerdict => {
    if (v.method === 'DELETE') return block('no-delete', 'DELETE is not allowed on this API')
    if (v.path.startsWith('/admin/')) return block('no-admin', 'the admin API is off limits')
    if (v.method === 'POST' && v.path === '/payments' && v.bodyStatus === 'json' && ((v.body as {amount?: number}).amount ?? 0) > 1000) {
      if (this.approved.delete(v.fingerprint)) return allow(undefined, 'large-payment-approved')
      const id = `apr-${++this.n}`
      this.pending.set(id, v.fingerprint)
      return {effect: 'review', ruleId: 'large-payment', message: 'payments over 1000 need approval', approvalId: id}
    }
    if (v.path === '/customer' || v.path === '/stream' || v.path === '/gzip' || v.path === '/no-type') {
      if (v.query.plain?.[0] === '1') return allow()
      return allow({columns: ['$.customer.email'], jsonPaths: ['$.items[*].card'], entities: ['email'], ruleIds: ['mask-pii']})
    }
    return allow()
  }
}

describe('http engine (curl, fetch, real upstream)', function () {
  this.timeout(60_000)
  let up: Upstream
  let h: Harness
  let judge: Judge

  before(async () => {
    up = await startUpstream()
  })
  after(async () => {
    await up.close()
  })
  beforeEach(async () => {
    judge = new Judge()
    h = await startHarness({upstreamPort: up.port, judge: (v) => judge.judge(v), redactHeaders: ['X-Api-Key', 'x-upstream-secret']})
  })
  afterEach(async () => {
    await h.close()
  })

  it('blocks a method and a path with 403 naming the rule (curl and fetch), and forwards nothing', async () => {
    const seenBefore = up.seen.length
    const r = await curl(['-X', 'DELETE', `${h.url}/items/7`])
    assert.equal(r.status, 403)
    const body = JSON.parse(r.body) as {error: {code: string; rule: string; message: string}}
    assert.equal(body.error.code, 'POLICY_BLOCKED')
    assert.equal(body.error.rule, 'no-delete')
    assert.match(body.error.message, /DELETE is not allowed/)

    // A dot segment does not get around the path rule: policy and upstream see the same path.
    const f = await fetch(`${h.url}/items/%2e%2e/admin/users`, {method: 'GET'})
    assert.equal(f.status, 403)
    assert.equal(((await f.json()) as {error: {rule: string}}).error.rule, 'no-admin')
    const raw = await rawExchange(h.port, 'GET /items/../admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert.match(raw.text, /^HTTP\/1\.1 403/)
    assert.match(raw.text, /"rule":"no-admin"/)
    assert.equal(up.seen.length, seenBefore, 'refused requests never reach the upstream')
    await h.waitFor(() => h.events.filter((e) => e.hook === 'refused').length === 3)
    assert.deepEqual(
      h.events.filter((e) => e.hook === 'refused').map((e) => e.ruleId),
      ['no-delete', 'no-admin', 'no-admin'],
    )
  })

  it('review: 409 with an approval id, then the approved request once, bound to its exact body', async () => {
    const pay = (amount: number) =>
      fetch(`${h.url}/payments`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({amount, to: 'acme'})})
    const first = await pay(5000)
    assert.equal(first.status, 409)
    const err = ((await first.json()) as {error: {code: string; approvalId: string; rule: string; message: string}}).error
    assert.equal(err.code, 'APPROVAL_REQUIRED')
    assert.equal(err.rule, 'large-payment')
    assert.equal(err.approvalId, 'apr-1')
    assert.match(err.message, /hoop approvals approve apr-1/)

    judge.approve(err.approvalId)
    // A different body is a different request: still needs its own approval.
    assert.equal((await pay(5001)).status, 409)
    const ok = await pay(5000)
    assert.equal(ok.status, 201)
    assert.deepEqual(((await ok.json()) as {body: unknown}).body, {amount: 5000, to: 'acme'})
    // One-time: the same request again needs a new approval.
    assert.equal((await pay(5000)).status, 409)
    // The judge saw the parsed JSON body.
    assert.deepEqual(h.judged.find((v) => v.path === '/payments')?.body, {amount: 5000, to: 'acme'})
    // Small payments pass without review; curl with the same engine.
    const small = await curl(['-H', 'content-type: application/json', '--data', '{"amount": 10}', `${h.url}/payments`])
    assert.equal(small.status, 201)
  })

  it('masks JSON fields nested and in arrays, and runs detectors on every string', async () => {
    const f = await fetch(`${h.url}/customer`)
    assert.equal(f.status, 200)
    const text = await f.text()
    const got = JSON.parse(text) as typeof CUSTOMER
    assert.equal(got.customer.email, '****')
    assert.equal(got.customer.name, 'Ann Lee')
    assert.deepEqual(got.items.map((i) => i.card), ['****', '****'])
    assert.deepEqual(got.items.map((i) => i.sku), ['A-1', 'B-2'])
    assert.equal(got.note, 'questions to ****@****')
    assert.match(text, /"bigId":12345678901234567890/, 'untouched values keep their exact text')
    assert.equal(f.headers.get('content-length'), String(Buffer.byteLength(text)))

    // curl: same masking; the upstream was asked for an identity encoding.
    const c = await curl(['--compressed', `${h.url}/customer`])
    assert.equal(c.status, 200)
    assert.ok(!c.body.includes('ann.lee@example.com') && !c.body.includes('4111'), c.body)
    assert.equal(up.seen[up.seen.length - 1].headers['accept-encoding'], 'identity')

    // Without a plan the body is untouched.
    const plain = (await (await fetch(`${h.url}/customer?plain=1`)).json()) as typeof CUSTOMER
    assert.equal(plain.customer.email, CUSTOMER.customer.email)
    const after = () => h.events.filter((e) => e.hook === 'afterStatement' && e.text.startsWith('GET /customer'))
    await h.waitFor(() => after().length === 3)
    assert.deepEqual(after()[0].masked, {'field:$.customer.email': 1, 'field:$.items[*].card': 2, 'entity:email': 1})
    assert.deepEqual(after()[2].masked, {})
    // Session totals: curl's session has ended; its report carries the same counts.
    await h.waitFor(() => h.results.length >= 1)
    assert.equal(h.results[0].maskingReport['field:$.items[*].card'], 2)
  })

  it('refuses to send a masked type it cannot read (gzip) and text without a type is masked', async () => {
    const g = await curl([`${h.url}/gzip`])
    assert.equal(g.status, 502)
    assert.match(g.body, /gzip-encoded and cannot be masked/)
    const n = await curl([`${h.url}/no-type`])
    assert.equal(n.status, 200)
    assert.equal(n.body, 'reach me at ****@****')
  })

  it('injects the bearer token upstream and never forwards the caller\'s Authorization', async () => {
    const r = await curl(['-H', 'Authorization: Bearer caller-own-token', `${h.url}/echo`])
    const echo = JSON.parse(r.body) as {headers: Record<string, string>}
    assert.equal(echo.headers.authorization, 'Bearer upstream-token-xyz')
    assert.equal(echo.headers.host, `127.0.0.1:${up.port}`)
    const f = (await (await fetch(`${h.url}/echo`, {headers: {authorization: 'Basic Y2FsbGVyOnB3'}})).json()) as {headers: Record<string, string>}
    assert.equal(f.headers.authorization, 'Bearer upstream-token-xyz')
    assert.ok(!JSON.stringify(up.seen.map((s) => s.headers)).includes('caller-own-token'))
    assert.ok(!JSON.stringify(up.seen.map((s) => s.headers)).includes('Y2FsbGVyOnB3'))
  })

  it('records requests and responses with Authorization, cookies and configured headers redacted', async () => {
    const r = await curl([
      '-H', 'Authorization: Bearer caller-secret-1',
      '-H', 'Cookie: sid=cookie-secret-2',
      '-H', 'X-Api-Key: apikey-secret-3',
      '-H', 'X-Trace: visible-4',
      `${h.url}/set-cookie?access_token=query-secret-5&page=2`,
    ])
    assert.equal(r.status, 200)
    assert.match(r.headers, /set-cookie: session=upstream-cookie-value/i, 'the client still gets its cookie')
    await h.settle()
    const all = h.records.map((x) => x.text).join('\n---\n')
    for (const secret of ['caller-secret-1', 'cookie-secret-2', 'apikey-secret-3', 'upstream-cookie-value', 'hdr-secret-42', 'query-secret-5', 'upstream-token-xyz']) {
      assert.ok(!all.includes(secret), `${secret} leaked into the recording:\n${all}`)
    }
    const req = h.records.find((x) => x.direction === 'client')!.text
    assert.match(req, /^GET \/set-cookie\?access_token=\[redacted\]&page=2 HTTP\/1\.1/)
    assert.match(req, /Authorization: \[redacted\]/)
    assert.match(req, /Cookie: \[redacted\]/)
    assert.match(req, /X-Api-Key: \[redacted\]/)
    assert.match(req, /X-Trace: visible-4/)
    const resp = h.records.find((x) => x.direction === 'server')!.text
    assert.match(resp, /^HTTP\/1\.1 200/)
    assert.match(resp, /set-cookie: \[redacted\]/i)
    assert.match(resp, /x-upstream-secret: \[redacted\]/i)
    assert.match(resp, /\{"ok":true\}/)
  })

  it('records the masked response body, not the original', async () => {
    await fetch(`${h.url}/customer`).then((r) => r.text())
    await h.waitFor(() => h.records.some((x) => x.direction === 'server'))
    const resp = h.records.filter((x) => x.direction === 'server').map((x) => x.text).join('\n')
    assert.match(resp, /"email": ?"\*\*\*\*"/)
    assert.ok(!resp.includes('ann.lee@example.com'))
  })

  it('streams a chunked response without waiting for its end (pass-through and masked text)', async () => {
    for (const q of ['?plain=1', '']) {
      const f = await fetch(`${h.url}/stream${q}`)
      const reader = f.body!.getReader()
      let got = ''
      // The upstream holds back its last line until released: these reads prove no whole-body buffering.
      while (!got.includes('line 2')) {
        const {value, done} = await reader.read()
        assert.ok(!done, 'ended before the last line was released')
        got += Buffer.from(value).toString()
      }
      up.release()
      for (;;) {
        const {value, done} = await reader.read()
        if (done) break
        got += Buffer.from(value).toString()
      }
      if (q) assert.equal(got, 'line 1: contact bob@example.com\nline 2: nothing here\nline 3: done, mail eve@example.net\n')
      else assert.equal(got, 'line 1: contact ****@****\nline 2: nothing here\nline 3: done, mail ****@****\n')
    }
  })

  it('serves keep-alive and pipelined requests in order on one connection', async () => {
    const req = (line: string, extra = '') => `${line} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`
    const body = '{"amount": 1}'
    const pipeline =
      req('GET /echo?n=1') +
      req('DELETE /items/1') +
      req('POST /items', `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`) +
      body +
      req('POST /items', 'Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n') +
      '3\r\nabc\r\n0\r\n\r\n' +
      req('GET /echo?n=5', 'Connection: close\r\n')
    const r = await rawExchange(h.port, pipeline)
    assert.ok(r.closed)
    const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => Number(m[1]))
    assert.deepEqual(statuses, [200, 403, 201, 201, 200])
    assert.ok(r.text.indexOf('"url":"/echo?n=1"') < r.text.indexOf('"url":"/echo?n=5"'))
    await h.settle()
    assert.equal(h.results.length, 1)
    assert.equal(h.results[0].statements, 5)
    assert.equal(h.results[0].blocked, 1)

    // curl reuses one connection for several URLs.
    const c = await curl([`${h.url}/echo?a=1`, `${h.url}/echo?a=2`, `${h.url}/echo?a=3`])
    assert.equal(c.code, 0)
    await h.settle()
    assert.equal(h.results.length, 2)
    assert.equal(h.results[1].statements, 3)
  })

  it('reads requests delivered one byte at a time (heads, chunked bodies, pipelining)', async () => {
    const body = '{"amount": 2}'
    const text =
      `POST /payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n` +
      'GET /echo?last=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    const sock = connect(h.port)
    const s = await sock
    let got = ''
    s.on('data', (d: Buffer) => (got += d.toString()))
    const ended = new Promise<void>((r) => s.on('close', () => r()))
    for (const byte of Buffer.from(text)) {
      s.write(Buffer.from([byte]))
      await new Promise((r) => setImmediate(r))
    }
    await ended
    assert.deepEqual([...got.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => m[1]), ['201', '200'])
    assert.match(got, /"body":\{"amount":2\}/)
    assert.deepEqual(h.judged.find((v) => v.path === '/payments')?.body, {amount: 2})
  })

  it('reconnects to the target when it closed an idle kept-alive connection', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${h.url}/echo?i=${i}`)
      assert.equal(r.status, 200)
      assert.equal(((await r.json()) as {url: string}).url, `/echo?i=${i}`)
      up.dropIdle()
    }
    const post = await fetch(`${h.url}/items`, {method: 'POST', headers: {'content-type': 'application/json'}, body: '{"a":1}'})
    assert.equal(post.status, 201)
    assert.equal(h.judged.length, 4)
  })

  it('answers malformed requests with 400 and closes; the harness keeps serving', async () => {
    const cases: [string, string | Buffer, number][] = [
      ['garbage', 'GARBAGE\r\n\r\n', 400],
      ['no host', 'GET / HTTP/1.1\r\n\r\n', 400],
      ['smuggling CL+TE', 'POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['bad chunk size', 'POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n', 400],
      ['bad chunk size while streaming', 'POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n2\r\nab\r\nzz\r\n', 400],
      ['oversized head', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`, 431],
      ['binary noise', Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]), 400],
      ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 501],
    ]
    for (const [name, data, status] of cases) {
      const r = await rawExchange(h.port, data)
      assert.ok(r.closed, `${name}: connection closed`)
      assert.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: ${r.text.slice(0, 80)}`)
      assert.match(r.text, /"code":"PROTOCOL_ERROR"/, name)
    }
    const upg = await rawExchange(h.port, 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.deepEqual([...upg.text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => m[1]), ['501', '200'], 'upgrade refused, connection still usable')
    const ok = await curl([`${h.url}/echo`])
    assert.equal(ok.status, 200)
  })

  it('downloads 200 MB byte-exact with bounded memory (curl)', async function () {
    const samples: number[] = []
    const base = process.memoryUsage().rss
    const timer = setInterval(() => samples.push(process.memoryUsage().rss), 50)
    try {
      const r = await sh(`curl -s -S --max-time 60 ${h.url}/big?mb=200 | sha256sum`, {timeoutMs: 90_000})
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.split(' ')[0], up.bigHashes[up.bigHashes.length - 1])
    } finally {
      clearInterval(timer)
    }
    const peak = Math.max(base, ...samples)
    assert.ok(peak - base < 100 * 1024 * 1024, `rss grew by ${Math.round((peak - base) / 1048576)} MiB during a 200 MB transfer`)
    await h.settle()
    const after = h.events.find((e) => e.hook === 'afterStatement' && e.text.startsWith('GET /big'))
    assert.equal(after?.bytes, 200 * 1024 * 1024)
  })

  it('streams a download through fetch byte-exact', async () => {
    const f = await fetch(`${h.url}/big?mb=8`)
    const hash = createHash('sha256')
    for await (const chunk of f.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk)
    assert.equal(hash.digest('hex'), up.bigHashes[up.bigHashes.length - 1])
  })
})

describe('http engine limits and credentials', function () {
  this.timeout(30_000)
  let up: Upstream
  before(async () => {
    up = await startUpstream()
  })
  after(async () => {
    await up.close()
  })

  it('withholds a masked JSON response larger than the limit (502), never sends it unmasked', async () => {
    const h = await startHarness({
      upstreamPort: up.port,
      limits: {maxMaskedJsonBytes: 4096},
      judge: () => allow({columns: [], entities: ['email'], ruleIds: ['m']}),
    })
    try {
      const r = await curl([`${h.url}/large-json`])
      assert.equal(r.status, 502)
      assert.ok(!r.body.includes('@example.com'))
      assert.match(r.body, /exceeds the 4096-byte limit/)
      // Still usable after the refusal.
      assert.equal((await curl([`${h.url}/customer`])).status, 200)
    } finally {
      await h.close()
    }
  })

  it('sends an idempotent request again when a reused target connection closes without answering', async () => {
    // A raw upstream: each odd-numbered connection answers one request, then drops the next one unanswered
    // (the race of a keep-alive timeout); even-numbered connections answer normally.
    let conns = 0
    const raw = net.createServer((sock) => {
      const n = ++conns
      let requests = 0
      sock.on('data', () => {
        requests++
        if (n % 2 === 1 && requests === 2) return sock.destroy()
        sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nconn ${n}`)
      })
    })
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r))
    const h = await startHarness({upstreamPort: (raw.address() as net.AddressInfo).port})
    try {
      const pipelined = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n'
      const r1 = await rawExchange(h.port, pipelined + 'GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      assert.deepEqual([...r1.text.matchAll(/conn (\d)/g)].map((m) => m[1]), ['1', '2'])
      // A POST is not repeated: the client gets 502 rather than a possible double effect.
      const r2 = await rawExchange(h.port, pipelined + 'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      assert.deepEqual([...r2.text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => m[1]), ['200', '502'])
    } finally {
      await h.close()
      await new Promise<void>((r) => raw.close(() => r()))
    }
  })

  it('basic auth from the connection secret; forwardAuthorization passes the caller\'s header', async () => {
    const h = await startHarness({upstreamPort: up.port, target: {auth: 'basic', username: 'svc', token: 's3cret'}})
    const h2 = await startHarness({upstreamPort: up.port, target: {forwardAuthorization: true, token: undefined}})
    try {
      const a = JSON.parse((await curl(['-H', 'Authorization: Bearer mine', `${h.url}/echo`])).body) as {headers: Record<string, string>}
      assert.equal(a.headers.authorization, 'Basic ' + Buffer.from('svc:s3cret').toString('base64'))
      const b = JSON.parse((await curl(['-H', 'Authorization: Bearer mine', `${h2.url}/echo`])).body) as {headers: Record<string, string>}
      assert.equal(b.headers.authorization, 'Bearer mine')
    } finally {
      await h.close()
      await h2.close()
    }
  })

  it('answers 502 when the target is unreachable and 503 when the audit write fails', async () => {
    const dead = await startHarness({upstreamPort: 1})
    const noAudit = await startHarness({upstreamPort: up.port, audit: 'strict', beforeForward: () => Promise.reject(new Error('disk full'))})
    try {
      const r = await curl([`${dead.url}/echo`])
      assert.equal(r.status, 502)
      assert.match(r.body, /TARGET_REFUSED/)
      const seen = up.seen.length
      const a = await curl([`${noAudit.url}/echo`])
      assert.equal(a.status, 503)
      assert.match(a.body, /"code":"AUDIT_UNAVAILABLE"/)
      assert.equal(up.seen.length, seen, 'nothing forwarded without an audit record')
    } finally {
      await dead.close()
      await noAudit.close()
    }
  })

  it('hold mode: a request whose record fails to commit was forwarded, but no byte of its response reaches the client', async () => {
    // The record fails only after the target has answered: the response is there, and withheld.
    let fail!: (err: Error) => void
    const h = await startHarness({upstreamPort: up.port, beforeForward: () => new Promise((_resolve, reject) => (fail = reject))})
    try {
      const seen = up.seen.length
      const sock = net.connect(h.port, '127.0.0.1')
      const got: Buffer[] = []
      sock.on('data', (d: Buffer) => got.push(d))
      const closed = new Promise((r) => sock.on('close', r))
      sock.write('GET /echo?marker=withheld-body HTTP/1.1\r\nHost: x\r\n\r\n')
      while (up.seen.length === seen) await new Promise((r) => setTimeout(r, 10))
      await new Promise((r) => setTimeout(r, 100))
      assert.equal(Buffer.concat(got).length, 0, 'nothing before the record settles')
      fail(new Error('disk full'))
      await closed
      const text = Buffer.concat(got).toString('latin1')
      assert.match(text, /^HTTP\/1\.1 503 /)
      assert.match(text, /"code":"AUDIT_UNAVAILABLE"/)
      assert.match(text, /Connection: close/i)
      assert.doesNotMatch(text, /withheld-body/, 'the target\'s response stays withheld')
    } finally {
      await h.close()
    }
  })

  it('uploads stream through (chunked and sized, with 100-continue); a refused upload keeps or closes the connection safely', async () => {
    const judge = new Judge()
    const h = await startHarness({upstreamPort: up.port, judge: (v) => judge.judge(v)})
    const dir = mkdtempSync(join(tmpdir(), 'hoop-http-'))
    try {
      // Over 1 MiB: curl then asks for 100-continue by itself.
      const data = randomBytes(2 * 1024 * 1024)
      const file = join(dir, 'up.bin')
      writeFileSync(file, data)
      const want = createHash('sha256').update(data).digest('hex')
      for (const extra of [[], ['-H', 'Transfer-Encoding: chunked'], ['-H', 'Expect: 100-continue']]) {
        const r = await curl(['--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream', ...extra, `${h.url}/upload`])
        assert.equal(r.status, 200, extra.join(' '))
        assert.deepEqual(JSON.parse(r.body), {bytes: data.length, sha256: want})
      }
      // A JSON body over the inspection limit (chunked, so its size is unknown up front): the
      // judge is told it was not seen, and the upstream still gets every byte.
      const big = JSON.stringify({blob: 'x'.repeat(1024 * 1024 + 10)})
      const bigFile = join(dir, 'big.json')
      writeFileSync(bigFile, big)
      const j = await curl(['--data-binary', `@${bigFile}`, '-H', 'content-type: application/json', '-H', 'Transfer-Encoding: chunked', `${h.url}/upload`])
      assert.equal(j.status, 200)
      assert.deepEqual(JSON.parse(j.body), {bytes: big.length, sha256: createHash('sha256').update(big).digest('hex')})
      const seen = h.judged.filter((v) => v.path === '/upload')
      assert.deepEqual(seen.map((v) => v.bodyStatus), ['not-inspected', 'not-inspected', 'not-inspected', 'too-large'])
      assert.equal(seen[3].body, undefined)

      // Refused with a body the client holds back for 100-continue: answered, then closed.
      const blocked = await rawExchange(h.port, 'POST /admin/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n')
      assert.match(blocked.text, /^HTTP\/1\.1 403 [^]*Connection: close/)
      assert.ok(blocked.closed)
      // Refused with the body already sent: the body is skipped and the next request served.
      const next = await rawExchange(h.port, 'POST /admin/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      assert.deepEqual([...next.text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => m[1]), ['403', '200'])
    } finally {
      rmSync(dir, {recursive: true, force: true})
      await h.close()
    }
  })

  it('HTTP/1.0 clients get a close-delimited body instead of chunks', async () => {
    const judge = new Judge()
    const h = await startHarness({upstreamPort: up.port, judge: (v) => judge.judge(v)})
    try {
      const p = rawExchange(h.port, 'GET /stream?plain=1 HTTP/1.0\r\n\r\n')
      // /stream waits for release before its last line.
      await h.waitFor(() => up.seen.some((s) => s.url === '/stream?plain=1'))
      up.release()
      const r = await p
      assert.ok(r.closed)
      assert.match(r.text, /^HTTP\/1\.0 200/)
      assert.ok(!/transfer-encoding/i.test(r.text))
      assert.ok(r.text.endsWith('line 1: contact bob@example.com\nline 2: nothing here\nline 3: done, mail eve@example.net\n'), r.text)
    } finally {
      await h.close()
    }
  })
})
