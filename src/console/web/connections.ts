// Connections the signed-in person may use (the same list as `hoop connections`), each with its
// agent's status and a copy-ready `hoop connect` line and, for databases, the client line.
import {get} from './api.js'
import {h, render, status, table} from './dom.js'

interface Connection {
  name: string
  type: string
  online: boolean
  description?: string
  database?: string
  username?: string
}

const LOCAL_PORT: Record<string, number> = {postgres: 5433, mysql: 3307, http: 8080, tcp: 9000}

function clientLine(c: Connection): string | undefined {
  const port = LOCAL_PORT[c.type] ?? 9000
  if (c.type === 'postgres') return `psql "host=127.0.0.1 port=${port}${c.username ? ` user=${c.username}` : ''}${c.database ? ` dbname=${c.database}` : ''}"`
  if (c.type === 'mysql') return `mysql -h 127.0.0.1 -P ${port}${c.username ? ` -u ${c.username}` : ''}${c.database ? ` ${c.database}` : ''}`
  if (c.type === 'http') return `curl http://127.0.0.1:${port}/`
  return undefined
}

/** A read-only field (selectable with the keyboard) and a Copy button. */
function copyable(id: string, label: string, text: string): HTMLElement {
  const input = h('input', {id, readonly: true, value: text, size: Math.min(70, text.length + 2), 'aria-label': label})
  const button = h('button', {type: 'button', class: 'copy', 'aria-label': `Copy: ${label}`}, 'Copy')
  button.addEventListener('click', () => {
    input.select()
    void navigator.clipboard?.writeText(text).then(
      () => (button.textContent = 'Copied'),
      () => (button.textContent = 'Press Ctrl+C'),
    )
  })
  return h('div', {class: 'copyable'}, input, button)
}

export async function connectionsPage(): Promise<void> {
  render(h('h1', {}, 'Connections'), h('p', {}, 'Loading…'))
  let list: Connection[]
  try {
    list = (await get<{connections: Connection[]}>('/v1/connections')).connections
  } catch (err) {
    render(h('h1', {}, 'Connections'), status('error', (err as Error).message))
    return
  }
  const gateway = location.origin
  render(
    h('h1', {}, 'Connections'),
    list.length === 0
      ? status('info', 'No connection is open to you by policy.')
      : table(
          ['Name', 'Type', 'Status', 'Connect'],
          list.map((c) => {
            const line = clientLine(c)
            return [
              h('span', {}, h('strong', {}, c.name), c.description ? h('br') : '', c.description ?? ''),
              document.createTextNode(c.type),
              h('span', {class: c.online ? 'online' : 'offline'}, c.online ? 'online' : 'agent offline'),
              h(
                'div',
                {},
                copyable(`connect-${c.name}`, `hoop connect ${c.name}`, `hoop connect ${c.name} --gateway ${gateway}`),
                line ? copyable(`client-${c.name}`, `client for ${c.name}`, line) : '',
              ),
            ]
          }),
          'Connections you may use',
        ),
  )
}
