// The built CLI as an auditor runs it (`node bin/run.js ...`), for the audit integration tests.
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('../../../', import.meta.url))

/** Runs `hoop ARGS...` from dist/ without the environment's signing key. */
export function hoop(...args: string[]): {code: number | null; out: string; err: string} {
  const r = spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {encoding: 'utf8', env: {...process.env, HOOP_AUDIT_SIGNING_KEY: ''}})
  return {code: r.status, out: r.stdout, err: r.stderr}
}

/** Whether `npm run build` has made the command (the tests skip otherwise). */
export function built(command: string): boolean {
  return existsSync(join(root, `dist/commands/${command}.js`))
}
