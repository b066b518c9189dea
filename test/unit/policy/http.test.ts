// HTTP rules: one policy judges PostgreSQL, MySQL and HTTP. Request match keys (methods, paths,
// query, body, bodyUnreadable), writes for HTTP, read-only grants, mask.fields, the two key
// families never matching each other, and validation errors with their line numbers.
import assert from 'node:assert/strict'
import type {Identity} from '../../../src/identity/types.js'
import {httpMatches, isHttpWrite, judgeOperation, maskPlan, statementMatches} from '../../../src/policy/evaluate.js'
import {parsePolicy} from '../../../src/policy/load.js'
import type {HttpRequestInfo, Operation, Statement, StatementMatcher} from '../../../src/policy/types.js'
import {HoopError} from '../../../src/shared/errors.js'
import {compileJsonPath, type JsonPath, selectJsonValues} from '../../../src/shared/json-path.js'
import type {SourceProblem} from '../../../src/shared/yaml-source.js'

const alice: Identity = {kind: 'user', subject: 'u-alice', name: 'Alice', email: 'alice@example.com', groups: ['engineering']}
const olga: Identity = {kind: 'user', subject: 'u-olga', name: 'Olga', email: 'olga@example.com', groups: ['ops']}

const api = {name: 'billing-api', type: 'http'}
const pgConn = {name: 'orders-db', type: 'postgres'}
const myConn = {name: 'shop-db', type: 'mysql'}

function req(method: string, path: string, extra: Partial<HttpRequestInfo> = {}): Operation {
  return {engine: 'http', statements: [], http: {method, path, query: {}, target: path, bodyStatus: 'none', fingerprint: 'f', ...extra}}
}
const json = (body: unknown): Partial<HttpRequestInfo> => ({bodyStatus: 'json', body, contentType: 'application/json'})
function sql(kind: Statement['kind'], extra: Partial<Statement> = {}, engine: 'postgres' | 'mysql' = 'postgres'): Operation {
  const writes = !['select', 'show', 'transaction', 'explain', 'set'].includes(kind)
  return {engine, statements: [{kind, command: kind.toUpperCase(), tables: ['t'], writes, functions: [], index: 0, ...extra}]}
}

function matcher(yaml: string): StatementMatcher {
  const p = parsePolicy(`version: 1\nrules:\n  - id: r\n    effect: block\n    match: ${yaml}\n`, 'm.yaml')
  return p.rules[0].match!
}
const h = (method: string, path: string, extra: Partial<HttpRequestInfo> = {}): HttpRequestInfo => req(method, path, extra).http!

function problems(text: string): SourceProblem[] {
  try {
    parsePolicy(text, 'policy.yaml')
  } catch (err) {
    assert.ok(err instanceof HoopError, String(err))
    assert.equal(err.code, 'CONFIG_INVALID')
    return (err.details as {problems: SourceProblem[]}).problems
  }
  assert.fail('expected the policy to be rejected')
}
/** Exactly one problem, on `line`, whose message contains `text`. */
function one(yaml: string, line: number, text: string): void {
  const ps = problems(yaml)
  assert.equal(ps.length, 1, JSON.stringify(ps))
  assert.equal(ps[0].line, line, JSON.stringify(ps[0]))
  assert.ok(ps[0].message.includes(text), ps[0].message)
}
const rule = (lines: string) => `version: 1\nrules:\n  - id: r\n${lines}`

