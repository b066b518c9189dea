// The console's entry module: loads the session (who is signed in), draws the navigation, and
// renders the page named by the URL path (/console/<page>[/<id>]).
import {loadSession, logout, type Session} from './api.js'
import {approvalPage, approvalsPage} from './approvals.js'
import {connectionsPage} from './connections.js'
import {h, status} from './dom.js'
import {evidencePage} from './evidence.js'
import {policyPage} from './policy.js'
import {sessionPage, sessionsPage} from './sessions.js'

const PAGES = [
  ['connections', 'Connections'],
  ['approvals', 'Approvals'],
  ['sessions', 'Sessions'],
  ['evidence', 'Evidence'],
  ['policy', 'Policy'],
] as const

function nav(session: Session, current: string): void {
  const out = h('button', {type: 'button', id: 'logout'}, 'Sign out')
  out.addEventListener('click', () => {
    void logout().then(() => {
      document.getElementById('main')!.replaceChildren(h('h1', {}, 'Signed out'), h('p', {}, h('a', {href: '/console/login'}, 'Sign in again')))
      document.getElementById('top')!.replaceChildren()
    })
  })
  document.getElementById('top')!.replaceChildren(
    h(
      'nav',
      {'aria-label': 'Console'},
      h('a', {href: '/console/', class: 'brand'}, 'hoop'),
      h('ul', {}, ...PAGES.map(([p, label]) => h('li', {}, h('a', {href: `/console/${p}`, 'aria-current': p === current ? 'page' : undefined}, label)))),
      h('span', {class: 'who', id: 'who'}, `${session.identity.name} · ${session.identity.groups.join(', ') || 'no groups'}`),
      out,
    ),
  )
}

async function main(): Promise<void> {
  const session = await loadSession()
  const [, , page = '', id] = location.pathname.split('/')
  const current = page || 'connections'
  nav(session, current)
  document.title = `${PAGES.find(([p]) => p === current)?.[1] ?? 'hoop'} · hoop console`
  switch (current) {
    case 'approvals':
      return id ? approvalPage(decodeURIComponent(id)) : approvalsPage()
    case 'sessions':
      return id ? sessionPage(decodeURIComponent(id)) : sessionsPage()
    case 'evidence':
      return evidencePage()
    case 'policy':
      return policyPage()
    default:
      return connectionsPage()
  }
}

main().catch((err: unknown) => document.getElementById('main')!.replaceChildren(status('error', String((err as Error).message ?? err))))
