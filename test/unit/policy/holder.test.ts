// Hot reload: a valid policy replaces the current one; an invalid one is reported and ignored.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {mkdtempSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseGatewayConfig} from '../../../src/shared/config.js'
import {PolicyHolder, type ReloadResult} from '../../../src/policy/holder.js'
import {checkAccess} from '../../../src/policy/evaluate.js'
import type {Identity} from '../../../src/identity/types.js'

const alice: Identity = {kind: 'user', subject: 'u1', name: 'alice', email: 'alice@example.com', groups: ['eng']}
const allow = (id: string) => `version: 1\nrules:\n  - id: ${id}\n    subjects: {groups: [eng]}\n    effect: allow\n`

/** Read through a function so that earlier assertions do not narrow the type. */
const firstRuleId = (h: PolicyHolder): string => h.current.rules[0].id

describe('policy: PolicyHolder', () => {
  let dir: string
  let holder: PolicyHolder | undefined
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-holder-'))
  })
  afterEach(() => {
    holder?.close()
    holder = undefined
    rmSync(dir, {recursive: true, force: true})
  })

  it('reloads on change, keeps the last good policy when the new one is invalid, then takes a fixed one', async () => {
    const file = join(dir, 'policy.yaml')
    writeFileSync(file, allow('first'))
    holder = new PolicyHolder(file, 20)
    holder.watch()
    assert.equal(checkAccess(holder.current, alice, {name: 'db', type: 'postgres'}).ruleId, 'first')

    let next = once(holder, 'reload') as Promise<[ReloadResult]>
    writeFileSync(file, 'version: 1\nrules:\n  - id: broken\n    effect: alow\n')
    let [r] = await next
    assert.equal(r.ok, false)
    assert.ok(!r.ok && /policy\.yaml:4:13: rule "broken": effect must be one of/.test(r.error.message), !r.ok ? r.error.message : '')
    assert.equal(holder.current.rules[0].id, 'first', 'the last good policy is kept')
    assert.equal(checkAccess(holder.current, alice, {name: 'db', type: 'postgres'}).allowed, true)

    // Replace by rename, as editors and config management do.
    next = once(holder, 'reload') as Promise<[ReloadResult]>
    writeFileSync(join(dir, 'policy.yaml.tmp'), allow('second'))
    renameSync(join(dir, 'policy.yaml.tmp'), file)
    ;[r] = await next
    // A rename can fire more than one event; wait until the new policy is in.
    while (firstRuleId(holder) !== 'second') [r] = (await once(holder, 'reload')) as [ReloadResult]
    assert.equal(r.ok, true)
    assert.equal(checkAccess(holder.current, alice, {name: 'db', type: 'postgres'}).ruleId, 'second')
  })

  it('refuses an invalid policy at start', () => {
    const file = join(dir, 'policy.yaml')
    writeFileSync(file, 'version: 1\nrules: 3\n')
    assert.throws(() => new PolicyHolder(file), /policy\.yaml:2:8: rules must be a list/)
  })

  it('reloads an inline policy from the gateway config file', () => {
    const cfgFile = join(dir, 'gateway.yaml')
    const text = (id: string) => `connections: []\npolicy:\n  version: 1\n  rules:\n    - {id: ${id}, effect: allow}\n`
    writeFileSync(cfgFile, text('inline-1'))
    holder = new PolicyHolder(parseGatewayConfig(text('inline-1'), cfgFile))
    assert.equal(holder.watchedFile, cfgFile)
    assert.equal(holder.current.rules[0].id, 'inline-1')
    writeFileSync(cfgFile, text('inline-2'))
    const r = holder.reload()
    assert.equal(r.ok, true)
    assert.equal(holder.current.rules[0].id, 'inline-2')
    writeFileSync(cfgFile, 'connections: []\npolicy:\n  version: 1\n  rules:\n    - {id: x, effect: nope}\n')
    const bad = holder.reload()
    assert.ok(!bad.ok && bad.error.message.startsWith(`${cfgFile}:5:`), !bad.ok ? bad.error.message : '')
    assert.equal(holder.current.rules[0].id, 'inline-2')
  })

  it('holds the empty policy when the config has none', () => {
    holder = new PolicyHolder(parseGatewayConfig('connections: []\n', join(dir, 'g.yaml')))
    assert.deepEqual(holder.current.rules, [])
    assert.equal(checkAccess(holder.current, alice, {name: 'db', type: 'postgres'}).ruleId, 'default-deny')
  })
})