// The docs/policy.md example in spirit: a PostgreSQL db, a MariaDB db and an HTTP API under one policy.
const POLICY = parsePolicy(
  `version: 1
rules:
  - id: engineers-read
    subjects: {groups: [engineering]}
    connections: [orders-db, shop-db, billing-api]
    effect: allow
    limits: {readOnly: true}
  - id: ops-write
    subjects: {groups: [ops]}
    connections: [orders-db, shop-db, billing-api]
    effect: allow
  - id: no-drop
    match: {kinds: [drop, truncate]}
    effect: block
  - id: no-user-deletes
    types: [http]
    match: {methods: [DELETE], paths: ["/v1/users/*"]}
    effect: block
  - id: no-force
    match: {query: {force: "*"}}
    effect: block
  - id: unreadable-bodies
    types: [http]
    match: {methods: [POST, PUT, PATCH], bodyUnreadable: true}
    effect: block
  - id: big-refunds
    match: {paths: ["/v1/refunds"], body: {"$.amount": {gt: 1000}}}
    effect: review
    review: {approvers: {groups: [finance]}}
  - id: writes-need-approval
    subjects: {groups: [ops]}
    match: {writes: true}
    effect: review
    review: {approvers: {groups: [dba]}, ttl: 30m}
  - id: pii-sql
    types: [postgres, mysql]
    effect: mask
    mask: {columns: ["*.email"], entities: [email]}
  - id: pii-http
    connections: [billing-api]
    effect: mask
    mask: {fields: ["$.customer.email", "$.items[*].card"], entities: [card]}
  - id: pii-http-more
    types: [http]
    effect: mask
    mask: {fields: [email, "$.customer.email"]}
`,
  'policy.yaml',
)

