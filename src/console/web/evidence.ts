// Evidence (auditors): export a package for a time range, connection or user and download it (the
// same package as `hoop audit export`, which `hoop audit verify` checks offline); the latest signed
// tree head and its anchor, a "verify now" of the live store, and who exported what and when.
import {get} from './api.js'
import {field, h, render, status, table} from './dom.js'

interface Head {
  head?: {tree_size: number; root_hash: string; timestamp: string; key_fingerprint?: string}
  anchor?: {state: string; tree_size?: number; timestamp?: string; tsa?: string; reason?: string}
  fingerprint: string
}

interface Verify {
  ok: boolean
  events: number
  treeSize?: number
  checkpoints: number
  checks: {name: string; ok: boolean}[]
  first?: {seq?: number; reason?: string; message?: string}
}

interface ExportRecord {
  seq: number
  time: string
  who: string
  from?: string
  to?: string
  connection?: string
  user?: string
  events?: number
  sha256?: string
}

export function evidencePage(): void {
  const input = (id: string, type = 'text') => h('input', {id, name: id, type})
  const from = input('from', 'date')
  const to = input('to', 'date')
  const connection = input('connection')
  const user = input('user')
  const link = h('a', {id: 'download', href: '/console/api/v1/audit/export', download: 'evidence.tar.gz', class: 'button'}, 'Download evidence package')
  const update = () => {
    const q = new URLSearchParams()
    for (const [k, el] of [['from', from], ['to', to], ['connection', connection], ['user', user]] as const) if (el.value) q.set(k, el.value)
    link.href = `/console/api/v1/audit/export${q.size ? `?${q}` : ''}`
  }
  for (const el of [from, to, connection, user]) el.addEventListener('input', update)
  const head = h('div', {id: 'head'}, 'Loading…')
  const verified = h('div', {id: 'verified', 'aria-live': 'polite'})
  const verify = h('button', {type: 'button', id: 'verify'}, 'Verify now')
  verify.addEventListener('click', () => {
    verified.replaceChildren(status('info', 'Verifying…'))
    void get<Verify>('/v1/audit/verify').then(
      (v) =>
        verified.replaceChildren(
          status(v.ok ? 'ok' : 'error', v.ok ? `Verified: ${v.events} events, ${v.checkpoints} signed heads, every check passed.` : `FAILED: ${v.first?.message ?? v.first?.reason ?? 'see the checks'}`),
          h('ul', {}, ...v.checks.map((c) => h('li', {}, `${c.ok ? '✓' : '✗'} ${c.name}`))),
        ),
      (err: Error) => verified.replaceChildren(status('error', err.message)),
    )
  })
  const exportsList = h('div', {id: 'exports'}, 'Loading…')
  render(
    h('h1', {}, 'Evidence'),
    h(
      'section',
      {},
      h('h2', {}, 'Export a package'),
      h('form', {class: 'filters', onsubmit: (e: Event) => e.preventDefault()}, field('From (date, UTC)', from), field('To (date, UTC)', to), field('Connection', connection), field('User (subject)', user)),
      h('p', {}, link),
      h('p', {class: 'hint'}, 'Check it offline with: hoop audit verify evidence.tar.gz'),
    ),
    h('section', {}, h('h2', {}, 'Latest signed tree head'), head, verify, verified),
    h('section', {}, h('h2', {}, 'Exports'), exportsList),
  )
  void get<Head>('/v1/audit/head').then(
    (x) =>
      head.replaceChildren(
        h(
          'dl',
          {},
          h('dt', {}, 'Tree size'),
          h('dd', {id: 'tree-size'}, String(x.head?.tree_size ?? 0)),
          h('dt', {}, 'Root hash'),
          h('dd', {}, h('code', {}, x.head?.root_hash ?? '—')),
          h('dt', {}, 'Signed at'),
          h('dd', {}, x.head?.timestamp ?? '—'),
          h('dt', {}, 'Key fingerprint'),
          h('dd', {}, h('code', {}, x.fingerprint)),
          h('dt', {}, 'Anchor (witness file)'),
          h('dd', {id: 'anchor'}, x.anchor?.state === 'ok' ? `head of size ${x.anchor.tree_size} published ${x.anchor.timestamp}${x.anchor.tsa ? `, timestamped by ${x.anchor.tsa}` : ''}` : (x.anchor?.reason ?? x.anchor?.state ?? 'none')),
        ),
      ),
    (err: Error) => head.replaceChildren(status('error', err.message)),
  )
  void get<{exports: ExportRecord[]}>('/v1/audit/exports').then(
    ({exports}) =>
      exportsList.replaceChildren(
        exports.length === 0
          ? status('info', 'No package exported yet.')
          : table(
              ['When', 'Who', 'Range', 'Connection', 'User', 'Events', 'SHA-256'],
              exports.map((e) => [e.time, e.who, `${e.from ?? 'start'} – ${e.to ?? 'now'}`, e.connection ?? 'all', e.user ?? 'all', String(e.events ?? ''), e.sha256 ? e.sha256.slice(0, 16) + '…' : ''].map((t) => document.createTextNode(t))),
              'Evidence exports, newest first',
            ),
      ),
    (err: Error) => exportsList.replaceChildren(status('error', err.message)),
  )
}
