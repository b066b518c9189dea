// Line splitting for the JSONL files verify reads (events, checkpoints, proofs, anchors): linear
// time, bounded memory, one report for a line over the limit.

/**
 * Splits a byte stream into lines in linear time: a partial line is kept as a list of pieces and
 * joined once, when its newline arrives. A line longer than `max` is reported once and ends the
 * splitting, so memory stays within `max` plus one chunk.
 */
export class LineSplitter {
  private pieces: Buffer[] = []
  private pending = 0
  private line = 0
  private stopped = false

  constructor(
    private readonly max: number,
    private readonly onLine: (bytes: Buffer, line: number) => void,
    private readonly onTooLong: (line: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0
    while (!this.stopped) {
      const nl = chunk.indexOf(0x0a, start)
      if (nl < 0) break
      const len = this.pending + nl - start
      if (len > this.max) return this.tooLong()
      const bytes = this.pieces.length ? Buffer.concat([...this.pieces, chunk.subarray(start, nl)], len) : chunk.subarray(start, nl)
      this.pieces = []
      this.pending = 0
      start = nl + 1
      this.onLine(bytes, ++this.line)
    }
    if (this.stopped || start === chunk.length) return
    this.pending += chunk.length - start
    if (this.pending > this.max) return this.tooLong()
    this.pieces.push(chunk.subarray(start))
  }

  /** The stream ended: a last line without a newline is still a line. */
  end(): void {
    if (this.stopped || this.pending === 0) return
    const bytes = Buffer.concat(this.pieces, this.pending)
    this.pieces = []
    this.pending = 0
    this.onLine(bytes, ++this.line)
  }

  private tooLong(): void {
    this.stopped = true
    this.pieces = []
    this.pending = 0
    this.onTooLong(this.line + 1)
  }
}