describe('policy: HTTP requests', () => {
  it('lets a rule with no match fire on an HTTP request (statements are empty for HTTP)', () => {
    const p = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: everything, effect: block, message: closed}\n', 'p.yaml')
    const d = judgeOperation(p, alice, api, req('GET', '/'))
    assert.deepEqual([d.effect, d.ruleId, d.message, d.statement], ['block', 'everything', 'closed', undefined])
    const r = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: look, effect: review, review: {approvers: {groups: [dba]}}}\n', 'p.yaml')
    assert.deepEqual([judgeOperation(r, alice, api, req('GET', '/')).effect, judgeOperation(r, alice, api, req('GET', '/')).ruleId], ['review', 'look'])
  })

  it('blocks POST for a read-only grant with the allow rule id, and lets GET, HEAD and OPTIONS through', () => {
    const d = judgeOperation(POLICY, alice, api, req('POST', '/v1/invoices', json({a: 1})))
    assert.equal(d.effect, 'block')
    assert.equal(d.ruleId, 'engineers-read')
    assert.equal(d.statement, undefined)
    assert.match(d.message, /POST \/v1\/invoices is not a read .*billing-api is read-only for you \(rule engineers-read\)/)
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'get']) assert.deepEqual([m, judgeOperation(POLICY, alice, api, req(m, '/v1/invoices')).effect], [m, 'allow'])
    for (const m of ['PUT', 'PATCH', 'DELETE', 'TRACE', 'PROPFIND']) assert.equal(judgeOperation(POLICY, alice, api, req(m, '/v1/invoices')).ruleId, 'engineers-read', m)
    assert.deepEqual([isHttpWrite('GET'), isHttpWrite('post'), isHttpWrite('OPTIONS')], [false, true, false])
  })

  it('sends HTTP writes to review with writes: true, and lets reads through', () => {
    const d = judgeOperation(POLICY, olga, api, req('PATCH', '/v1/invoices/3', json({paid: true})))
    assert.equal(d.effect, 'review')
    assert.equal(d.ruleId, 'writes-need-approval')
    assert.deepEqual(d.review, {ruleId: 'writes-need-approval', approvers: {groups: ['dba']}, approvals: 1, ttlSeconds: 1800, scope: 'statement'})
    assert.match(d.message, /PATCH \/v1\/invoices\/3 needs approval/)
    const get = judgeOperation(POLICY, olga, api, req('GET', '/v1/invoices/3'))
    assert.deepEqual([get.effect, get.ruleId], ['allow', 'ops-write'])
    assert.equal(statementMatches(matcher('{writes: false}'), sql('select').statements[0]), true)
    assert.equal(httpMatches(matcher('{writes: false}'), h('HEAD', '/')), true)
    assert.equal(httpMatches(matcher('{writes: false}'), h('POST', '/')), false)
  })

  it('matches methods and path globs on the normalised path; block beats review', () => {
    const d = judgeOperation(POLICY, olga, api, req('DELETE', '/v1/users/7'))
    assert.deepEqual([d.effect, d.ruleId], ['block', 'no-user-deletes'])
    assert.match(d.message, /DELETE \/v1\/users\/7 is blocked by rule no-user-deletes/)
    // Another method, or another path: only the writes review is left.
    assert.equal(judgeOperation(POLICY, olga, api, req('DELETE', '/v1/groups/7')).ruleId, 'writes-need-approval')
    assert.equal(judgeOperation(POLICY, olga, api, req('PUT', '/v1/users/7')).ruleId, 'writes-need-approval')
    const m = matcher('{methods: [delete], paths: ["/v1/users/*", "/admin"]}')
    assert.deepEqual(m.methods, ['DELETE'])
    assert.ok(httpMatches(m, h('DELETE', '/v1/users/7/roles/2')), '* spans segments')
    assert.ok(httpMatches(m, h('DELETE', '/V1/Users/7')), 'case-insensitive')
    assert.ok(httpMatches(m, h('DELETE', '/admin/')), 'trailing slash')
    assert.ok(httpMatches(m, h('DELETE', '//admin')), 'repeated slashes')
    assert.ok(!httpMatches(m, h('DELETE', '/v1/users')), '"/v1/users/*" needs something after the slash')
    assert.ok(!httpMatches(m, h('DELETE', '/administrators')))
    assert.ok(!httpMatches(m, h('GET', '/admin')))
  })

  it('matches query parameters by glob, "*" meaning present, names ignoring case', () => {
    const d = judgeOperation(POLICY, olga, api, req('GET', '/v1/jobs', {query: {force: ['']}}))
    assert.deepEqual([d.effect, d.ruleId], ['block', 'no-force'])
    assert.equal(judgeOperation(POLICY, olga, api, req('GET', '/v1/jobs', {query: {forced: ['1']}})).ruleId, 'ops-write')
    const m = matcher('{query: {dryRun: "false", limit: "1000*"}}')
    assert.ok(httpMatches(m, h('GET', '/', {query: {dryrun: ['true', 'FALSE'], limit: ['10000']}})), 'any value of a repeated parameter')
    assert.ok(!httpMatches(m, h('GET', '/', {query: {dryRun: ['true'], limit: ['10000']}})))
    assert.ok(!httpMatches(m, h('GET', '/', {query: {dryRun: ['false']}})), 'every parameter given must match')
    assert.ok(!httpMatches(m, h('GET', '/')), 'no query at all')
  })

  it('matches body fields by value, glob and range, and never an unread body', () => {
    const big = judgeOperation(POLICY, alice, api, req('GET', '/v1/refunds', json({amount: 5000})))
    assert.deepEqual([big.effect, big.ruleId], ['review', 'big-refunds'])
    assert.equal(judgeOperation(POLICY, alice, api, req('GET', '/v1/refunds', json({amount: 1000}))).effect, 'allow')
    assert.equal(judgeOperation(POLICY, alice, api, req('GET', '/v1/refunds', json({amount: '1000.5'}))).ruleId, 'big-refunds', 'numeric strings compare as numbers')

    const m = matcher(`{body: {"$.customer.role": "admin*", "$.items[*].qty": {gte: 10, lt: 100}, "$.dryRun": false, "$.note": null}}`)
    const doc = {customer: {role: 'Administrator'}, items: [{qty: 1}, {qty: 10}], dryRun: false, note: null}
    assert.ok(httpMatches(m, h('POST', '/', json(doc))))
    assert.ok(!httpMatches(m, h('POST', '/', json({...doc, items: [{qty: 100}]}))), 'lt is exclusive')
    assert.ok(!httpMatches(m, h('POST', '/', json({...doc, dryRun: true}))))
    assert.ok(httpMatches(m, h('POST', '/', json({...doc, dryRun: 'false'}))), 'booleans also match their text')
    assert.ok(!httpMatches(m, h('POST', '/', json({...doc, note: 'x'}))))
    assert.ok(!httpMatches(m, h('POST', '/', json({...doc, customer: {}}))), 'a missing field fails a value test')

    const any = matcher('{body: {email: "*@evil.test", "$.roles": admin, "$.meta": "*"}}')
    const ok = {user: {email: 'x@EVIL.test'}, roles: ['user', 'admin'], meta: {}}
    assert.ok(httpMatches(any, h('POST', '/', json(ok))), '"email" is any depth; arrays are searched; "*" is present')
    assert.ok(!httpMatches(any, h('POST', '/', json({user: ok.user, roles: ok.roles}))), '"*" needs the field')
    assert.ok(!httpMatches(any, h('POST', '/', json({...ok, roles: ['user']}))))

    const num = matcher('{body: {"$.amount": 100}}')
    assert.ok(httpMatches(num, h('POST', '/', json({amount: 100}))))
    assert.ok(httpMatches(num, h('POST', '/', json({amount: '100'}))))
    assert.ok(!httpMatches(num, h('POST', '/', json({amount: 101}))))
    for (const bodyStatus of ['none', 'not-inspected', 'too-large', 'invalid-json'] as const) {
      assert.ok(!httpMatches(num, h('POST', '/', {bodyStatus})), bodyStatus)
    }
  })

  it('matches unreadable bodies (too large, invalid JSON) with bodyUnreadable, so body rules can fail closed', () => {
    for (const bodyStatus of ['too-large', 'invalid-json'] as const) {
      const d = judgeOperation(POLICY, olga, api, req('POST', '/v1/refunds', {bodyStatus, contentType: 'application/json'}))
      assert.deepEqual([bodyStatus, d.effect, d.ruleId], [bodyStatus, 'block', 'unreadable-bodies'])
    }
    for (const bodyStatus of ['none', 'json', 'not-inspected'] as const) {
      assert.equal(judgeOperation(POLICY, olga, api, req('POST', '/v1/refunds', {bodyStatus, body: {amount: 1}})).ruleId, 'writes-need-approval', bodyStatus)
    }
    assert.ok(httpMatches(matcher('{bodyUnreadable: false}'), h('POST', '/', json({}))))
  })

  it('never fires SQL rules on HTTP requests, nor HTTP rules on SQL statements', () => {
    const sqlOnly: StatementMatcher[] = ['{kinds: [select, drop, other]}', '{tables: ["*"]}', '{commands: ["*"]}', '{unparsable: true}', '{where: absent}', '{functions: ["*"]}', '{opaque: false}'].map(matcher)
    for (const m of sqlOnly) {
      for (const method of ['GET', 'POST', 'DELETE']) assert.equal(httpMatches(m, h(method, '/x', json({}))), false, `${JSON.stringify(m)} ${method}`)
    }
    const httpOnly: StatementMatcher[] = ['{methods: [GET, POST, DELETE]}', '{paths: ["*"]}', '{query: {a: "*"}}', '{body: {"$.a": "*"}}', '{bodyUnreadable: false}'].map(matcher)
    for (const m of httpOnly) {
      for (const kind of ['select', 'drop', 'delete'] as const) assert.equal(statementMatches(m, sql(kind).statements[0]), false, `${JSON.stringify(m)} ${kind}`)
    }
    // Through judgeOperation: no-drop never blocks a request, no-user-deletes never a statement.
    assert.equal(judgeOperation(POLICY, olga, pgConn, sql('drop')).ruleId, 'no-drop')
    assert.equal(judgeOperation(POLICY, olga, myConn, sql('delete', {}, 'mysql')).ruleId, 'writes-need-approval')
    assert.equal(judgeOperation(POLICY, alice, pgConn, sql('select')).effect, 'allow')
    const p = parsePolicy('version: 1\nrules:\n  - {id: all, effect: allow}\n  - {id: h, match: {paths: ["*"]}, effect: block}\n  - {id: s, match: {kinds: [select, insert, other]}, effect: review, review: {approvers: {groups: [x]}}}\n', 'p.yaml')
    assert.deepEqual([judgeOperation(p, alice, api, req('POST', '/')).ruleId, judgeOperation(p, alice, pgConn, sql('select')).ruleId], ['h', 's'])
    assert.equal(judgeOperation(p, alice, api, {engine: 'http', statements: sql('select').statements, http: h('GET', '/')}).ruleId, 'h', 'HTTP is judged on the request, not on statements')
  })

  it('treats an HTTP operation without its request as unreadable (fail closed)', () => {
    const d = judgeOperation(POLICY, olga, api, {engine: 'http', statements: []})
    assert.deepEqual([d.effect, d.ruleId], ['block', 'default-unparsable'])
    assert.match(d.message, /not described/)
  })

  it('accumulates mask.fields from every matching mask rule, without duplicates', () => {
    const d = judgeOperation(POLICY, alice, api, req('GET', '/v1/customers/1'))
    assert.deepEqual(d.mask.ruleIds, ['pii-http', 'pii-http-more'])
    assert.deepEqual(d.mask.fields, ['$.customer.email', '$.items[*].card', 'email'])
    assert.deepEqual(d.mask.entities, ['card'])
    assert.deepEqual(d.mask.columns, [])
    const db = maskPlan(POLICY, alice, pgConn)
    assert.deepEqual([db.ruleIds, db.fields, db.columns.map((c) => c.text)], [['pii-sql'], [], ['*.email']])
    // A refusal carries the plan too (engines ignore it), so the same call answers both.
    assert.deepEqual(judgeOperation(POLICY, alice, api, req('POST', '/x')).mask.fields, d.mask.fields)
  })
})

