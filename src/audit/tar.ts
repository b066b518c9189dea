// A small ustar writer and reader over gzip (node:zlib), enough for evidence packages: regular
// files only, streamed so a package with a million events never sits in memory at once.
import {once} from 'node:events'
import {createReadStream, createWriteStream} from 'node:fs'
import {createGunzip, createGzip, type Gzip} from 'node:zlib'

const BLOCK = 512

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0'
}

function tarHeader(name: string, size: number, mtime: Date): Buffer {
  const h = Buffer.alloc(BLOCK)
  let prefix = ''
  let base = name
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 154)
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new RangeError(`tar path too long: ${name}`)
    prefix = name.slice(0, cut)
    base = name.slice(cut + 1)
  }
  h.write(base, 0, 100, 'utf8')
  h.write(octal(0o644, 8), 100, 'ascii')
  h.write(octal(0, 8), 108, 'ascii')
  h.write(octal(0, 8), 116, 'ascii')
  h.write(octal(size, 12), 124, 'ascii')
  h.write(octal(Math.floor(mtime.getTime() / 1000), 12), 136, 'ascii')
  h.write('        ', 148, 'ascii')
  h.write('0', 156, 'ascii')
  h.write('ustar\0', 257, 'ascii')
  h.write('00', 263, 'ascii')
  h.write('hoop', 265, 'ascii')
  h.write('hoop', 297, 'ascii')
  h.write(prefix, 345, 155, 'utf8')
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii')
  return h
}

export class TarGzWriter {
  private readonly gzip: Gzip
  private readonly done: Promise<unknown>

  constructor(file: string, private readonly mtime = new Date()) {
    this.gzip = createGzip({level: 6})
    const out = createWriteStream(file, {mode: 0o600})
    this.gzip.pipe(out)
    this.done = once(out, 'close')
  }

  private async write(buf: Buffer): Promise<void> {
    if (!this.gzip.write(buf)) await once(this.gzip, 'drain')
  }

  async addBuffer(name: string, data: Buffer): Promise<void> {
    await this.write(tarHeader(name, data.length, this.mtime))
    await this.write(data)
    await this.pad(data.length)
  }

  async addFile(name: string, path: string, size: number): Promise<void> {
    await this.write(tarHeader(name, size, this.mtime))
    let n = 0
    for await (const chunk of createReadStream(path)) {
      n += (chunk as Buffer).length
      await this.write(chunk as Buffer)
    }
    if (n !== size) throw new Error(`${path} changed size while being archived`)
    await this.pad(size)
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK
    if (rest) await this.write(Buffer.alloc(BLOCK - rest))
  }

  async finish(): Promise<void> {
    await this.write(Buffer.alloc(BLOCK * 2))
    this.gzip.end()
    await this.done
  }
}

interface TarEntryHandler {
  data(chunk: Buffer): void
  end(): void
}

/** Streams the entries of a .tar.gz; `onEntry` returns a handler for that entry's bytes. */
export async function readTarGz(file: string, onEntry: (name: string, size: number) => TarEntryHandler): Promise<void> {
  let buf: Buffer = Buffer.alloc(0)
  let entry: {handler: TarEntryHandler; left: number; pad: number} | undefined
  let ended = false
  for await (const chunk of createReadStream(file).pipe(createGunzip())) {
    buf = buf.length ? Buffer.concat([buf, chunk as Buffer]) : (chunk as Buffer)
    for (;;) {
      if (entry) {
        if (entry.left > 0) {
          if (buf.length === 0) break
          const take = Math.min(entry.left, buf.length)
          entry.handler.data(buf.subarray(0, take))
          buf = buf.subarray(take)
          entry.left -= take
          if (entry.left > 0) break
        }
        if (buf.length < entry.pad) break
        buf = buf.subarray(entry.pad)
        entry.handler.end()
        entry = undefined
        continue
      }
      if (ended || buf.length < BLOCK) break
      const h = buf.subarray(0, BLOCK)
      buf = buf.subarray(BLOCK)
      if (h.every((b) => b === 0)) {
        ended = true
        break
      }
      const field = (off: number, len: number) => h.subarray(off, off + len).toString('utf8').replace(/\0.*$/s, '')
      let sum = 0
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]
      if (parseInt(field(148, 8).trim(), 8) !== sum) throw new Error('tar header checksum mismatch (archive corrupt)')
      const prefix = field(345, 155)
      const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100)
      const size = parseInt(field(124, 12).trim() || '0', 8)
      const type = field(156, 1)
      const handler = type === '0' || type === '' ? onEntry(name, size) : {data() {}, end() {}}
      entry = {handler, left: size, pad: (BLOCK - (size % BLOCK)) % BLOCK}
      if (size === 0 && entry.pad === 0) {
        entry.handler.end()
        entry = undefined
      }
    }
  }
  if (entry || !ended) throw new Error('archive ends early (truncated)')
}
