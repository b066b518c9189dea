// Starts a real `hoop gateway` process with a config and data dir, and makes the first admin
// credential the way a user would (locally, with --data-dir).
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {type Proc, runHoop, spawnHoop, tempDir} from './cli.js'

export interface GatewayProc {
  proc: Proc
  url: string
  dataDir: string
  configFile: string
  dir: string
  stop(): Promise<void>
  cleanup(): void
}

export async function startGatewayProc(configYaml: string, opts: {dataDir?: string; dir?: string; extraArgs?: string[]; listen?: string; env?: Record<string, string>} = {}): Promise<GatewayProc> {
  const tmp = opts.dir ? {path: opts.dir, cleanup() {}} : tempDir('hoop-gw-')
  const dataDir = opts.dataDir ?? join(tmp.path, 'data')
  const configFile = join(tmp.path, 'gateway.yaml')
  writeFileSync(configFile, configYaml)
  const proc = spawnHoop(['gateway', '--config', configFile, '--data-dir', dataDir, '--listen', opts.listen ?? '127.0.0.1:0', ...(opts.extraArgs ?? [])], {env: opts.env})
  const m = await proc.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
  return {
    proc,
    url: m[1],
    dataDir,
    configFile,
    dir: tmp.path,
    async stop() {
      await proc.stop('SIGTERM')
    },
    cleanup: tmp.cleanup,
  }
}

export async function createSecret(kind: 'agents' | 'service-accounts', name: string, dataDir: string, groups: string[] = []): Promise<string> {
  const r = await runHoop(['admin', kind, 'create', name, '--data-dir', dataDir, '--json', ...groups.flatMap((g) => ['--group', g])])
  if (r.code !== 0) throw new Error(`admin ${kind} create failed: ${r.stderr}${r.stdout}`)
  return (JSON.parse(r.stdout) as {token: string}).token
}

/**
 * A replica's config on the shared PostgreSQL store (URL in HOOP_STORE_URL): the connection "pg" to
 * the local server's database `test`, served by the agent "db-agent", and the given policy rules
 * (YAML list items, indented four spaces).
 */
export function sharedStoreConfig(rules: string): string {
  return `store:
  postgres:
    url: {env: HOOP_STORE_URL}
connections:
  - {name: pg, type: postgres, target: 127.0.0.1:5432, agent: db-agent, database: test, username: postgres}
policy:
  version: 1
  rules:
${rules}`
}

/**
 * Waits until a gateway's /metrics (loopback callers need no token) counts `want` agent links. The
 * agent logs "connected" when its handshake completes, a moment the gateway's count may trail when
 * a proxy sits between them; the assertion names the count last seen.
 */
export async function waitForAgentLinks(gw: GatewayProc, want: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let seen = ''
  for (;;) {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    seen = /^hoop_agent_links (\d+)$/m.exec(text)?.[1] ?? 'no hoop_agent_links line'
    if (seen === String(want)) return
    if (Date.now() > deadline) throw new Error(`${gw.url} counts ${seen} agent links, not ${want}, after ${timeoutMs} ms; its log:\n${gw.proc.stderr().split('\n').filter((l) => /agent/.test(l)).join('\n')}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
