// A real RFC 3161 timestamp authority for tests: a CA and a TSA certificate (extendedKeyUsage
// critical timeStamping) made with Debian's openssl in a temp dir, and a tiny HTTP server that
// hands each request's DER to `openssl ts -reply` and returns its response. No mock: the tokens
// are what an openssl TSA signs.
import {execFile} from 'node:child_process'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'

const run = promisify(execFile)

export interface LocalTsa {
  url: string
  dir: string
  /** The CA certificate (PEM file) that issued the TSA's certificate. */
  caFile: string
  requests: number
  close(): Promise<void>
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, {cwd: dir})
}

/** `key`: the TSA's key type (the CA is RSA either way). */
export async function startLocalTsa(opts: {key?: 'ec' | 'rsa'; name?: string} = {}): Promise<LocalTsa> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-tsa-'))
  const name = opts.name ?? 'Test TSA'
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', `/CN=${name} CA`, '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  const keyArgs = opts.key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
  await openssl(dir, 'req', ...keyArgs, '-nodes', '-keyout', 'tsa.key', '-out', 'tsa.csr', '-subj', `/CN=${name}`)
  writeFileSync(join(dir, 'ext.cnf'), 'extendedKeyUsage=critical,timeStamping\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n')
  await openssl(dir, 'x509', '-req', '-in', 'tsa.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tsa.pem', '-days', '2', '-extfile', 'ext.cnf')
  writeFileSync(join(dir, 'tsaserial'), '01\n')
  writeFileSync(
    join(dir, 'tsa.cnf'),
    `[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = ${dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`,
  )
  let n = 0
  const tsa: LocalTsa = {url: '', dir, caFile: join(dir, 'ca.pem'), requests: 0, close: async () => {}}
  // openssl ts -reply serialises on the serial file: one request at a time.
  let queue = Promise.resolve()
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      queue = queue.then(async () => {
        const id = ++n
        tsa.requests++
        const q = join(dir, `req-${id}.tsq`)
        const r = join(dir, `resp-${id}.tsr`)
        writeFileSync(q, Buffer.concat(parts))
        try {
          await openssl(dir, 'ts', '-reply', '-config', join(dir, 'tsa.cnf'), '-queryfile', q, '-out', r)
          const body = readFileSync(r)
          res.writeHead(200, {'content-type': 'application/timestamp-reply', 'content-length': body.length}).end(body)
        } catch (err) {
          res.writeHead(500).end(String(err))
        }
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  tsa.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tsa`
  tsa.close = async () => {
    await new Promise((r) => server.close(r))
    rmSync(dir, {recursive: true, force: true})
  }
  return tsa
}

/** `openssl ts -verify` of a token (DER) against a SHA-256 digest and the CA: true when openssl says OK. */
export async function opensslVerifies(tsa: LocalTsa, token: Buffer, digestHex: string): Promise<boolean> {
  const f = join(tsa.dir, `token-${Date.now()}-${Math.random().toString(36).slice(2)}.der`)
  writeFileSync(f, token)
  try {
    const {stdout} = await run('openssl', ['ts', '-verify', '-token_in', '-in', f, '-digest', digestHex, '-CAfile', tsa.caFile])
    return /Verification: OK/.test(stdout)
  } catch {
    return false
  }
}
