// Approvals: the inbox of pending requests, and one request's page (/console/approvals/<id>, the
// address notifications link to) with approve / reject and a reason. The gateway's approval
// service decides who may see and decide what (approver groups, no self-approval, N approvals,
// time-to-live); both pages poll so a request made or decided elsewhere shows up without a reload.
import {ApiError, get, post} from './api.js'
import {ago, field, h, render, status, table} from './dom.js'

interface Decision {
  decision: 'approve' | 'reject'
  approver: {name: string}
  reason: string
  at: string
}

interface Approval {
  id: string
  state: string
  scope: string
  ruleId: string
  connection: string
  requester: {name: string; kind: string}
  statement?: string
  requestReason?: string
  approvalsRequired: number
  durationSeconds?: number
  createdAt: string
  expiresAt: string
  decisions: Decision[]
  message: string
}

const POLL_MS = 3000
let timer: number | undefined

function poll(fn: () => Promise<void>): void {
  window.clearTimeout(timer)
  const tick = async () => {
    try {
      await fn()
    } finally {
      timer = window.setTimeout(() => void tick(), POLL_MS)
    }
  }
  void tick()
}

const what = (a: Approval) => a.statement ?? `access to ${a.connection}${a.durationSeconds ? ` for ${Math.round(a.durationSeconds / 60)} min` : ''}`

export function approvalsPage(): void {
  const state = h('select', {id: 'state'}, ...['pending', 'approved', 'rejected', 'expired', 'used', 'all'].map((s) => h('option', {value: s}, s)))
  const list = h('div', {id: 'approvals', 'aria-live': 'polite'})
  render(h('h1', {}, 'Approvals'), h('form', {class: 'filters', onsubmit: (e: Event) => e.preventDefault()}, field('Show', state)), list)
  state.addEventListener('change', () => poll(refresh))
  async function refresh(): Promise<void> {
    let approvals: Approval[]
    try {
      approvals = (await get<{approvals: Approval[]}>(`/v1/approvals?state=${encodeURIComponent(state.value)}&limit=200`)).approvals
    } catch (err) {
      list.replaceChildren(status('error', (err as Error).message))
      return
    }
    if (approvals.length === 0) {
      list.replaceChildren(status('info', state.value === 'pending' ? 'No pending requests you can see.' : 'Nothing here.'))
      return
    }
    list.replaceChildren(
      table(
        ['Request', 'Requester', 'Connection', 'Rule', 'Statement or access', 'Reason', 'Asked', 'State'],
        approvals.map((a) => [
          h('a', {href: `/console/approvals/${encodeURIComponent(a.id)}`}, a.id),
          document.createTextNode(a.requester.name),
          document.createTextNode(a.connection),
          document.createTextNode(a.ruleId),
          h('code', {}, what(a)),
          document.createTextNode(a.requestReason ?? ''),
          document.createTextNode(ago(a.createdAt)),
          document.createTextNode(`${a.state} (${a.decisions.filter((d) => d.decision === 'approve').length}/${a.approvalsRequired})`),
        ]),
        `Approval requests (${state.value})`,
      ),
    )
  }
  poll(refresh)
}

export function approvalPage(id: string): void {
  const detail = h('div', {id: 'approval', 'aria-live': 'polite'})
  const outcome = h('div', {id: 'outcome'})
  const reason = h('textarea', {id: 'reason', name: 'reason', rows: 3, maxlength: 1000, 'aria-required': 'true'})
  const approve = h('button', {type: 'submit', id: 'approve', value: 'approve'}, 'Approve')
  const reject = h('button', {type: 'submit', id: 'reject', value: 'reject', class: 'danger'}, 'Reject')
  const form = h('form', {id: 'decide'}, field('Reason (required, recorded in the audit log)', reason), h('div', {class: 'buttons'}, approve, reject))
  form.addEventListener('submit', (e: SubmitEvent) => {
    e.preventDefault()
    const action = (e.submitter as HTMLButtonElement | null)?.value === 'reject' ? 'reject' : 'approve'
    if (!reason.value.trim()) {
      outcome.replaceChildren(status('error', `A reason is required to ${action}.`))
      reason.focus()
      return
    }
    void (async () => {
      try {
        const a = await post<Approval>(`/v1/approvals/${encodeURIComponent(id)}/${action}`, {reason: reason.value})
        outcome.replaceChildren(status('ok', `${a.id} ${action === 'approve' ? 'approved' : 'rejected'}: now ${a.state}.`))
        show(a)
      } catch (err) {
        outcome.replaceChildren(status('error', err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)))
      }
    })()
  })
  render(h('p', {}, h('a', {href: '/console/approvals'}, '← All approvals')), h('h1', {}, `Request ${id}`), detail, outcome)

  function show(a: Approval): void {
    const rows: Array<[string, Node | string]> = [
      ['State', h('strong', {id: 'approval-state'}, a.state)],
      ['Requester', `${a.requester.name} (${a.requester.kind})`],
      ['Connection', a.connection],
      ['Rule', a.ruleId],
      [a.statement ? 'Statement' : 'Access', h('pre', {id: 'statement'}, what(a))],
      ['Requester\u2019s reason', a.requestReason ?? '—'],
      ['Asked', `${ago(a.createdAt)} (${a.createdAt})`],
      ['Expires', a.expiresAt],
      ['Approvals', `${a.decisions.filter((d) => d.decision === 'approve').length} of ${a.approvalsRequired}`],
    ]
    const decisions = a.decisions.map((d) => h('li', {}, `${d.decision === 'approve' ? 'Approved' : 'Rejected'} by ${d.approver.name} ${ago(d.at)}: ${d.reason}`))
    detail.replaceChildren(
      h('dl', {}, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      decisions.length ? h('section', {}, h('h2', {}, 'Decisions'), h('ul', {}, ...decisions)) : '',
      a.state === 'pending' ? form : '',
    )
  }

  poll(async () => {
    // Typing a reason must not be lost to a refresh: the form stays while the request is pending.
    try {
      const a = await get<Approval>(`/v1/approvals/${encodeURIComponent(id)}`)
      if (a.state !== 'pending' || !detail.contains(form)) show(a)
      else detail.querySelector('#approval-state')!.textContent = a.state
    } catch (err) {
      detail.replaceChildren(status('error', (err as Error).message))
    }
  })
}
