// `hoop policy check` / `hoop policy test` library calls, on real files.
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {checkPolicyFile, formatPolicyCheck, formatPolicyTest, testPolicy} from '../../../src/policy/simulate.js'

describe('policy: check and test tools', () => {
  let dir: string
  let policy: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-sim-'))
    policy = join(dir, 'policy.yaml')
    writeFileSync(
      policy,
      `version: 1
rules:
  - {id: eng, subjects: {groups: [engineering]}, connections: ["prod-*"], effect: allow, limits: {readOnly: true}}
  - {id: ci, subjects: {ci: {issuer: "https://ci.example.com", claims: {repository: org/app}}}, connections: [prod-db], effect: allow}
  - {id: no-drop, match: {kinds: [drop]}, effect: block}
`,
    )
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  it('checks a file and counts its rules by effect', () => {
    const r = checkPolicyFile(policy)
    assert.deepEqual(r, {file: policy, ok: true, rules: 3, effects: {allow: 2, block: 1}})
    assert.equal(formatPolicyCheck(r), `ok: 3 rules (2 allow, 1 block) in ${policy}`)
  })

  it('checks the policy section of a gateway config', () => {
    const cfg = join(dir, 'gateway.yaml')
    writeFileSync(cfg, 'connections: []\npolicy:\n  version: 1\n  rules:\n    - {id: x, effect: allow, subjects: {}}\n')
    assert.throws(() => checkPolicyFile(cfg, {config: true}), (err: Error) => err.message.startsWith(`${cfg}:5:`) && /lists nobody/.test(err.message))
  })

  it('tests a user statement and names the rules', async () => {
    const r = await testPolicy({policy, connection: 'prod-db', user: 'alice@example.com', groups: ['engineering'], sql: 'select 1; DROP/**/table t'})
    assert.equal(r.access.ruleId, 'eng')
    assert.equal(r.decision?.effect, 'block')
    assert.equal(r.decision?.ruleId, 'no-drop')
    assert.equal(r.decision?.statement, 1)
    const text = formatPolicyTest(r)
    assert.match(text, /access: +allow +\[rule eng\] read-only/)
    assert.match(text, /statement: +block +\[rule no-drop\]/)
    assert.match(text, /> \[1\] DROP TABLE t/)
  })

  it('tests a CI identity by claims', async () => {
    const ok = await testPolicy({policy, connection: 'prod-db', ciIssuer: 'https://ci.example.com', claims: ['repository=org/app', 'ref=refs/heads/main']})
    assert.equal(ok.access.ruleId, 'ci')
    const other = await testPolicy({policy, connection: 'prod-db', ciIssuer: 'https://ci.example.com', claims: ['repository=org/other']})
    assert.equal(other.access.ruleId, 'default-deny')
  })

  it('refuses an ambiguous subject', async () => {
    await assert.rejects(testPolicy({policy, connection: 'prod-db', user: 'a@x', serviceAccount: 'b'}), /name exactly one subject/)
  })
})
