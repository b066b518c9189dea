// `hoop policy test` for HTTP requests, with the built CLI as a process: the docs/policy.md example
// policy (PostgreSQL, MariaDB and an HTTP API together) judges requests and prints the rule ids.
import assert from 'node:assert/strict'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {ROOT, runHoop, tempDir} from '../helpers/cli.js'

describe('e2e: hoop policy test for HTTP requests', () => {
  let dir: ReturnType<typeof tempDir>
  let policy: string
  before(() => {
    dir = tempDir('hoop-policy-http-')
    const doc = readFileSync(join(ROOT, 'docs', 'policy.md'), 'utf8')
    const m = /```yaml\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('### One policy for PostgreSQL, MySQL and HTTP')))
    assert.ok(m, 'docs/policy.md lost its combined example')
    policy = join(dir.path, 'policy.yaml')
    writeFileSync(policy, m[1])
  })
  after(() => dir.cleanup())

  it('prints the decision and rule id for DELETE /v1/users/7', async () => {
    const r = await runHoop(['policy', 'test', '--policy', policy, '--type', 'http', '--connection', 'billing-api', '--method', 'DELETE', '--path', '/v1/users/7', '--user', 'olga@example.com', '--group', 'ops'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /access: +allow +\[rule ops-write\]/)
    assert.match(r.stdout, /request: +block +\[rule no-user-deletes\]/)
    assert.match(r.stdout, /users are deactivated, not deleted/)
    assert.match(r.stdout, /> DELETE \/v1\/users\/7 \(writes, body none\)/)
  })

  it('judges a JSON body and prints the review as JSON', async () => {
    const review = await runHoop(['policy', 'test', '--policy', policy, '--type', 'http', '--connection', 'billing-api', '--method', 'POST', '--path', '/v1/refunds', '--body', '{"amount": 5000}', '--user', 'olga@example.com', '--group', 'ops', '--json'])
    assert.equal(review.code, 0, review.stderr)
    const out = JSON.parse(review.stdout) as {decision: {effect: string; ruleId: string; review: {approvers: {groups: string[]}}}}
    assert.deepEqual([out.decision.effect, out.decision.ruleId, out.decision.review.approvers.groups], ['review', 'big-refunds', ['finance']])

  })

  it('refuses --sql together with HTTP flags (exit 2)', async () => {
    const r = await runHoop(['policy', 'test', '--policy', policy, '--connection', 'billing-api', '--sql', 'select 1', '--method', 'GET', '--user', 'a@b.c'])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.match(r.stderr, /cannot also be provided/)
  })
})
