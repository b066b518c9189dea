// The README's command reference, generated from oclif.manifest.json so it never drifts from the
// commands themselves (a test compares the two; `npm run docs` rewrites the README section).

interface ManifestFlag {
  name: string
  char?: string
  type: 'boolean' | 'option'
  hidden?: boolean
  summary?: string
}

interface ManifestCommand {
  id: string
  summary?: string
  hidden?: boolean
  args: Record<string, {name: string; required?: boolean}>
  flags: Record<string, ManifestFlag>
}

export interface Manifest {
  commands: Record<string, ManifestCommand>
}

const REFERENCE_START = '<!-- commands:start (generated from oclif.manifest.json by `npm run docs`) -->'
const REFERENCE_END = '<!-- commands:end -->'

const COMMON = new Set(['help', 'json', 'gateway', 'token', 'log-level', 'log-format', 'credential-store'])

export function renderCommandReference(manifest: Manifest): string {
  const commands = Object.values(manifest.commands)
    .filter((c) => !c.hidden)
    .sort((a, b) => a.id.localeCompare(b.id))
  const rows = commands.map((c) => {
    const usage = ['hoop', c.id.replace(/:/g, ' '), ...Object.values(c.args).map((a) => (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`))].join(' ')
    const flags = Object.values(c.flags)
      .filter((f) => !f.hidden && !COMMON.has(f.name))
      .map((f) => '`--' + f.name + '`')
      .join(' ')
    const json = c.flags.json ? ' ✔' : ''
    return `| \`${usage}\` | ${c.summary ?? ''} | ${flags} |${json} |`
  })
  return [
    '| command | what it does | its flags | `--json` |',
    '|---|---|---|---|',
    ...rows,
    '',
    'Common flags: `--gateway URL` (or `HOOP_GATEWAY`; a comma-separated list of replicas fails over, see [docs/ha.md](docs/ha.md)), `--token` (or `HOOP_TOKEN`), `--json`, `--help`.',
  ].join('\n')
}

/** The README with its command reference section replaced by `reference`. */
export function withCommandReference(readme: string, reference: string): string {
  const start = readme.indexOf(REFERENCE_START)
  const end = readme.indexOf(REFERENCE_END)
  if (start < 0 || end < start) throw new Error('README.md has no command reference markers')
  return readme.slice(0, start + REFERENCE_START.length) + '\n' + reference + '\n' + readme.slice(end)
}
