// Credential injection, tested honestly: a second PostgreSQL instance (initdb into a temp dir)
// whose pg_hba demands scram-sha-256, md5 and TLS. The local psql never knows a password; the
// engine logs in with the connection's stored secret.
import {strict as assert} from 'node:assert'
import {execFileSync} from 'node:child_process'
import {chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync} from 'node:fs'
import * as net from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {psql, startHarness, type Harness, type HarnessOptions} from './harness.js'

function pgBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort()
  return join('/usr/lib/postgresql', versions[versions.length - 1], 'bin', name)
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

function asPostgres(cmd: string, args: string[]): string {
  const isRoot = process.getuid?.() === 0
  return execFileSync(isRoot ? 'runuser' : cmd, isRoot ? ['-u', 'postgres', '--', cmd, ...args] : args, {stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000}).toString()
}

describe('pg engine: credential injection (scram-sha-256, md5, TLS)', function () {
  let dir: string
  let port: number
  let cert: string
  const harnesses: Harness[] = []

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'hoop-pg-'))
    const data = join(dir, 'data')
    if (process.getuid?.() === 0) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), Number(execFileSync('id', ['-g', 'postgres']).toString().trim()))
    port = await freePort()
    asPostgres(pgBin('initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'])
    // A self-signed certificate for "localhost" / 127.0.0.1.
    asPostgres('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(data, 'server.key'), '-out', join(data, 'server.crt')])
    cert = readFileSync(join(data, 'server.crt'), 'utf8')
    writeFileSync(
      join(dir, 'hba'),
      [
        'local all all trust',
        'host all postgres 127.0.0.1/32 trust',
        'hostssl all tls_user 127.0.0.1/32 scram-sha-256',
        'host all scram_user 127.0.0.1/32 scram-sha-256',
        'host all md5_user 127.0.0.1/32 md5',
        'host all pw_user 127.0.0.1/32 password',
      ].join('\n') + '\n',
    )
    appendFileSync(join(data, 'postgresql.conf'), `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nssl = on\nhba_file = '${join(dir, 'hba')}'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 20\n`)
    asPostgres(pgBin('pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '20', 'start'])
    asPostgres('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c',
      "SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_user LOGIN PASSWORD 's3cret-scram'; CREATE ROLE tls_user LOGIN PASSWORD 'tls-pw'; CREATE ROLE pw_user LOGIN PASSWORD 'plain-pw'; SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw';"])
  })

  after(async () => {
    for (const h of harnesses) await h.close()
    try {
      asPostgres(pgBin('pg_ctl'), ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop'])
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  const gw = async (target: HarnessOptions['target']) => {
    const h = await startHarness({upstreamPort: port, target: {database: 'postgres', ...target}})
    harnesses.push(h)
    return h
  }

  it('logs in with SCRAM-SHA-256 using the stored secret; the client sends no password', async () => {
    const h = await gw({username: 'scram_user', password: 's3cret-scram'})
    const r = await psql(h.port, 'select current_user', {user: 'developer', db: 'whatever'})
    assert.equal(r.stderr, '')
    assert.equal(r.stdout.trim(), 'scram_user')
  })

  it('logs in with md5 and with a cleartext password request', async () => {
    const h = await gw({username: 'md5_user', password: 'md5-pw'})
    assert.equal((await psql(h.port, 'select current_user')).stdout.trim(), 'md5_user')
    const h2 = await gw({username: 'pw_user', password: 'plain-pw'})
    assert.equal((await psql(h2.port, 'select current_user')).stdout.trim(), 'pw_user')
  })

  it('a wrong stored secret gives the client the server\'s FATAL error, never the password', async () => {
    const h = await gw({username: 'scram_user', password: 'wrong-password-xyz'})
    const r = await psql(h.port, 'select 1')
    assert.match(r.stderr, /password authentication failed for user "scram_user"/)
    assert.ok(!r.stderr.includes('wrong-password-xyz'))
  })

  it('TLS sslmode=require encrypts the target link', async () => {
    const h = await gw({username: 'tls_user', password: 'tls-pw', tls: {mode: 'require'}})
    const r = await psql(h.port, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')
    assert.equal(r.stderr, '')
    assert.equal(r.stdout.trim(), 't')
  })

  it('TLS verify-full accepts the right CA and host name and refuses a wrong host name', async () => {
    const ok = await gw({username: 'tls_user', password: 'tls-pw', tls: {mode: 'verify-full', ca: cert, serverName: 'localhost'}})
    assert.equal((await psql(ok.port, 'select current_user')).stdout.trim(), 'tls_user')
    const bad = await gw({username: 'tls_user', password: 'tls-pw', tls: {mode: 'verify-full', ca: cert, serverName: 'db.example.com'}})
    const r = await psql(bad.port, 'select 1')
    assert.match(r.stderr, /TLS to the target failed/)
    const noCa = await gw({username: 'tls_user', password: 'tls-pw', tls: {mode: 'verify-full', serverName: 'localhost'}})
    assert.match((await psql(noCa.port, 'select 1')).stderr, /TLS to the target failed/)
  })
})