describe('policy: HTTP rule validation', () => {
  it('accepts every HTTP key', () => {
    const p = parsePolicy(
      rule(`    effect: block
    types: [http]
    match:
      methods: [get, POST, M-SEARCH]
      paths: ["/v1/*", "*/admin"]
      query: {force: "*", limit: 100, dry: true}
      body: {"$.a.b": x, "$.n": {gt: 1, lte: 5}, "items[*].sku": 3, "$['odd key']": null}
      bodyUnreadable: true
      writes: true
`),
      'p.yaml',
    )
    const m = p.rules[0].match!
    assert.deepEqual(m.methods, ['GET', 'POST', 'M-SEARCH'])
    assert.deepEqual(m.query, {force: '*', limit: '100', dry: 'true'})
    assert.deepEqual(
      m.body!.map((b) => [b.path, b.test]),
      [
        ['$.a.b', {kind: 'glob', glob: 'x'}],
        ['$.n', {kind: 'range', gt: 1, lte: 5}],
        ['items[*].sku', {kind: 'equals', value: 3}],
        ["$['odd key']", {kind: 'equals', value: null}],
      ],
    )
  })

  it('rejects a match mixing SQL and HTTP keys, on the match line', () => {
    one(rule('    effect: block\n    match: {tables: [users], paths: ["/users"]}\n'), 5, 'mixes the SQL key "tables" with the HTTP key "paths"')
    one(rule('    effect: review\n    review: {approvers: {groups: [a]}}\n    match:\n      kinds: [delete]\n      methods: [DELETE]\n'), 7, 'write two rules')
    // writes belongs to both families.
    assert.doesNotThrow(() => parsePolicy(rule('    effect: block\n    match: {writes: true, methods: [POST]}\n'), 'p.yaml'))
    assert.doesNotThrow(() => parsePolicy(rule('    effect: block\n    match: {writes: true, kinds: [insert]}\n'), 'p.yaml'))
  })

  it('rejects a rule whose keys cannot meet its connection types', () => {
    one(rule('    effect: block\n    types: [postgres, mysql]\n    match: {methods: [DELETE]}\n'), 5, 'match.methods judges HTTP requests, but types (postgres, mysql) has no http')
    one(rule('    effect: block\n    types: [http]\n    match: {kinds: [drop]}\n'), 5, 'match.kinds judges SQL statements, but types (http) has neither postgres nor mysql')
  })

  it('reports bad methods, paths, query and body entries with their lines', () => {
    one(rule('    effect: block\n    match:\n      methods:\n        - GET\n        - "GET /x"\n'), 8, '"GET /x" is not an HTTP method')
    one(rule('    effect: block\n    match:\n      paths: ["/ok", "v1/users"]\n'), 6, '"v1/users" must start with "/"')
    one(rule('    effect: block\n    match:\n      paths: ["/a b"]\n'), 6, 'bad glob "/a b"')
    one(rule('    effect: block\n    match:\n      query: {}\n'), 6, 'must be a mapping of parameter name to glob')
    one(rule('    effect: block\n    match:\n      query:\n        force: [a, b]\n'), 7, 'match.query.force: bad glob')
    one(rule('    effect: block\n    match:\n      body:\n        "$.a": 1\n        "$.b[?(@.x)]": 2\n'), 8, 'bad JSON path "$.b[?(@.x)]"')
    one(rule('    effect: block\n    match:\n      body:\n        "$.a": {gt: 5, lt: 5}\n'), 7, 'could never hold')
    one(rule('    effect: block\n    match:\n      body:\n        "$.a": {above: 5}\n'), 7, 'unknown key "above" in body condition')
    one(rule('    effect: block\n    match:\n      body:\n        "$.a":\n          gt: "5"\n'), 8, 'match.body.$.a.gt must be a number')
    one(rule('    effect: block\n    match:\n      body:\n        "$.a": [1, 2]\n'), 7, 'a list is not supported')
    one(rule('    effect: block\n    match:\n      body:\n        "$.a": ""\n'), 7, 'write "*" for "present"')
    one(rule('    effect: block\n    match:\n      bodyUnreadable: yes\n'), 6, 'bodyUnreadable must be true or false')
  })

  it('validates mask.fields as JSON paths, with their lines', () => {
    const p = parsePolicy(rule('    effect: mask\n    mask: {fields: ["$.customer.email", "$.items[*].card", email]}\n'), 'p.yaml')
    assert.deepEqual(p.rules[0].mask, {columns: [], entities: [], fields: ['$.customer.email', '$.items[*].card', 'email']})
    one(rule('    effect: mask\n    mask:\n      fields:\n        - $.ok\n        - "$"\n'), 8, 'bad JSON path "$": the root "$" cannot be masked')
    one(rule('    effect: mask\n    mask:\n      fields: "$.a["\n'), 6, 'unclosed "["')
    one(rule('    effect: mask\n    mask: {entities: [email], fields: []}\n'), 5, 'fields must be a non-empty list of strings')
  })
})

