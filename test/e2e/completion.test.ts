// Shell completion of connection names (issue 17 item 6): `hoop connections --names` asks the gateway
// for the caller's connections, and the bash snippet from `hoop connections --completion bash`
// completes them after `hoop connect` and `hoop exec`, run in a real bash against a real gateway.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdirSync, symlinkSync} from 'node:fs'
import {join} from 'node:path'
import {HOOP_BIN, runHoop, tempDir} from '../helpers/cli.js'
import {createSecret, type GatewayProc, startGatewayProc} from '../helpers/gateway.js'

const CONFIG = `connections:
  - {name: orders-db, type: postgres, target: 127.0.0.1:5432, database: test, username: postgres}
  - {name: orders-replica, type: postgres, target: 127.0.0.1:5432, database: test, username: postgres}
  - {name: billing, type: postgres, target: 127.0.0.1:5432, database: test, username: postgres}
  - {name: secret-hr, type: postgres, target: 127.0.0.1:5432, database: test, username: postgres}
policy:
  version: 1
  rules:
    - {id: ci-uses-some, subjects: {groups: [ci]}, connections: [orders-db, orders-replica, billing], effect: allow}
`

describe('shell completion of connection names (built CLI, real gateway, real bash)', function () {
  this.timeout(60_000)
  const dir = tempDir('hoop-e2e-completion-')
  let gw: GatewayProc
  let token = ''

  before(async () => {
    gw = await startGatewayProc(CONFIG, {dir: dir.path})
    token = await createSecret('service-accounts', 'ci-job', gw.dataDir, ['ci'])
  })
  after(async () => {
    await gw?.stop()
    dir.cleanup()
  })

  it('--names prints only the connections policy lets the caller use, one per line', async () => {
    const r = await runHoop(['connections', '--names', '--gateway', gw.url], {env: {HOOP_TOKEN: token}})
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['billing', 'orders-db', 'orders-replica'])
  })

  it('the bash snippet completes `hoop connect ord<TAB>` and `hoop exec b<TAB>` from the gateway', () => {
    const bin = join(dir.path, 'bin')
    mkdirSync(bin, {recursive: true})
    symlinkSync(HOOP_BIN, join(bin, 'hoop'))
    const complete = (words: string[]) => {
      const script = `eval "$(hoop connections --completion bash)"
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_hoop_complete_with_connections
printf '%s\\n' "\${COMPREPLY[@]}"`
      const r = spawnSync('bash', ['-c', script], {encoding: 'utf8', env: {...process.env, PATH: `${bin}:${process.env.PATH}`, HOOP_TOKEN: token, HOOP_GATEWAY: gw.url}})
      assert.equal(r.status, 0, r.stderr)
      return r.stdout.split('\n').filter(Boolean).sort()
    }
    assert.deepEqual(complete(['hoop', 'connect', 'ord']), ['orders-db', 'orders-replica'])
    assert.deepEqual(complete(['hoop', 'exec', 'b']), ['billing'])
    // A connection policy denies is never offered.
    assert.deepEqual(complete(['hoop', 'connect', 'sec']), [])
  })
})
