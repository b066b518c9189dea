// Rewrites evidence packages the way a forger would: entries of any tar type, any name and any
// declared size, duplicates, extension headers, and bytes after the end-of-archive marker. Headers
// come from the product's own writer (tarHeader) with the one field under test changed.
import {readFileSync, writeFileSync} from 'node:fs'
import {gunzipSync, gzipSync} from 'node:zlib'
import {BLOCK, tarHeader} from '../../../src/audit/tar.js'

export interface Entry {
  name: string
  data: Buffer
  /** Tar typeflag; '0' (regular file) by default. */
  type?: string
  linkname?: string
  /** The size written in the header, when it should differ from data.length. */
  declaredSize?: number
  /** Replaces the "ustar\0" "00" magic and version (8 bytes at 257). */
  magic?: string
}

export function header(e: Entry): Buffer {
  const h = tarHeader(e.name, e.declaredSize ?? e.data.length, new Date(0))
  if (e.type !== undefined) h.write(e.type, 156, 1, 'latin1')
  if (e.linkname !== undefined) h.write(e.linkname, 157, 100, 'latin1')
  if (e.magic !== undefined) h.write(e.magic, 257, 8, 'latin1')
  h.write('        ', 148, 'latin1')
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1')
  return h
}

function padded(data: Buffer): Buffer[] {
  const rest = data.length % BLOCK
  return rest ? [data, Buffer.alloc(BLOCK - rest)] : [data]
}

/** An uncompressed tar stream: entries, then `end` (the two-zero-block marker unless given). */
export function tarBytes(entries: Entry[], end: Buffer = Buffer.alloc(2 * BLOCK)): Buffer {
  return Buffer.concat([...entries.flatMap((e) => [header(e), ...padded(e.data)]), end])
}

export function writePackage(file: string, entries: Entry[], opts: {end?: Buffer; after?: Buffer} = {}): string {
  writeFileSync(file, Buffer.concat([gzipSync(tarBytes(entries, opts.end)), opts.after ?? Buffer.alloc(0)]))
  return file
}

/** The entries of a package made by the exporter, in archive order (a plain reader, for tests). */
export function readPackage(file: string): Entry[] {
  const tar = gunzipSync(readFileSync(file))
  const out: Entry[] = []
  for (let at = 0; at + BLOCK <= tar.length; ) {
    const h = tar.subarray(at, at + BLOCK)
    if (h.every((b) => b === 0)) break
    const field = (o: number, n: number) => h.subarray(o, o + n).toString('latin1').replace(/\0.*$/s, '')
    const prefix = field(345, 155)
    const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100)
    const size = parseInt(field(124, 12), 8)
    out.push({name, data: Buffer.from(tar.subarray(at + BLOCK, at + BLOCK + size))})
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK
  }
  return out
}

/** The package root directory and a name inside it. */
export function rootOf(entries: Entry[]): string {
  return entries[0].name.slice(0, entries[0].name.indexOf('/'))
}

export function find(entries: Entry[], rel: string): Entry {
  const e = entries.find((x) => x.name.endsWith(`/${rel}`))
  if (!e) throw new Error(`no ${rel} in the package`)
  return e
}
