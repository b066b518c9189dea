// Streaming value masking for text bodies, line by line: each complete line is offered to the value
// masker and forwarded as is when nothing is found (exact bytes kept); a line that was changed is
// re-encoded as UTF-8. A line longer than `maxLine` is cut at a UTF-8 character boundary, so memory
// stays bounded; an entity split by such a cut is not seen (documented in docs/http.md). Pure.

export const DEFAULT_MAX_LINE = 1024 * 1024

export class LineMasker {
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** Lines changed by the masker. */
  changed = 0

  constructor(
    private readonly maskLine: (line: string) => string | undefined,
    private readonly maxLine = DEFAULT_MAX_LINE,
  ) {}

  /** Bytes to forward now for this input chunk. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = []
    let from = 0
    for (;;) {
      const lf = chunk.indexOf(0x0a, from)
      if (lf < 0) break
      this.pending.push(chunk.subarray(from, lf + 1))
      out.push(this.flushPending())
      from = lf + 1
    }
    if (from < chunk.length) {
      this.pending.push(chunk.subarray(from))
      this.pendingBytes += chunk.length - from
      while (this.pendingBytes > this.maxLine) out.push(this.cutPending())
    }
    return out
  }

  /** The rest at the end of the body. */
  end(): Buffer[] {
    return this.pendingBytes > 0 || this.pending.length > 0 ? [this.flushPending()] : []
  }

  private flushPending(): Buffer {
    const line = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending)
    this.pending = []
    this.pendingBytes = 0
    return this.maskBytes(line)
  }

  /** Emits the first maxLine bytes (backed off to a character boundary) of an over-long line. */
  private cutPending(): Buffer {
    const all = Buffer.concat(this.pending)
    let cut = this.maxLine
    // Back off over UTF-8 continuation bytes (10xxxxxx) so the cut never splits a character.
    while (cut > 0 && (all[cut] & 0xc0) === 0x80) cut--
    if (cut === 0) cut = this.maxLine
    const head = all.subarray(0, cut)
    const rest = all.subarray(cut)
    this.pending = rest.length ? [rest] : []
    this.pendingBytes = rest.length
    return this.maskBytes(head)
  }

  private maskBytes(line: Buffer): Buffer {
    if (line.length < 8) return line
    const out = this.maskLine(line.toString('utf8'))
    if (out === undefined) return line
    this.changed++
    return Buffer.from(out, 'utf8')
  }
}
