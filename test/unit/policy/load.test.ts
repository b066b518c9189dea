// Policy validation: every problem is reported with the file and line it is on, all at once.
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseGatewayConfig} from '../../../src/shared/config.js'
import {HoopError} from '../../../src/shared/errors.js'
import type {SourceProblem} from '../../../src/shared/yaml-source.js'
import {loadPolicyFile, parsePolicy, policyFromGatewayConfig} from '../../../src/policy/load.js'

function problems(text: string, file = 'policy.yaml'): SourceProblem[] {
  try {
    parsePolicy(text, file)
  } catch (err) {
    assert.ok(err instanceof HoopError, String(err))
    assert.equal(err.code, 'CONFIG_INVALID')
    assert.equal(err.exitCode, 18)
    return (err.details as {problems: SourceProblem[]}).problems
  }
  assert.fail('expected the policy to be rejected')
}

/** Asserts exactly one problem, on `line`, whose message contains `text`. */
function one(yaml: string, line: number, text: string | RegExp): void {
  const ps = problems(yaml)
  assert.equal(ps.length, 1, JSON.stringify(ps))
  assert.equal(ps[0].line, line, JSON.stringify(ps[0]))
  if (typeof text === 'string') assert.ok(ps[0].message.includes(text), ps[0].message)
  else assert.match(ps[0].message, text)
}

const EXAMPLE = `version: 1
defaults:
  unparsable: block
rules:
  - id: engineers-read-prod
    subjects: {groups: [engineering]}
    connections: [prod-db, "staging-*"]
    effect: allow
    limits: {readOnly: true, maxSessionDuration: 8h}
  - id: no-drop
    connections: ["*"]
    match: {kinds: [drop, truncate]}
    effect: block
    message: "DROP and TRUNCATE are not allowed through the gateway"
  - id: unbounded-writes
    match: {kinds: [update, delete], where: absent}
    effect: block
  - id: writes-need-approval
    subjects: {groups: [engineering]}
    match: {writes: true}
    effect: review
    review: {approvers: {groups: [dba]}, approvals: 1, ttl: 1h}
  - id: pii
    connections: [prod-db]
    effect: mask
    mask:
      columns: ["public.customers.email", "customers.card_number", "*.ssn"]
      entities: [email, phone, card, iban, ssn, jwt, api_key]
  - id: ci-deploys
    subjects: {ci: {issuer: "https://ci.example.com", claims: {repository: org/repo, ref: "refs/heads/*"}}}
    effect: allow
`

