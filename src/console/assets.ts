// The console's static assets: the browser modules and style sheet that `npm run build` writes to
// dist/console (src/console/web), read once into memory. Nothing is fetched at run time, and only
// names of this shape are served: no path ever reaches the file system from a request.
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const ASSET_NAME = /^[a-z][a-z0-9-]{0,40}\.(js|css)$/

interface Asset {
  body: Buffer
  type: string
}

/** The package root: the first directory above this file holding package.json (src/ under tsx, dist/src/ when built). */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  let dir = here
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) return here
    dir = up
  }
  return dir
}

export function loadAssets(dir = join(packageRoot(), 'dist', 'console')): Map<string, Asset> {
  const out = new Map<string, Asset>()
  if (!existsSync(dir)) return out
  for (const name of readdirSync(dir)) {
    const m = ASSET_NAME.exec(name)
    if (!m) continue
    out.set(name, {body: readFileSync(join(dir, name)), type: m[1] === 'js' ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8'})
  }
  return out
}
