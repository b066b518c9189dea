// Test harness: a TCP listener on 127.0.0.1:0 whose sockets are handed to runMysqlSession, with the
// target reached by a plain net.connect to the real MariaDB (no gateway, no agent), and a judge
// built from a literal table or from the real policy module.
import {strict as assert} from 'node:assert'
import {execFile} from 'node:child_process'
import * as net from 'node:net'
import {Duplex} from 'node:stream'
import {StatementGate, type Verdict as StatementVerdict} from '../../../src/engines/gate.js'
import {runMysqlSession, type MysqlSessionOptions, type MysqlSessionResult} from '../../../src/engines/mysql/session.js'
import type {MaskPlan} from '../../../src/masking/types.js'
import {CAP} from '../../../src/protocol/mysql/constants.js'
import {encodePacket, PacketFramer, type Packet} from '../../../src/protocol/mysql/framer.js'
import {encodeHandshakeResponse} from '../../../src/protocol/mysql/messages.js'
import {silentLogger} from '../../../src/shared/log.js'
import {connect, serveEngine} from '../../helpers/engine-server.js'

export const MYSQL_PORT = 3306

export interface HarnessEvent {
  hook: 'beforeForward' | 'afterStatement' | 'refused'
  sql: string
  effect: string
  rows?: number
  error?: string
  masked?: Record<string, number>
}

export interface Harness {
  port: number
  events: HarnessEvent[]
  results: MysqlSessionResult[]
  settle(): Promise<void>
  close(): Promise<void>
}

export interface HarnessOptions {
  judge?: (sql: string) => StatementVerdict | Promise<StatementVerdict>
  target?: Partial<MysqlSessionOptions['target']>
  openUpstream?: () => Promise<Duplex>
  maxPacketBytes?: number
  /** The analyser's session view, per client session (e.g. from the policy judge). */
  sqlSession?: () => MysqlSessionOptions['sqlSession']
}

export const noMask: MaskPlan = {columns: [], entities: [], ruleIds: []}
export const allow = (mask: MaskPlan = noMask): StatementVerdict => ({effect: 'allow', ruleId: 'r-allow', mask})

export function tableJudge(rows: [RegExp, StatementVerdict][], fallback: StatementVerdict = allow()): (sql: string) => StatementVerdict {
  return (sql) => rows.find(([re]) => re.test(sql))?.[1] ?? fallback
}

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const events: HarnessEvent[] = []
  const judge = o.judge ?? (() => allow())
  const srv = await serveEngine<MysqlSessionResult>((client) =>
    runMysqlSession({
      client,
      openUpstream: o.openUpstream ?? (() => connect(MYSQL_PORT)),
      target: {host: '127.0.0.1', tls: {mode: 'disable'}, ...o.target},
      logger: silentLogger,
      limits: o.maxPacketBytes ? {maxPacketBytes: o.maxPacketBytes} : undefined,
      ...(o.sqlSession ? {sqlSession: o.sqlSession()} : {}),
      gate: new StatementGate(
        {
        judge: async (sql) => judge(sql),
        beforeForward: async (info) => {
          events.push({hook: 'beforeForward', sql: info.text, effect: info.verdict.effect})
        },
        afterStatement: (info) => events.push({hook: 'afterStatement', sql: info.text, effect: info.verdict.effect, rows: info.rows, error: info.error, masked: info.masked}),
        refused: (info) => events.push({hook: 'refused', sql: info.text, effect: info.verdict.effect}),
        },
        silentLogger,
      ),
    }),
  )
  const {port, results, settle} = srv
  return {
    port,
    events,
    results,
    settle,
    close: srv.close,
  }
}

export {connect}

/**
 * A link to the real MariaDB shaped like the gateway's relay streams (half-open allowed, the
 * target's close pushed as the end of the readable side, nothing emitted until the engine reads),
 * with a tap for the tests: what the engine wrote, a rewrite of what the target sends, and bytes
 * injected toward the engine as if the target had sent them.
 */
export class TappedLink extends Duplex {
  /** Chunks the engine wrote towards the target. */
  readonly written: Buffer[] = []
  /** Rewrites each chunk from the target before the engine sees it. */
  fromTarget: ((chunk: Buffer) => Buffer) | undefined
  /** While set, the target takes nothing more (writes stay in this stream's buffer): a slow target. */
  private stalled: (() => void)[] | undefined

  constructor(private readonly sock: net.Socket) {
    super({allowHalfOpen: true})
    sock.on('data', (d: Buffer) => {
      if (!this.push(this.fromTarget ? this.fromTarget(d) : d)) sock.pause()
    })
    sock.on('end', () => this.push(null))
    sock.on('error', (e) => this.destroy(e))
  }

