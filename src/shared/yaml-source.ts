// YAML with positions: parse a document once, then report problems as "file:line:col: message"
// for any path into it. Used by the gateway config and the policy file.
import {LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node} from 'yaml'
import {HoopError} from './errors.js'

export type PathSegment = string | number

export interface SourceProblem {
  file: string
  line: number
  column: number
  message: string
}

export class YamlSource {
  private constructor(
    readonly file: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  static parse(text: string, file: string): YamlSource {
    const lines = new LineCounter()
    const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
    const src = new YamlSource(file, doc, lines)
    if (doc.errors.length > 0) {
      const problems = doc.errors.map((e) => {
        // prettyErrors: false leaves linePos unset, so map the offset ourselves.
        const pos = e.linePos?.[0] ?? (e.pos ? lines.linePos(e.pos[0]) : {line: 1, col: 1})
        return {file, line: pos.line, column: pos.col, message: e.message.split('\n')[0]}
      })
      throw configError(problems)
    }
    return src
  }

  toJS(): unknown {
    return this.doc.toJS({maxAliasCount: 100})
  }

  /** Position of the node at `path` (or its nearest existing ancestor). */
  position(path: readonly PathSegment[]): {line: number; column: number} {
    let node: unknown = this.doc.contents
    let best: unknown = node
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg)
        if (!pair) break
        best = pair.key ?? best
        node = pair.value
        if (node) best = node
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg]
        if (node) best = node
        else break
      } else break
    }
    const range = (best as Node | undefined)?.range
    if (!range) return {line: 1, column: 1}
    const p = this.lines.linePos(range[0])
    return {line: p.line, column: p.col}
  }

  problem(path: readonly PathSegment[], message: string): SourceProblem {
    return {file: this.file, ...this.position(path), message}
  }
}

function formatProblems(problems: readonly SourceProblem[]): string {
  return problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`).join('\n')
}

export function configError(problems: readonly SourceProblem[]): HoopError {
  return new HoopError('CONFIG_INVALID', formatProblems(problems), {problems})
}
