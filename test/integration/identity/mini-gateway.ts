// A stand-in for the gateway's HTTP surface, built on the real identity runtime: the runtime's
// routes first (dev IdP under /oidc), then /.well-known/hoop-configuration and /v1/whoami shaped
// like the gateway's. Lets identity be tested end to end before and apart from the relay.
import {mkdtempSync, rmSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createIdentityRuntime, type IdentityRuntime} from '../../../src/identity/runtime.js'
import {parseGatewayConfig} from '../../../src/shared/config.js'
import {HoopError} from '../../../src/shared/errors.js'
import {silentLogger} from '../../../src/shared/log.js'
import {SqliteStore} from '../../../src/store/sqlite.js'

export interface MiniGateway {
  url: string
  runtime: IdentityRuntime
  store: SqliteStore
  /** Every identity the whoami route verified, in order. */
  seen: string[]
  close(): Promise<void>
}

export async function startMiniGateway(configYaml: string, dev: boolean): Promise<MiniGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hoop-id-gw-'))
  const store = new SqliteStore(dataDir)
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const runtime = await createIdentityRuntime({config: parseGatewayConfig(configYaml, 'gateway.yaml'), store, logger: silentLogger, publicUrl: url, dev})
  const seen: string[] = []
  server.on('request', async (req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, {'content-type': 'application/json'})
      res.end(JSON.stringify(body))
    }
    try {
      if (await runtime.handleHttp(req, res)) return
      const path = (req.url ?? '/').split('?')[0]
      if (path === '/.well-known/hoop-configuration') return json(200, {gateway: url, auth: runtime.publicSettings()})
      if (path === '/v1/whoami') {
        const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
        if (!m) throw new HoopError('NOT_LOGGED_IN', 'no bearer')
        const id = await runtime.authenticator.authenticate(m[1])
        seen.push(id.name)
        return json(200, id)
      }
      json(404, {error: {code: 'NOT_FOUND', message: path}})
    } catch (err) {
      const e = err instanceof HoopError ? err : new HoopError('INTERNAL', String(err))
      json(e.code === 'INTERNAL' ? 500 : 401, {error: {code: e.code, message: e.message}})
    }
  })
  return {
    url,
    runtime,
    store,
    seen,
    async close() {
      await runtime.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      store.close()
      rmSync(dataDir, {recursive: true, force: true})
    },
  }
}
