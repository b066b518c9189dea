// Sessions (auditors): the recorded sessions filtered by user, connection and time, and one
// session's replay as the client saw it (masked values stay masked: the recording is taken after
// masking). Each listing and replay is an audit.access event, as with `hoop sessions`.
import {get} from './api.js'
import {field, h, render, status, table} from './dom.js'

interface SessionItem {
  id: string
  subject: string
  connection: string
  startedAt: string
  endedAt?: string
  endReason?: string
  bytesUp: number
  bytesDown: number
}

export function sessionsPage(): void {
  const params = new URLSearchParams(location.search)
  const input = (id: string, type = 'text') => h('input', {id, name: id, type, value: params.get(id) ?? ''})
  const user = input('user')
  const connection = input('connection')
  const since = input('since', 'datetime-local')
  const until = input('until', 'datetime-local')
  const out = h('div', {id: 'sessions'})
  const form = h(
    'form',
    {class: 'filters', method: 'get', action: '/console/sessions'},
    field('User (subject)', user),
    field('Connection', connection),
    field('Started after', since),
    field('Started before', until),
    h('button', {type: 'submit'}, 'Filter'),
  )
  render(h('h1', {}, 'Sessions'), form, out)
  const q = new URLSearchParams({limit: '500'})
  if (user.value) q.set('user', user.value)
  if (connection.value) q.set('connection', connection.value)
  void get<{sessions: SessionItem[]}>(`/v1/sessions?${q}`).then(
    ({sessions}) => {
      // Time is filtered here: the listing API filters by user and connection.
      const from = since.value ? Date.parse(since.value) : -Infinity
      const to = until.value ? Date.parse(until.value) : Infinity
      const shown = sessions.filter((s) => Date.parse(s.startedAt) >= from && Date.parse(s.startedAt) <= to)
      out.replaceChildren(
        shown.length === 0
          ? status('info', 'No recorded session matches.')
          : table(
              ['Session', 'User', 'Connection', 'Started', 'Ended', 'Bytes up / down'],
              shown.map((s) => [
                h('a', {href: `/console/sessions/${encodeURIComponent(s.id)}`}, s.id),
                document.createTextNode(s.subject),
                document.createTextNode(s.connection),
                document.createTextNode(s.startedAt),
                document.createTextNode(s.endedAt ? `${s.endedAt} (${s.endReason ?? 'closed'})` : 'open'),
                document.createTextNode(`${s.bytesUp} / ${s.bytesDown}`),
              ]),
              'Recorded sessions, newest first',
            ),
      )
    },
    (err: Error) => out.replaceChildren(status('error', err.message)),
  )
}

export function sessionPage(id: string): void {
  const out = h('div', {id: 'replay'})
  render(h('p', {}, h('a', {href: '/console/sessions'}, '← All sessions')), h('h1', {}, `Session ${id}`), out)
  void get<{replay: string}>(`/v1/sessions/${encodeURIComponent(id)}`).then(
    (s) => out.replaceChildren(h('pre', {class: 'replay', tabindex: 0, 'aria-label': 'Session replay'}, s.replay)),
    (err: Error) => out.replaceChildren(status('error', err.message)),
  )
}
