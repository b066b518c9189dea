// Evaluation: default deny, deny over allow, block > read-only > review > allow, masks accumulate,
// and every decision names its rule.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {checkAccess, isApprover, judgeOperation, judgeStoredViewColumns, listAllowedConnections} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {Operation, Statement} from '../../../src/policy/types.js'

const alice: Identity = {kind: 'user', subject: 'u-alice', name: 'Alice', email: 'alice@example.com', groups: ['engineering']}
const bob: Identity = {kind: 'user', subject: 'u-bob', name: 'Bob', email: 'bob@example.com', groups: ['dba', 'engineering']}
const mallory: Identity = {kind: 'user', subject: 'u-m', name: 'Mallory', email: 'mallory@evil.test', groups: []}
const ciBot: Identity = {kind: 'service-account', subject: 'sa_1', name: 'ci-bot', groups: []}
const ciJob = (claims: Record<string, string>, issuer = 'https://ci.example.com'): Identity => ({kind: 'ci', subject: 'repo:org/repo', name: 'ci', groups: [], issuer, claims})

const pg = (name: string) => ({name, type: 'postgres'})

function st(kind: Statement['kind'], extra: Partial<Statement> = {}): Statement {
  const writes = !['select', 'show', 'transaction', 'explain', 'set'].includes(kind)
  return {kind, command: kind.toUpperCase(), tables: ['t'], writes, functions: [], index: 0, ...extra}
}
const op = (...statements: Statement[]): Operation => ({engine: 'postgres', statements})

const POLICY = parsePolicy(
  `version: 1
rules:
  - id: engineers-read-prod
    subjects: {groups: [engineering]}
    connections: [prod-db, "staging-*"]
    effect: allow
    limits: {readOnly: true, maxSessionDuration: 8h}
  - id: dba-prod
    subjects: {groups: [dba]}
    connections: [prod-db]
    effect: allow
    limits: {maxSessionDuration: 1h}
  - id: ci-bot-staging
    subjects: {serviceAccounts: [ci-bot]}
    connections: ["staging-*"]
    effect: allow
  - id: ci-main-only
    subjects: {ci: {issuer: "https://ci.example.com", claims: {repository: org/repo, ref: "refs/heads/main"}}}
    connections: [staging-eu]
    effect: allow
  - id: no-staging-legacy
    connections: [staging-legacy]
    effect: deny
    message: staging-legacy is retired
  - id: no-drop
    match: {kinds: [drop, truncate]}
    effect: block
    message: DROP and TRUNCATE are not allowed through the gateway
  - id: unbounded-writes
    match: {kinds: [update, delete], where: absent}
    effect: block
  - id: no-secrets
    match: {tables: ["*.secrets"]}
    effect: block
  - id: writes-need-approval
    subjects: {groups: [engineering]}
    match: {writes: true}
    effect: review
    review: {approvers: {groups: [dba]}, approvals: 2, ttl: 30m}
  - id: pii
    connections: [prod-db]
    effect: mask
    mask:
      columns: ["public.customers.email", "*.ssn"]
      entities: [email, card]
  - id: pii-more
    effect: mask
    mask:
      columns: ["*.ssn", "users.phone"]
      entities: [phone, email]
`,
  'policy.yaml',
)

