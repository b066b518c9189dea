// A small ustar writer and a strict, bounded ustar reader over gzip (node:zlib), enough for evidence
// packages, streamed so a package with a million events never sits in memory at once.
//
// The reader accepts only what the writer makes: POSIX ustar headers (magic "ustar\0", version
// "00") of regular files (typeflag '0' or NUL) with plain relative names, then the end-of-archive
// marker (two zero blocks), then at most a record's worth of zero padding. Links, directories,
// devices, pax and GNU extension headers are refused by name, as are absolute names and `..`, so
// `tar -x` on an accepted archive creates exactly the files the reader handed to its caller.
// Sizes are checked from the header before any data is read. POSIX.1-2017, pax "ustar Interchange
// Format": https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html#tag_20_92_13_06
import {once} from 'node:events'
import {createReadStream, createWriteStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import {createGunzip, createGzip, type Gzip} from 'node:zlib'
import {errorMessage} from '../shared/errors.js'

export const BLOCK = 512

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0'
}

export function tarHeader(name: string, size: number, mtime: Date): Buffer {
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

/** The archive is refused: `entry` names the tar entry when the fault is in one. */
export class TarError extends Error {
  constructor(message: string, readonly entry?: string) {
    super(message)
    this.name = 'TarError'
  }
}

/** Reading went past the caller's deadline. */
export class DeadlineError extends Error {
  constructor(readonly deadline: number) {
    super('deadline passed')
    this.name = 'DeadlineError'
  }
}

export interface TarLimits {
  /** Tar headers in the archive. */
  maxEntries: number
  /** Data bytes of one entry, checked from its header before reading. */
  maxEntryBytes: number
  /** Decompressed bytes of the whole archive (headers, data, padding); the compressed file too. */
  maxTotalBytes: number
  /** Zero bytes tolerated after the end-of-archive marker (tar pads to its record size, 10 KiB by default). */
  maxTrailingBytes: number
  /** Date.now() value after which reading stops with a DeadlineError. */
  deadline?: number
}

export const TAR_LIMITS: TarLimits = {maxEntries: 64, maxEntryBytes: 4 * 2 ** 30, maxTotalBytes: 8 * 2 ** 30, maxTrailingBytes: 2 ** 20}

export interface TarEntryHandler {
  data(chunk: Buffer): void
  end(): void
}

/** Returns the handler for an entry's bytes; throw (a TarError) to refuse the entry before it is read. */
export type TarEntryCallback = (name: string, size: number) => TarEntryHandler

// Typeflags other than a regular file, for the refusal message.
const TYPES: Record<string, string> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '5': 'a directory',
  '6': 'a FIFO',
  '7': 'a contiguous file',
  g: 'a pax global extended header',
  x: 'a pax extended header',
  K: 'a GNU long link name header',
  L: 'a GNU long name header',
  S: 'a GNU sparse file',
  V: 'a GNU volume header',
}

/** A name as it may be shown: quoted, with anything but printable ASCII escaped (no terminal escapes from a package). */
export function quoteName(s: string): string {
  return `"${s.replace(/[^\x20-\x7e]|["\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`
}

function cstr(h: Buffer, off: number, len: number): string {
  const f = h.subarray(off, off + len)
  const nul = f.indexOf(0)
  return f.subarray(0, nul < 0 ? len : nul).toString('latin1')
}

/** A numeric header field: octal digits, optionally led by spaces and ended by NULs or spaces (as GNU tar reads it). */
function number(h: Buffer, off: number, len: number): number | undefined {
  if (h[off] & 0x80) return undefined // GNU base-256: never written by us
  const m = /^ *([0-7]+)[ \0]*$/.exec(h.subarray(off, off + len).toString('latin1'))
  return m ? parseInt(m[1], 8) : undefined
}