describe('json paths over parsed documents', () => {
  const path = (t: string) => compileJsonPath(t) as JsonPath
  it('selects members, elements, wildcards and any depth', () => {
    const doc = {a: {b: [1, {c: 2}], c: 3}, list: [{c: 4}, {d: 5}]}
    assert.deepEqual(selectJsonValues(doc, path('$.a.b[1].c')), [2])
    assert.deepEqual(selectJsonValues(doc, path('$.list[*].c')), [4])
    assert.deepEqual(selectJsonValues(doc, path('c'))?.sort(), [2, 3, 4])
    assert.deepEqual(selectJsonValues(doc, path('$..[0]'))?.sort(), [1, {c: 4}])
    assert.deepEqual(selectJsonValues(doc, path('$.a.*')), [[1, {c: 2}], 3])
    assert.deepEqual(selectJsonValues(doc, path('$..*'))?.length, 11, 'every value below the root')
    assert.deepEqual(selectJsonValues(doc, path('$.missing.c')), [])
  })
  it('walks a deeply nested document without recursion, and gives up past its budget', () => {
    let deep: unknown = {email: 'x'}
    for (let i = 0; i < 100_000; i++) deep = [deep]
    assert.deepEqual(selectJsonValues(deep, path('email')), ['x'])
    assert.equal(selectJsonValues(deep, path('email'), 1000), undefined)
    // A budget overrun counts as a match for a body rule (cannot be shown not to match).
    // Nested "..": each value is visited once per step, not once per enclosing match.
    let chain: unknown = 0
    for (let i = 0; i < 5000; i++) chain = {a: chain}
    assert.equal(selectJsonValues(chain, path('$..a..a..a'), 60_000)?.length, 4998)
    assert.ok(!httpMatches(matcher('{body: {"$.a.a.a": 1}}'), h('POST', '/', json(chain))))
    const wide = {x: new Array<number>(2_100_000).fill(1)}
    assert.ok(httpMatches(matcher('{body: {"$..y": 1}}'), h('POST', '/', json(wide))), 'a body too large to search counts as a match')
  })
})