describe('policy: access', () => {
  it('denies by default, with rule id default-deny', () => {
    const d = checkAccess(POLICY, mallory, pg('prod-db'))
    assert.equal(d.allowed, false)
    assert.equal(d.ruleId, 'default-deny')
    assert.match(d.reason, /no rule allows mallory@evil\.test to use prod-db/)
    assert.equal(checkAccess(POLICY, alice, pg('dev-db')).ruleId, 'default-deny')
  })

  it('allows through a matching allow rule and returns its limits', () => {
    const d = checkAccess(POLICY, alice, pg('prod-db'))
    assert.deepEqual(d, {allowed: true, ruleId: 'engineers-read-prod', reason: 'allowed by rule engineers-read-prod', limits: {readOnly: true, maxSessionSeconds: 28800}})
  })

  it('matches connection globs', () => {
    assert.equal(checkAccess(POLICY, alice, pg('staging-eu')).ruleId, 'engineers-read-prod')
    assert.equal(checkAccess(POLICY, alice, pg('staging')).allowed, false)
    assert.equal(checkAccess(POLICY, ciBot, pg('staging-us')).ruleId, 'ci-bot-staging')
    assert.equal(checkAccess(POLICY, ciBot, pg('prod-db')).allowed, false)
  })

  it('lets an explicit deny win over allow', () => {
    const d = checkAccess(POLICY, alice, pg('staging-legacy'))
    assert.equal(d.allowed, false)
    assert.equal(d.ruleId, 'no-staging-legacy')
    assert.equal(d.reason, 'staging-legacy is retired')
  })

  it('picks the most generous of several allow rules (read-write over read-only)', () => {
    const d = checkAccess(POLICY, bob, pg('prod-db'))
    assert.equal(d.ruleId, 'dba-prod')
    assert.deepEqual(d.limits, {readOnly: false, maxSessionSeconds: 3600})
  })

  it('matches CI identities by issuer and claims', () => {
    assert.equal(checkAccess(POLICY, ciJob({repository: 'org/repo', ref: 'refs/heads/main'}), pg('staging-eu')).ruleId, 'ci-main-only')
    assert.equal(checkAccess(POLICY, ciJob({repository: 'org/repo', ref: 'refs/heads/feature'}), pg('staging-eu')).allowed, false)
    assert.equal(checkAccess(POLICY, ciJob({repository: 'org/other', ref: 'refs/heads/main'}), pg('staging-eu')).allowed, false)
    assert.equal(checkAccess(POLICY, ciJob({repository: 'org/repo'}), pg('staging-eu')).allowed, false, 'a missing claim does not match')
    assert.equal(checkAccess(POLICY, ciJob({repository: 'org/repo', ref: 'refs/heads/main'}, 'https://evil.test'), pg('staging-eu')).allowed, false)
  })

  it('does not treat a user whose name looks like a service account as one', () => {
    const impostor: Identity = {kind: 'user', subject: 'ci-bot', name: 'ci-bot', groups: []}
    assert.equal(checkAccess(POLICY, impostor, pg('staging-us')).allowed, false)
  })

  it('glob-matches users by email and lists allowed connections', () => {
    const p = parsePolicy('version: 1\nrules:\n  - {id: corp, subjects: {users: ["*@example.com"]}, connections: ["a*"], effect: allow}\n', 'p.yaml')
    const list = listAllowedConnections(p, alice, [pg('abc'), pg('b'), {name: 'api', type: 'http'}])
    assert.deepEqual(list.map((c) => [c.name, c.access.ruleId]), [['abc', 'corp'], ['api', 'corp']])
    assert.deepEqual(listAllowedConnections(p, mallory, [pg('abc')]), [])
  })
})