/** Why a member name is not a plain relative path inside the archive, or undefined when it is. */
export function unsafeName(name: string): string | undefined {
  if (name === '') return 'has an empty name'
  if (!/^[\x21-\x7e]+$/.test(name)) return 'has a name with bytes other than printable ASCII'
  if (name.startsWith('/')) return 'has an absolute name'
  if (name.includes('\\')) return 'has a backslash in its name'
  const parts = name.split('/')
  if (parts.includes('..')) return 'has ".." in its name (a path outside the package)'
  if (parts.some((p) => p === '' || p === '.')) return 'has an empty or "." path component'
  return undefined
}

type State = 'header' | 'data' | 'pad' | 'end' | 'trailer'

/**
 * A push parser for a ustar stream: bytes in, entries out; keeps at most one partial header.
 * Throws TarError on anything it does not accept.
 */
export class TarParser {
  private state: State = 'header'
  private readonly hdr = Buffer.alloc(BLOCK)
  private fill = 0
  private offset = 0
  private headerAt = 0
  private entries = 0
  private entry: {name: string; handler: TarEntryHandler; left: number; pad: number} | undefined
  private trailing = 0

  constructor(private readonly onEntry: TarEntryCallback, private readonly limits: TarLimits = TAR_LIMITS) {}

  /** True once the end-of-archive marker is read. */
  get ended(): boolean {
    return this.state === 'trailer'
  }

  push(chunk: Buffer): void {
    if (this.offset + chunk.length > this.limits.maxTotalBytes) {
      throw new TarError(`the archive is larger than the limit of ${this.limits.maxTotalBytes} bytes uncompressed`)
    }
    let i = 0
    while (i < chunk.length) {
      switch (this.state) {
        case 'header':
        case 'end': {
          const take = Math.min(BLOCK - this.fill, chunk.length - i)
          chunk.copy(this.hdr, this.fill, i, i + take)
          this.fill += take
          i += take
          if (this.fill === BLOCK) {
            this.fill = 0
            this.block(this.offset + i - BLOCK)
          }
          break
        }
        case 'data': {
          const e = this.entry!
          const take = Math.min(e.left, chunk.length - i)
          e.handler.data(chunk.subarray(i, i + take))
          e.left -= take
          i += take
          if (e.left === 0) this.endData()
          break
        }
        case 'pad': {
          const e = this.entry!
          const take = Math.min(e.pad, chunk.length - i)
          e.pad -= take
          i += take
          if (e.pad === 0) {
            this.entry = undefined
            this.state = 'header'
          }
          break
        }
        case 'trailer': {
          const rest = chunk.subarray(i)
          const bad = rest.findIndex((b) => b !== 0)
          if (bad >= 0) throw new TarError(`data after the end-of-archive marker (byte ${this.offset + i + bad}): a tar reader that goes on past the marker would extract more than was verified`)
          this.trailing += rest.length
          if (this.trailing > this.limits.maxTrailingBytes) throw new TarError(`more than ${this.limits.maxTrailingBytes} bytes after the end-of-archive marker`)
          i = chunk.length
          break
        }
        default:
          throw new Error(`unreachable: ${this.state satisfies never}`)
      }
    }
    this.offset += chunk.length
  }

  /** The stream ended: it must have ended after the end-of-archive marker. */
  finish(): void {
    if (this.state === 'trailer') return
    if (this.entry) throw new TarError(`the archive ends inside entry ${quoteName(this.entry.name)} (truncated)`, this.entry.name)
    throw new TarError('the archive ends without its end-of-archive marker (truncated)')
  }

  private endData(): void {
    const e = this.entry!
    this.state = e.pad ? 'pad' : 'header'
    if (!e.pad) this.entry = undefined
    e.handler.end()
  }

  private block(at: number): void {
    const h = this.hdr
    const zero = h.every((b) => b === 0)
    if (this.state === 'end') {
      // GNU tar reads on after a lone zero block, so anything here would be extracted.
      if (!zero) throw new TarError(`a lone zero block at byte ${this.headerAt} is followed by more data: the end-of-archive marker is two zero blocks`)
      this.state = 'trailer'
      return
    }
    this.headerAt = at
    if (zero) {
      this.state = 'end'
      return
    }
    this.header(h, at)
  }