describe('policy: parse and validate', () => {
  it('accepts the documented example and keeps each rule\'s line', () => {
    const p = parsePolicy(EXAMPLE, 'policy.yaml')
    assert.equal(p.rules.length, 6)
    assert.deepEqual(p.rules.map((r) => r.at.line), [5, 10, 15, 18, 23, 29])
    assert.deepEqual(p.rules[0].limits, {readOnly: true, maxSessionSeconds: 8 * 3600})
    assert.deepEqual(p.rules[3].review, {approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 3600, scope: 'statement'})
    assert.deepEqual(p.rules[4].mask?.columns.map((c) => [c.schema, c.table, c.column]), [
      ['public', 'customers', 'email'],
      ['*', 'customers', 'card_number'],
      ['*', '*', 'ssn'],
    ])
    assert.deepEqual(p.rules[5].subjects?.ci, [{issuer: 'https://ci.example.com', claims: {repository: 'org/repo', ref: 'refs/heads/*'}}])
  })

  it('reports an unknown key on its line', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    conections: [x]\n', 5, 'unknown key "conections" in rule')
    one('version: 1\nrulez: []\n', 2, 'unknown key "rulez"')
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    subjects: {users: [a], teams: [b]}\n', 5, 'unknown key "teams" in subjects')
  })

  it('reports a bad effect', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: permit\n', 4, 'effect must be one of allow, deny, block, review, mask')
  })

  it('reports a missing id and a duplicate id with the first line', () => {
    one('version: 1\nrules:\n  - effect: allow\n', 3, 'rule id is required')
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n  - id: a\n    effect: deny\n', 5, 'duplicate rule id "a" (first used on line 3)')
  })

  it('reports a bad glob in connections with the item\'s line', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    connections:\n      - prod\n      - "db-[12]"\n', 7, 'bad glob "db-[12]"')
  })

  it('reports a bad duration', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    limits: {maxSessionDuration: 8 hours}\n', 5, 'maxSessionDuration must be a duration')
    one('version: 1\nrules:\n  - id: a\n    effect: review\n    review:\n      approvers: {groups: [dba]}\n      ttl: soon\n', 7, 'ttl must be a duration')
  })

  it('reads each review scope, and reports an unknown one with the choices', () => {
    const review = (scope: string) => `version: 1\nrules:\n  - id: a\n    effect: review\n    review:\n      approvers: {groups: [dba]}\n      scope: ${scope}\n`
    for (const scope of ['statement', 'repeat', 'session'] as const) assert.equal(parsePolicy(review(scope), 'policy.yaml').rules[0].review?.scope, scope)
    one(review('forever'), 7, 'scope must be one of statement, repeat, session (got "forever")')
  })

  it('reports review without approvers, and effect review without review', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: review\n    review: {approvals: 2}\n', 5, 'needs approvers')
    one('version: 1\nrules:\n  - id: a\n    effect: review\n', 4, 'effect review needs "review:')
  })

  it('reports mask without columns, entities or fields, bad columns and unknown entities', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: mask\n    mask: {}\n', 5, 'needs columns, entities or fields')
    one('version: 1\nrules:\n  - id: a\n    effect: mask\n', 4, 'effect mask needs "mask:')
    one('version: 1\nrules:\n  - id: a\n    effect: mask\n    mask:\n      columns: [a.b.c.d]\n', 6, 'bad column pattern "a.b.c.d"')
    one('version: 1\nrules:\n  - id: a\n    effect: mask\n    mask:\n      entities:\n        - email\n        - passport\n', 8, 'unknown entity type "passport"')
  })

  it('reports match on an access rule, unknown kinds and bad where', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    match: {kinds: [drop]}\n', 5, '"match" applies to block and review rules only')
    one('version: 1\nrules:\n  - id: a\n    effect: block\n    match: {kinds: [dropp]}\n', 5, 'unknown statement kind "dropp"')
    one('version: 1\nrules:\n  - id: a\n    effect: block\n    match: {where: none}\n', 5, 'where must be "absent" or "present"')
  })

  it('reports limits on a non-allow rule, a bad version and bad defaults', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: block\n    limits: {readOnly: true}\n', 5, '"limits" applies to allow rules only')
    one('version: 2\nrules: []\n', 1, 'version must be 1')
    one('version: 1\ndefaults: {unparsable: maybe}\nrules: []\n', 2, 'defaults.unparsable must be "block" or "allow"')
  })

  it('reports an empty subjects mapping and an empty ci entry (they would match everyone)', () => {
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    subjects: {}\n', 5, 'lists nobody')
    one('version: 1\nrules:\n  - id: a\n    effect: allow\n    subjects:\n      ci: {}\n', 6, 'must name an issuer or at least one claim')
  })

  it('reports every problem at once, in file order, formatted file:line:col', () => {
    const text = 'version: 1\nrules:\n  - id: a\n    effect: nope\n  - id: b\n    effect: allow\n    limits: {readOnly: yes please}\n'
    const ps = problems(text)
    assert.deepEqual(ps.map((p) => p.line), [4, 7])
    try {
      parsePolicy(text, 'p.yaml')
    } catch (err) {
      assert.match((err as Error).message, /^p\.yaml:4:13: rule "a": effect must be one of/m)
      assert.match((err as Error).message, /^p\.yaml:7:24: rule "b": limits\.readOnly must be true or false/m)
    }
  })

  it('reports YAML syntax errors with a line', () => {
    const ps = problems('version: 1\nrules:\n  - id: a\n    effect: [allow\n')
    assert.ok(ps.length >= 1)
    assert.ok(ps[0].line >= 4)
  })

  describe('inside a gateway config', () => {
    let dir: string
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'hoop-policy-'))
    })
    after(() => rmSync(dir, {recursive: true, force: true}))

    it('points inline policy errors at lines of the config file', () => {
      const text = [
        'listen: 127.0.0.1:8009',
        'connections:',
        '  - {name: prod-db, type: postgres, target: "127.0.0.1:5432"}',
        'policy:',
        '  version: 1',
        '  rules:',
        '    - id: ok',
        '      effect: allow',
        '    - id: bad',
        '      effect: allow',
        '      connections: ["prod db"]',
      ].join('\n')
      const cfg = parseGatewayConfig(text, join(dir, 'gateway.yaml'))
      try {
        policyFromGatewayConfig(cfg)
        assert.fail('expected an error')
      } catch (err) {
        assert.ok(err instanceof HoopError)
        const ps = (err.details as {problems: SourceProblem[]}).problems
        assert.equal(ps.length, 1)
        assert.equal(ps[0].file, join(dir, 'gateway.yaml'))
        assert.equal(ps[0].line, 11)
        assert.match(ps[0].message, /bad glob "prod db"/)
      }
    })

    it('loads an inline policy, a relative path, and nothing (deny all)', () => {
      const inline = parseGatewayConfig('connections: []\npolicy:\n  version: 1\n  rules:\n    - {id: all, effect: allow}\n', join(dir, 'g1.yaml'))
      const p1 = policyFromGatewayConfig(inline)
      assert.equal(p1.rules[0].id, 'all')
      assert.equal(p1.rules[0].at.line, 5)

      writeFileSync(join(dir, 'policy.yaml'), 'version: 1\nrules:\n  - {id: from-file, effect: allow}\n')
      const byPath = parseGatewayConfig('connections: []\npolicy: policy.yaml\n', join(dir, 'g2.yaml'))
      assert.equal(policyFromGatewayConfig(byPath).rules[0].id, 'from-file')

      const none = parseGatewayConfig('connections: []\n', join(dir, 'g3.yaml'))
      assert.deepEqual(policyFromGatewayConfig(none).rules, [])
    })

    it('names a missing policy file', () => {
      assert.throws(() => loadPolicyFile(join(dir, 'missing.yaml')), /cannot read policy file .*missing\.yaml: ENOENT/)
    })
  })
})
