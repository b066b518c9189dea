// Policy (auditors and admins): the rules in force, read-only, with their ids; and a form that asks
// the gateway the question `hoop policy test` asks offline: may this subject run this statement
// on this connection? The answer comes from the same analysers and policy functions.
import {post, get} from './api.js'
import {field, h, render, status} from './dom.js'

interface Rule {
  id: string
  effect: string
  [k: string]: unknown
}

interface TestResult {
  access: {allowed: boolean; ruleId: string; reason: string}
  decision?: {effect: string; ruleId: string; message?: string}
}

export function policyPage(): void {
  const rules = h('div', {id: 'rules'}, 'Loading…')
  const input = (id: string) => h('input', {id, name: id, type: 'text'})
  const user = input('user')
  const groups = input('groups')
  const connection = h('select', {id: 'connection', name: 'connection'})
  const sql = h('textarea', {id: 'sql', name: 'sql', rows: 3})
  const answer = h('div', {id: 'answer', 'aria-live': 'polite'})
  const form = h(
    'form',
    {id: 'policy-test'},
    field('User (email)', user),
    field('Groups (comma separated)', groups),
    field('Connection', connection),
    field('Statement (optional)', sql),
    h('button', {type: 'submit'}, 'Ask'),
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    const body = {user: user.value, groups: groups.value.split(',').map((g) => g.trim()).filter(Boolean), connection: connection.value, ...(sql.value.trim() ? {sql: sql.value} : {})}
    void post<TestResult>('/v1/policy/test', body).then(
      (r) => {
        const lines = [status(r.access.allowed ? 'ok' : 'error', `access: ${r.access.allowed ? 'allow' : 'deny'} [rule ${r.access.ruleId}]`)]
        if (r.decision) lines.push(status(r.decision.effect === 'allow' ? 'ok' : 'error', `statement: ${r.decision.effect} [rule ${r.decision.ruleId}]${r.decision.effect !== 'allow' && r.decision.message ? ` ${r.decision.message}` : ''}`))
        answer.replaceChildren(...lines)
      },
      (err: Error) => answer.replaceChildren(status('error', err.message)),
    )
  })
  render(h('h1', {}, 'Policy'), h('section', {}, h('h2', {}, 'Rules in force'), rules), h('section', {}, h('h2', {}, 'May this subject run this statement on this connection?'), form, answer))
  void get<{version: string; rules: Rule[]; connections: {name: string; type: string}[]}>('/v1/policy').then(
    (p) => {
      connection.replaceChildren(...p.connections.map((c) => h('option', {value: c.name}, `${c.name} (${c.type})`)))
      rules.replaceChildren(
        h('p', {}, `Policy version ${p.version}, ${p.rules.length} rules, first match wins within each effect as documented.`),
        h('ol', {class: 'rules'}, ...p.rules.map((r) => h('li', {}, h('strong', {class: 'rule-id'}, r.id), ` ${r.effect}`, h('pre', {}, JSON.stringify({...r, id: undefined, effect: undefined}, null, 2))))),
      )
    },
    (err: Error) => rules.replaceChildren(status('error', err.message)),
  )
}