  private header(h: Buffer, at: number): void {
    let sum = 0
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]
    if (number(h, 148, 8) !== sum) throw new TarError(`the tar header at byte ${at} is corrupt (checksum mismatch)`)
    const prefix = cstr(h, 345, 155)
    const base = cstr(h, 0, 100)
    const name = prefix ? `${prefix}/${base}` : base
    if (h.toString('latin1', 257, 265) !== 'ustar\u000000') throw new TarError(`entry ${quoteName(name)} at byte ${at} is not in POSIX ustar format`, name)
    if (++this.entries > this.limits.maxEntries) throw new TarError(`the archive has more than ${this.limits.maxEntries} entries`, name)
    const type = h[156] === 0 ? '0' : String.fromCharCode(h[156])
    if (type !== '0') {
      const link = cstr(h, 157, 100)
      const what = TYPES[type] ?? 'not a regular file'
      throw new TarError(`entry ${quoteName(name)} is ${what} (tar type '${type}')${link && (type === '1' || type === '2') ? ` to ${quoteName(link)}` : ''}: only regular files are allowed`, name)
    }
    if (h[157] !== 0) throw new TarError(`entry ${quoteName(name)} is a regular file with a link name: refused`, name)
    const unsafe = unsafeName(name)
    if (unsafe) throw new TarError(`entry ${quoteName(name)} ${unsafe}`, name)
    const size = number(h, 124, 12)
    if (size === undefined) throw new TarError(`entry ${quoteName(name)} has a malformed size field`, name)
    if (size > this.limits.maxEntryBytes) throw new TarError(`entry ${quoteName(name)} declares ${size} bytes, more than the limit of ${this.limits.maxEntryBytes} per file`, name)
    const pad = (BLOCK - (size % BLOCK)) % BLOCK
    if (at + BLOCK + size + pad > this.limits.maxTotalBytes) throw new TarError(`entry ${quoteName(name)} declares ${size} bytes: the archive would be larger than the limit of ${this.limits.maxTotalBytes} bytes uncompressed`, name)
    this.entry = {name, handler: this.onEntry(name, size), left: size, pad}
    this.state = 'data'
    if (size === 0) this.endData()
  }
}

/**
 * Streams the entries of a .tar.gz through a TarParser; `onEntry` returns a handler for each
 * entry's bytes. After the end-of-archive marker, reads at most `maxTrailingBytes` more (which
 * must be zeros up to the end of the gzip stream). Throws TarError (refused or corrupt, gzip
 * errors included) or DeadlineError.
 */
export async function readTarGz(file: string, onEntry: TarEntryCallback, limits: Partial<TarLimits> = {}): Promise<void> {
  const lim: TarLimits = {...TAR_LIMITS, ...limits}
  const {size} = await stat(file)
  if (size > lim.maxTotalBytes) throw new TarError(`the package file is ${size} bytes, more than the limit of ${lim.maxTotalBytes}`)
  const parser = new TarParser(onEntry, lim)
  const source = createReadStream(file)
  const gunzip = createGunzip()
  source.on('error', (err) => gunzip.destroy(err))
  source.pipe(gunzip)
  // A stalled source (a FIFO, a hung network file system) still ends at the deadline.
  const timer = lim.deadline === undefined ? undefined : setTimeout(() => gunzip.destroy(new DeadlineError(lim.deadline!)), Math.max(0, lim.deadline - Date.now()))
  timer?.unref()
  try {
    for await (const chunk of gunzip) {
      if (lim.deadline !== undefined && Date.now() > lim.deadline) throw new DeadlineError(lim.deadline)
      parser.push(chunk as Buffer)
    }
    parser.finish()
  } catch (err) {
    if (err instanceof TarError || err instanceof DeadlineError) throw err
    const code = (err as NodeJS.ErrnoException).code
    if (typeof code === 'string' && code.startsWith('Z_')) throw new TarError(`not a valid gzip stream: ${errorMessage(err)}`)
    if (typeof code === 'string') throw new TarError(`cannot read the package: ${errorMessage(err)}`)
    throw err
  } finally {
    if (timer) clearTimeout(timer)
    source.destroy()
    gunzip.destroy()
  }
}
