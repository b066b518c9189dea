// The raw TCP engine with a store that refuses writes (issue 13: a full disk during raw TCP
// sessions crashed the gateway with a store error thrown from a socket 'data' listener). Real
// parts: a relay stream pair over a loopback WebSocket, a TCP echo target, a SQLite store whose
// database may not grow (PRAGMA max_page_count stands in for a full disk).
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {mkdtempSync, rmSync} from 'node:fs'
import {connect, createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {SessionRecorder} from '../../../src/audit/recorder.js'
import {runTcpSession, type TcpSessionResult} from '../../../src/engines/tcp/session.js'
import type {RelayStream} from '../../../src/relay/mux.js'
import type {HoopError} from '../../../src/shared/errors.js'
import {SqliteStore} from '../../../src/store/sqlite.js'
import {dial, randomBlock, readAll, startServer, type Server as RelayServer} from '../relay/_pair.js'

describe('raw TCP engine when recording fails', function () {
  this.timeout(60_000)
  let relay: RelayServer
  let echoServer: Server
  let echoPort: number
  let dir: string
  let store: SqliteStore
  const accepted: RelayStream[] = []
  const waiters: Array<(s: RelayStream) => void> = []
  const targets = new Set<Socket>()

  before(async () => {
    relay = await startServer({
      onOpen: (s) => {
        s.accept()
        const w = waiters.shift()
        if (w) w(s)
        else accepted.push(s)
      },
    })
    echoServer = createServer((s) => {
      targets.add(s)
      s.on('error', () => {})
      s.pipe(s)
    })
    echoServer.listen(0, '127.0.0.1')
    await once(echoServer, 'listening')
    echoPort = (echoServer.address() as {port: number}).port
  })
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-tcp-rec-'))
    store = new SqliteStore(dir)
  })
  afterEach(() => {
    store.close()
    rmSync(dir, {recursive: true, force: true})
  })
  after(async () => {
    for (const s of targets) s.destroy()
    echoServer.close()
    await relay.close()
  })

  /** A session: the client's relay stream, the gateway's end, and the engine running on it. */
  async function session(recorder: SessionRecorder): Promise<{client: RelayStream; done: Promise<TcpSessionResult>}> {
    const {client: mux} = await dial(relay)
    const gatewaySide = new Promise<RelayStream>((resolve) => waiters.push(resolve))
    const client = mux.open({connection: 'raw'})
    const upstream = connect(echoPort, '127.0.0.1')
    await once(upstream, 'connect')
    const done = runTcpSession(await gatewaySide, upstream, {agent: 'embedded', recorder})
    return {client, done}
  }

  it('keeps carrying bytes both ways while the store refuses the recording', async () => {
    const recorder = new SessionRecorder({db: store.db, sessionId: 'ses_TTTTTTTTTTTT', connection: 'raw', connectionType: 'tcp'})
    // The disk is full from the start of the session: no page may be added.
    store.db.pragma(`max_page_count = ${store.db.pragma('page_count', {simple: true}) as number}`)
    const {client, done} = await session(recorder)
    const payload = randomBlock(4 * 1024 * 1024, 13)
    const back = readAll(client)
    client.end(payload)
    const echoed = await back
    assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(payload).digest('hex'))
    const result = await done
    assert.equal(result.bytesUp, payload.length)
    assert.equal(result.bytesDown, payload.length)
    assert.equal(recorder.failed, true)
    const summary = recorder.finish()
    assert.match(summary.failed ?? '', /database or disk is full/)
    assert.equal(summary.chunks, 0)
    assert.equal(summary.droppedBytes, 2 * payload.length)
  })

  it('a listener that throws anyway ends the session with INTERNAL, not the process', async () => {
    const recorder = new SessionRecorder({db: store.db, sessionId: 'ses_XXXXXXXXXXXX'})
    recorder.record = () => {
      throw new Error('recorder bug')
    }
    const {client, done} = await session(recorder)
    const failed = new Promise<HoopError>((resolve) => client.once('error', (err) => resolve(err as HoopError)))
    client.write('hello')
    const err = await failed
    assert.equal(err.code, 'INTERNAL')
    const result = await done
    assert.equal(result.reason, 'internal error in the client data listener')
  })
})