  /** Opens a tapped link to the real MariaDB (an `openUpstream` for the harness). */
  static async open(links: TappedLink[]): Promise<TappedLink> {
    const l = new TappedLink((await connect(MYSQL_PORT)) as net.Socket)
    links.push(l)
    return l
  }

  override _read(): void {
    this.sock.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(chunk)
    if (this.stalled) this.stalled.push(() => this.sock.write(chunk, cb))
    else this.sock.write(chunk, cb)
  }

  /** The target stops taking bytes until `unstall()`. */
  stall(): void {
    this.stalled ??= []
  }

  unstall(): void {
    const pending = this.stalled ?? []
    this.stalled = undefined
    for (const w of pending) w()
  }

  override _final(cb: () => void): void {
    this.sock.end()
    cb()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sock.destroy()
    cb(err)
  }

  /** Bytes towards the engine, as if the target had sent them. */
  inject(bytes: Buffer): void {
    this.push(bytes)
  }

  /** The target goes away: its socket is dropped and the engine sees the end of the link. */
  hangUp(): void {
    this.sock.destroy()
    this.push(null)
  }
}

/** Runs the real `mysql` client against the harness (batch mode, no password). */
export function mysql(port: number, sql: string, opts: {db?: string; user?: string; extra?: string[]} = {}): Promise<{stdout: string; stderr: string; code: number}> {
  return new Promise((resolve) => {
    const args = ['-h', '127.0.0.1', '-P', String(port), '-u', opts.user ?? 'root', '--protocol=TCP', '--ssl=0', '-N', '-B', '--connect-timeout=5', ...(opts.extra ?? [])]
    if (opts.db !== '') args.push(opts.db ?? 'test')
    const child = execFile('mysql', [...args, '-e', sql], {timeout: 20_000, env: {...process.env, MYSQL_PWD: ''}}, (err, stdout, stderr) =>
      resolve({stdout, stderr, code: err ? ((err as {code?: number}).code ?? 1) : 0}),
    )
    child.stdin?.end()
  })
}

/** The `mysql` client reading a script from stdin (several statements in one session, --force continues after errors). */
export function mysqlScript(port: number, script: string, opts: {db?: string} = {}): Promise<{stdout: string; stderr: string; code: number}> {
  return new Promise((resolve) => {
    const child = execFile(
      'mysql',
      ['-h', '127.0.0.1', '-P', String(port), '-u', 'root', '--protocol=TCP', '--ssl=0', '-N', '-B', '--force', '--connect-timeout=5', opts.db ?? 'test'],
      {timeout: 20_000},
      (err, stdout, stderr) => resolve({stdout, stderr, code: err ? ((err as {code?: number}).code ?? 1) : 0}),
    )
    child.stdin?.end(script)
  })
}

// ---------------------------------------------------------------------------------------------
// A raw protocol client (malformed input, floods): logs in as 'raw' and reads packets one by one.

export class RawClient {
  private framer = new PacketFramer(1 << 24)
  private queue: Packet[] = []
  private waiters: (() => void)[] = []
  closed = false
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.framer.push(d, (p) => this.queue.push({...p, payload: Buffer.from(p.payload)}))
      this.waiters.splice(0).forEach((w) => w())
    })
    sock.on('close', () => {
      this.closed = true
      this.waiters.splice(0).forEach((w) => w())
    })
    sock.on('error', () => {})
  }

  /** `o.username` 'root' (empty password) logs in to MariaDB directly too; `o.caps` adds capabilities (MULTI_RESULTS for CALL). */
  static async open(port: number, o: {username?: string; caps?: number} = {}): Promise<RawClient> {
    const sock = net.connect(port, '127.0.0.1')
    await new Promise((r) => sock.once('connect', r))
    const c = new RawClient(sock)
    await c.read() // greeting
    const caps = CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH | CAP.LONG_PASSWORD | CAP.CONNECT_WITH_DB | (o.caps ?? 0)
    const username = o.username ?? 'raw'
    sock.write(encodePacket(encodeHandshakeResponse({capabilities: caps, maxPacket: 1 << 24, charset: 45, username, authResponse: Buffer.alloc(0), database: 'test', authPlugin: 'mysql_native_password'}), 1).bytes)
    const ok = await c.read()
    assert.equal(ok?.payload[0], 0x00)
    return c
  }

  async read(): Promise<Packet | undefined> {
    for (;;) {
      const p = this.queue.shift()
      if (p) return p
      if (this.closed) return undefined
      await new Promise<void>((r) => this.waiters.push(r))
    }
  }

  /** Reads packets until the connection closes or an ERR/OK-like end of a simple answer arrives. */
  async untilClose(): Promise<Packet[]> {
    const all: Packet[] = []
    for (;;) {
      const p = await this.read()
      if (!p) return all
      all.push(p)
    }
  }
}
