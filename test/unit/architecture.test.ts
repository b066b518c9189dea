// Which folder of src/ may import which (docs/architecture.md): dependencies point one way, from the
// roles (gateway, agent, client) through the engines down to pure parts. A codec never imports a
// socket; policy never imports a protocol; nothing in src/ imports a command.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync} from 'node:fs'
import {join, relative, resolve} from 'node:path'

const SRC = resolve(import.meta.dirname, '../../src')

/** Folder -> the other src/ folders it may import from. */
const ALLOWED: Record<string, readonly string[]> = {
  shared: [],
  protocol: ['shared'],
  masking: ['shared'],
  relay: ['shared'],
  store: ['shared'],
  policy: ['shared', 'identity'],
  sql: ['policy', 'masking', 'shared'],
  identity: ['shared', 'store'],
  audit: ['shared', 'store', 'identity'],
  approvals: ['policy', 'identity', 'audit', 'store', 'shared'],
  // Approval notifications: webhooks fed by the approval service's events.
  notify: ['approvals', 'identity', 'shared'],
  engines: ['protocol', 'sql', 'policy', 'masking', 'audit', 'approvals', 'identity', 'store', 'relay', 'shared'],
  // The web console: login, sessions (kept on the store) and headers; its data calls go through the gateway's router, handed in.
  console: ['identity', 'store', 'shared'],
  gateway: ['console', 'notify', 'engines', 'protocol', 'sql', 'policy', 'masking', 'audit', 'approvals', 'identity', 'store', 'relay', 'shared'],
  // `hoop agent` dials the gateway with the client's dialer.
  agent: ['client', 'relay', 'shared'],
  // Commands run on the gateway host with --data-dir use the gateway's own admin code.
  client: ['gateway', 'notify', 'protocol', 'sql', 'policy', 'audit', 'approvals', 'identity', 'store', 'relay', 'shared'],
}

/** Node built-ins that open sockets: never in a codec, a policy or an analyser. */
const NETWORK = ['node:net', 'node:tls', 'node:http', 'node:https', 'node:dgram', 'ws']
const NO_NETWORK = ['protocol', 'policy', 'sql', 'masking']

function tsFiles(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/^(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1])
}

describe('architecture: import directions', () => {
  const files = tsFiles(SRC)

  it('every src folder is in the table', () => {
    const folders = new Set(files.map((f) => relative(SRC, f).split('/')[0]))
    for (const f of folders) if (!f.endsWith('.ts')) assert.ok(f in ALLOWED, `src/${f} has no entry in the import table (test/unit/architecture.test.ts)`)
  })

  it('each folder imports only the folders below it', () => {
    const bad: string[] = []
    for (const file of files) {
      const rel = relative(SRC, file)
      const from = rel.split('/')[0]
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue
        const target = relative(SRC, resolve(join(SRC, rel, '..'), spec))
        if (target.startsWith('..')) {
          bad.push(`src/${rel} imports ${spec} (outside src/)`)
          continue
        }
        const to = target.split('/')[0]
        if (to !== from && !ALLOWED[from]?.includes(to)) bad.push(`src/${rel} imports src/${target} (${from} may not import ${to})`)
      }
    }
    assert.deepEqual(bad, [])
  })

  it('codecs, policy, analysers and maskers open no sockets', () => {
    const bad: string[] = []
    for (const file of files) {
      const rel = relative(SRC, file)
      if (!NO_NETWORK.includes(rel.split('/')[0])) continue
      for (const spec of importsOf(file)) if (NETWORK.includes(spec)) bad.push(`src/${rel} imports ${spec}`)
    }
    assert.deepEqual(bad, [])
  })
})
