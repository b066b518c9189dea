// A tiny element builder for the console pages. Text always goes in as text nodes (never HTML), so
// data from the gateway cannot become markup or script.
type Child = Node | string | number | null | undefined | false
type Attrs = Record<string, string | number | boolean | ((ev: Event) => void) | undefined>

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v)
    else if (v === true) el.setAttribute(k, '')
    else el.setAttribute(k, String(v))
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c))
  return el
}

/** Replaces the main region's content and moves keyboard focus to its heading. */
export function render(...children: Child[]): void {
  const main = document.getElementById('main')!
  main.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false).map((c) => (c instanceof Node ? c : String(c))))
}

export function ago(iso: string | undefined): string {
  if (!iso) return ''
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

/** A labelled form field: every input has a label a screen reader announces. */
export function field(label: string, input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement): HTMLElement {
  return h('div', {class: 'field'}, h('label', {for: input.id}, label), input)
}

export function table(headers: string[], rows: Node[][], caption: string): HTMLTableElement {
  return h(
    'table',
    {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))),
  )
}

export function status(kind: 'ok' | 'error' | 'info', text: string): HTMLElement {
  return h('p', {class: `status ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, text)
}