describe('policy: statements', () => {
  it('blocks anything on a connection without access, with the access rule id', () => {
    const d = judgeOperation(POLICY, mallory, pg('prod-db'), op(st('select')))
    assert.equal(d.effect, 'block')
    assert.equal(d.ruleId, 'default-deny')
  })

  it('allows a read with the allow rule id', () => {
    const d = judgeOperation(POLICY, alice, pg('prod-db'), op(st('select')))
    assert.equal(d.effect, 'allow')
    assert.equal(d.ruleId, 'engineers-read-prod')
  })

  it('blocks with the block rule id and its message, before read-only and review', () => {
    const d = judgeOperation(POLICY, alice, pg('prod-db'), op(st('select'), st('drop', {index: 1, command: 'DROP TABLE'})))
    assert.equal(d.effect, 'block')
    assert.equal(d.ruleId, 'no-drop')
    assert.equal(d.message, 'DROP and TRUNCATE are not allowed through the gateway')
    assert.equal(d.statement, 1)
  })

  it('blocks writes on a read-only grant with the allow rule id', () => {
    const d = judgeOperation(POLICY, alice, pg('prod-db'), op(st('insert', {command: 'INSERT'})))
    assert.equal(d.effect, 'block')
    assert.equal(d.ruleId, 'engineers-read-prod')
    assert.match(d.message, /INSERT writes, and prod-db is read-only for you/)
  })

  it('asks for review when no block applies, and names approvers', () => {
    // bob is in engineering (review applies) and has a read-write grant on prod-db.
    const d = judgeOperation(POLICY, bob, pg('prod-db'), op(st('update', {hasWhere: true})))
    assert.equal(d.effect, 'review')
    assert.equal(d.ruleId, 'writes-need-approval')
    assert.deepEqual(d.review, {ruleId: 'writes-need-approval', approvers: {groups: ['dba']}, approvals: 2, ttlSeconds: 1800, scope: 'statement'})
    assert.equal(isApprover(d.review!, bob), true)
    assert.equal(isApprover(d.review!, alice), false)
  })

  it('block beats review: unbounded DELETE is blocked, bounded goes to review', () => {
    assert.equal(judgeOperation(POLICY, bob, pg('prod-db'), op(st('delete', {hasWhere: false}))).ruleId, 'unbounded-writes')
    assert.equal(judgeOperation(POLICY, bob, pg('prod-db'), op(st('delete', {hasWhere: true}))).ruleId, 'writes-need-approval')
  })

  it('matches tables qualified or not', () => {
    assert.equal(judgeOperation(POLICY, bob, pg('prod-db'), op(st('select', {tables: ['secrets']}))).ruleId, 'no-secrets')
    assert.equal(judgeOperation(POLICY, bob, pg('prod-db'), op(st('select', {tables: ['vault.secrets']}))).ruleId, 'no-secrets')
    assert.equal(judgeOperation(POLICY, bob, pg('prod-db'), op(st('select', {tables: ['vault.secrets_old']}))).ruleId, 'dba-prod')
  })

  it('accumulates masks from every matching mask rule', () => {
    const d = judgeOperation(POLICY, alice, pg('prod-db'), op(st('select')))
    assert.deepEqual(d.mask.ruleIds, ['pii', 'pii-more'])
    assert.deepEqual(d.mask.columns.map((c) => c.text), ['public.customers.email', '*.ssn', 'users.phone'])
    assert.deepEqual(d.mask.entities, ['email', 'card', 'phone'])
    const staging = judgeOperation(POLICY, alice, pg('staging-eu'), op(st('select')))
    assert.deepEqual(staging.mask.ruleIds, ['pii-more'])
  })

  it('judges unparsable input by the default for subjects under guardrails', () => {
    const bad: Operation = {engine: 'postgres', statements: [], unparsable: {reason: 'syntax error at or near "SELEC"'}}
    const d = judgeOperation(POLICY, bob, pg('prod-db'), bad)
    assert.equal(d.effect, 'block')
    assert.equal(d.ruleId, 'default-unparsable')
    assert.match(d.message, /syntax error/)
    // read-only grants cannot let an unparsed statement through either
    assert.equal(judgeOperation(POLICY, alice, pg('prod-db'), bad).ruleId, 'engineers-read-prod')

    const open = parsePolicy('version: 1\ndefaults: {unparsable: allow}\nrules:\n  - {id: all, effect: allow}\n  - {id: g, effect: block, match: {kinds: [drop]}}\n', 'p.yaml')
    assert.deepEqual([judgeOperation(open, bob, pg('x'), bad).effect, judgeOperation(open, bob, pg('x'), bad).ruleId], ['allow', 'all'])
    const strict = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: g, effect: block, match: {kinds: [drop]}}\n', 'p.yaml')
    assert.equal(judgeOperation(strict, bob, pg('x'), bad).ruleId, 'default-unparsable')
    const noGuards = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n', 'p.yaml')
    assert.equal(judgeOperation(noGuards, bob, pg('x'), bad).effect, 'allow', 'a subject under no guardrail is not blocked')
    const explicit = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: u, effect: review, match: {unparsable: true}, review: {approvers: {groups: [dba]}}}\n', 'p.yaml')
    assert.equal(judgeOperation(explicit, bob, pg('x'), bad).ruleId, 'u')
  })

  it('matches functions, commands and COPY PROGRAM', () => {
    const p = parsePolicy(
      `version: 1
rules:
  - {id: all, effect: allow}
  - {id: no-sleep, effect: block, match: {functions: ["pg_sleep*", "pg_read_*"]}}
  - {id: no-program, effect: block, match: {copyProgram: true}}
  - {id: no-create-fn, effect: block, match: {commands: ["CREATE FUNCTION", "CREATE PROCEDURE"]}}
`,
      'p.yaml',
    )
    const judge = (s: Statement) => judgeOperation(p, alice, pg('x'), op(s)).ruleId
    assert.equal(judge(st('select', {functions: ['pg_catalog.pg_sleep']})), 'no-sleep')
    assert.equal(judge(st('select', {functions: ['pg_read_file']})), 'no-sleep')
    assert.equal(judge(st('select', {functions: ['now']})), 'all')
    assert.equal(judge(st('copy', {copyProgram: true})), 'no-program')
    assert.equal(judge(st('copy', {copyProgram: false})), 'all')
    assert.equal(judge(st('ddl', {command: 'CREATE FUNCTION'})), 'no-create-fn')
  })
})

describe('policy: built-in rules for masked subjects (issue 12)', () => {
  const P = parsePolicy(
    `version: 1
rules:
  - {id: analysts, subjects: {groups: [analysts]}, effect: allow}
  - {id: etl, subjects: {serviceAccounts: [etl]}, effect: allow, waive: [hoop.no-laundering]}
  - {id: dbas, subjects: {groups: [dba]}, effect: allow}
  - {id: pii, subjects: {groups: [analysts], serviceAccounts: [etl]}, effect: mask, mask: {columns: ["public.customers.email", "*.ssn"]}}
`,
    'p.yaml',
  )
  const analyst: Identity = {kind: 'user', subject: 'u-an', name: 'An', email: 'an@example.com', groups: ['analysts']}
  const dba: Identity = {kind: 'user', subject: 'u-d', name: 'D', email: 'd@example.com', groups: ['dba']}
  const etl: Identity = {kind: 'service-account', subject: 'sa_etl', name: 'etl', groups: []}
  const db = pg('db')
  const flow = (from: {schema?: string; table?: string; column: string}, into?: {schema?: string; table?: string; column: string}) => (into ? {from, into} : {from})
  const insert = (...flows: ReturnType<typeof flow>[]) => st('insert', {stores: [{stores: 'table', by: 'INSERT', flows}]})

  it('blocks a statement that stores a masked column, with hoop.no-laundering', () => {
    const d = judgeOperation(P, analyst, db, op(insert(flow({table: 'customers', column: 'email'}, {table: 'log', column: 'a'}))))
    assert.equal(d.effect, 'block')
    assert.equal(d.ruleId, 'hoop.no-laundering')
    assert.match(d.message, /copies customers\.email, which is masked for you \(public\.customers\.email\), into column log\.a/)
    assert.equal(d.statement, 0)
  })

  it('counts doubt as masked: a whole row, an unknown table, a column of unknown origin', () => {
    for (const from of [{table: 'customers', column: '*'}, {column: 'email'}, {column: '*'}, {schema: 'x', table: 'people', column: 'ssn'}]) {
      assert.equal(judgeOperation(P, analyst, db, op(insert(flow(from)))).ruleId, 'hoop.no-laundering', JSON.stringify(from))
    }
    assert.equal(judgeOperation(P, analyst, db, op(insert(flow({schema: 'other', table: 'customers', column: 'email'})))).effect, 'allow')
    assert.equal(judgeOperation(P, analyst, db, op(insert(flow({table: 'customers', column: 'name'})))).effect, 'allow')
  })

  it('lets a masked value be written back into a column that is masked too', () => {
    const same = insert(flow({table: 'customers', column: 'email'}, {schema: 'public', table: 'customers', column: 'email'}))
    assert.equal(judgeOperation(P, analyst, db, op(same)).effect, 'allow')
    // An unqualified destination might be another schema's unmasked table.
    const unsure = insert(flow({table: 'customers', column: 'email'}, {table: 'customers', column: 'email'}))
    assert.equal(judgeOperation(P, analyst, db, op(unsure)).ruleId, 'hoop.no-laundering')
  })

  it('applies to settings, large objects, files and variables alike', () => {
    for (const stores of ['setting', 'large-object', 'file', 'program', 'variable', 'sequence', 'notification'] as const) {
      const s = st('select', {stores: [{stores, by: 'f', flows: [flow({column: 'ssn'})]}]})
      assert.equal(judgeOperation(P, analyst, db, op(s)).ruleId, 'hoop.no-laundering', stores)
    }
  })

  it('refuses DDL that renames or alters a masked table or column, and views over one, with hoop.masked-ddl', () => {
    assert.equal(judgeOperation(P, analyst, db, op(st('ddl', {alters: [{table: 'customers', column: 'email'}]}))).ruleId, 'hoop.masked-ddl')
    assert.equal(judgeOperation(P, analyst, db, op(st('ddl', {alters: [{table: 'customers', column: '*'}]}))).ruleId, 'hoop.masked-ddl')
    assert.equal(judgeOperation(P, analyst, db, op(st('ddl', {alters: [{schema: 'public', table: '*', column: '*'}]}))).ruleId, 'hoop.masked-ddl')
    assert.equal(judgeOperation(P, analyst, db, op(st('ddl', {alters: [{table: 'orders', column: 'note'}]}))).effect, 'allow')
    const view = st('ddl', {stores: [{stores: 'view', by: 'CREATE VIEW', flows: [flow({table: 'customers', column: 'email'})]}]})
    assert.equal(judgeOperation(P, analyst, db, op(view)).ruleId, 'hoop.masked-ddl')
  })

  it('refuses statistics that sample column values, with hoop.masked-stats', () => {
    const d = judgeOperation(P, analyst, db, op(st('select', {tables: ['pg_stats'], readsStatistics: true})))
    assert.deepEqual([d.effect, d.ruleId], ['block', 'hoop.masked-stats'])
  })

  it('leaves subjects without a column mask alone', () => {
    assert.equal(judgeOperation(P, dba, db, op(insert(flow({table: 'customers', column: 'email'})))).effect, 'allow')
    assert.equal(judgeOperation(P, dba, db, op(st('select', {readsStatistics: true}))).effect, 'allow')
  })

  it('an allow rule can waive a built-in rule for the subjects it grants', () => {
    assert.equal(judgeOperation(P, etl, db, op(insert(flow({table: 'customers', column: 'email'})))).effect, 'allow')
    assert.equal(judgeOperation(P, etl, db, op(st('ddl', {alters: [{table: 'customers', column: 'email'}]}))).ruleId, 'hoop.masked-ddl')
  })

  it('hands the engine the stored values it let pass by name, to check through views', () => {
    const d = judgeOperation(P, analyst, db, op(insert(flow({table: 'v', column: 'contact'}, {table: 'log', column: 'a'}))))
    assert.equal(d.effect, 'allow')
    assert.deepEqual(d.stored, [{from: {table: 'v', column: 'contact'}, ruleId: 'hoop.no-laundering', command: 'INSERT', into: 'column log.a (INSERT)'}])
    const view = st('ddl', {command: 'CREATE VIEW', stores: [{stores: 'view', by: 'CREATE VIEW', flows: [flow({table: 'v', column: 'contact'})]}]})
    assert.equal(judgeOperation(P, analyst, db, op(view)).stored?.[0].ruleId, 'hoop.masked-ddl')
    // Nothing to check: no column mask, the rule waived, or written back into a masked column.
    assert.equal(judgeOperation(P, dba, db, op(insert(flow({table: 'v', column: 'contact'})))).stored, undefined)
    assert.equal(judgeOperation(P, etl, db, op(insert(flow({table: 'v', column: 'contact'})))).stored, undefined)
    assert.equal(judgeOperation(P, analyst, db, op(insert(flow({table: 'v', column: 'contact'}, {schema: 'public', table: 'customers', column: 'email'})))).stored, undefined)
  })

  it('blocks a stored value read from a view column the engine says derives from a masked one', () => {
    const stored = judgeOperation(P, analyst, db, op(insert(flow({table: 'v', column: 'contact'}, {table: 'log', column: 'a'})))).stored ?? []
    const hit = judgeStoredViewColumns(stored, ['public.v.contact'])
    assert.equal(hit?.ruleId, 'hoop.no-laundering')
    assert.match(hit?.message ?? '', /INSERT copies v\.contact, a view column that derives from data masked for you \(public\.v\.contact\), into column log\.a \(INSERT\)/)
    // A view that cannot be analysed has every column masked; other views' columns do not count.
    assert.equal(judgeStoredViewColumns(stored, ['public.v.*'])?.ruleId, 'hoop.no-laundering')
    assert.equal(judgeStoredViewColumns(stored, ['public.v.id', 'public.w.contact']), undefined)
    assert.equal(judgeStoredViewColumns(stored, []), undefined)
    // `SELECT *` of the view reads every column.
    assert.equal(judgeStoredViewColumns([{...stored[0], from: {table: 'v', column: '*'}}], ['public.v.contact'])?.ruleId, 'hoop.no-laundering')
  })

  it('validates waive: allow rules only, known built-in ids; hoop. ids are reserved', () => {
    assert.throws(() => parsePolicy('version: 1\nrules:\n  - {id: a, effect: block, waive: [hoop.no-laundering]}\n', 'p.yaml'), /"waive" applies to allow rules only/)
    assert.throws(() => parsePolicy('version: 1\nrules:\n  - {id: a, effect: allow, waive: [hoop.nope]}\n', 'p.yaml'), /unknown built-in rule "hoop.nope"/)
    assert.throws(() => parsePolicy('version: 1\nrules:\n  - {id: hoop.mine, effect: allow}\n', 'p.yaml'), /reserved for hoop's built-in rules/)
  })
})

describe('policy: statements part of which cannot be seen (unseen)', () => {
  const P = (extra = '', defaults = '') =>
    parsePolicy(`version: 1\n${defaults}rules:\n  - {id: all, effect: allow}\n  - {id: no-drop, effect: block, match: {kinds: [drop]}}\n${extra}`, 'p.yaml')
  const unseen = st('execute', {unseen: 'EXECUTE p: never prepared', writes: true})

  it('are blocked by the unparsable default for subjects under guardrails', () => {
    const d = judgeOperation(P(), alice, pg('db'), op(st('select'), unseen))
    assert.deepEqual([d.effect, d.ruleId, d.statement], ['block', 'default-unparsable', 1])
    assert.match(d.message, /cannot be judged: EXECUTE p: never prepared/)
  })

  it('follow defaults.unparsable: allow, and a policy with no guardrail', () => {
    assert.equal(judgeOperation(P('', 'defaults: {unparsable: allow}\n'), alice, pg('db'), op(unseen)).effect, 'allow')
    const none = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n', 'p.yaml')
    assert.equal(judgeOperation(none, alice, pg('db'), op(unseen)).effect, 'allow')
  })

  it('match unparsable: true rules, and review rules without a match', () => {
    assert.equal(judgeOperation(P('  - {id: nope, effect: block, match: {unparsable: true}}\n'), alice, pg('db'), op(unseen)).ruleId, 'nope')
    const review = P('  - {id: look, effect: review, match: {unparsable: true}, review: {approvers: {groups: [dba]}}}\n')
    assert.deepEqual([judgeOperation(review, alice, pg('db'), op(unseen)).effect, judgeOperation(review, alice, pg('db'), op(st('select'))).effect], ['review', 'allow'])
  })

  it('cannot be shown read-only', () => {
    const ro = parsePolicy('version: 1\nrules:\n  - {id: ro, effect: allow, limits: {readOnly: true}}\n', 'p.yaml')
    const d = judgeOperation(ro, alice, pg('db'), op(st('set', {unseen: 'standard_conforming_strings off', writes: false})))
    assert.deepEqual([d.effect, d.ruleId], ['block', 'ro'])
    assert.match(d.message, /cannot be shown to be read-only/)
  })
})

describe('policy: settings match', () => {
  const P = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: no-srr, effect: block, match: {settings: ["session_replication_role", "*.secret*"]}}\n', 'p.yaml')
  it('matches SET, set_config and startup settings by name glob', () => {
    assert.equal(judgeOperation(P, alice, pg('db'), op(st('set', {settings: ['session_replication_role']}))).ruleId, 'no-srr')
    assert.equal(judgeOperation(P, alice, pg('db'), op(st('set', {settings: ['my.secret_key'], via: 'function'}))).ruleId, 'no-srr')
    assert.equal(judgeOperation(P, alice, pg('db'), op(st('set', {settings: ['search_path']}))).effect, 'allow')
    assert.equal(judgeOperation(P, alice, pg('db'), op(st('select'))).effect, 'allow')
  })
})
