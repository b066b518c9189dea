// MySQL / MariaDB text to trees, shared by statement analysis for policy (mysql-analyze.ts) and
// output taint for masking (mysql-taint.ts). A small lexer that knows MySQL's quoting and comment
// rules splits the text into statements and unwraps executable comments; node-sql-parser parses
// each statement (MySQL grammar, MariaDB grammar as a fallback).
import sqlParser from 'node-sql-parser'
import {errorMessage} from '../shared/errors.js'
import {ParseCache} from './parse-cache.js'

const {Parser} = sqlParser
const parser = new Parser()

/** Maximum SQL text analyzed; longer text is reported unparsable (and judged by the default). */
export const MAX_SQL_LENGTH = 1 << 20

/** A node of node-sql-parser's tree. */
export type Node = Record<string, unknown>

export function isRecord(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Text the analyzers cannot read: policy reports the operation `unparsable`, masking fails closed. */
export class Unparsable extends Error {}

/** CREATE of a stored program: its body contains `;`, so the rest of the text is one statement. */
export const ROUTINE_RE = /^CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:(?:NOT\s+)?DETERMINISTIC\s+|AGGREGATE\s+)?(PROCEDURE|FUNCTION|TRIGGER|EVENT|PACKAGE(?:\s+BODY)?)\b/i

// ---------------------------------------------------------------------------------------------
// Lexing: statements, comments, executable comments

export class LexError extends Error {}

/**
 * The parts of a session's sql_mode that change how text is split and quoted: ANSI_QUOTES makes
 * `"..."` an identifier; NO_BACKSLASH_ESCAPES makes `\` an ordinary character in strings.
 */
export interface LexMode {
  ansiQuotes: boolean
  noBackslashEscapes: boolean
}

export const DEFAULT_LEX_MODE: LexMode = {ansiQuotes: false, noBackslashEscapes: false}

/**
 * Splits SQL into statements the way the server does in `mode`. Comments become a space; the
 * content of an executable comment is kept as SQL (whatever its version number: the server may run
 * it). Quoting is rewritten to the default mode's (see nextStatement).
 */
export function splitStatements(sql: string, mode: LexMode = DEFAULT_LEX_MODE): string[] {
  const out: string[] = []
  let pos = 0
  let inExec = false
  for (;;) {
    const next = nextStatement(sql, pos, mode, inExec)
    if (!next) return out
    out.push(next.text)
    pos = next.end
    inExec = next.inExec
  }
}

/** Where one statement ends: its text, where the next starts, and whether that is inside an executable comment. */
export interface NextStatement {
  text: string
  end: number
  inExec: boolean
}

/**
 * The statement that starts at `start` in `mode`: its text, trimmed, without comments, and with
 * quoting rewritten to what node-sql-parser reads (the server's default mode): an ANSI_QUOTES
 * identifier becomes a backtick one, a NO_BACKSLASH_ESCAPES string one with backslashes escaped.
 * `end` is where the next statement starts. Undefined when only white space and comments are left.
 * `inExec`: the statement starts inside an executable comment (a `;` inside one separates
 * statements too: a stored program body in mysqldump's output). Throws LexError on an
 * unterminated quote or comment.
 */
export function nextStatement(sql: string, start: number, mode: LexMode = DEFAULT_LEX_MODE, inExecAtStart = false): NextStatement | undefined {
  let cur = ''
  let inExec = inExecAtStart
  let i = start
  const n = sql.length
  while (i < n) {
    const c = sql[i]
    const next = sql[i + 1]
    if (c === "'" || c === '"' || c === '`') {
      const end = skipQuoted(sql, i, mode)
      cur += normalizeQuoted(sql.slice(i, end), mode)
      i = end
      continue
    }
    if (c === '#' || (c === '-' && next === '-' && (i + 2 >= n || /[\s\x00-\x1f]/.test(sql[i + 2])))) {
      const nl = sql.indexOf('\n', i)
      i = nl < 0 ? n : nl + 1
      cur += ' '
      continue
    }
    if (c === '/' && next === '*') {
      const exec = sql[i + 2] === '!' ? 3 : sql[i + 2] === 'M' && sql[i + 3] === '!' ? 4 : 0
      if (exec) {
        if (inExec) throw new LexError('nested executable comment')
        i += exec
        while (i < n && /[0-9]/.test(sql[i])) i++
        inExec = true
        cur += ' '
        continue
      }
      const end = sql.indexOf('*/', i + 2)
      if (end < 0) throw new LexError('unterminated comment')
      i = end + 2
      cur += ' '
      continue
    }
    if (inExec && c === '*' && next === '/') {
      inExec = false
      i += 2
      cur += ' '
      continue
    }
    if (c === ';') {
      if (cur.trim()) return {text: cur.trim(), end: i + 1, inExec}
      cur = ''
      i++
      continue
    }
    cur += c
    i++
  }
  if (inExec) throw new LexError('unterminated executable comment')
  return cur.trim() ? {text: cur.trim(), end: n, inExec} : undefined
}

/** Does a backslash escape the next character inside this quote, in this mode? */
function backslashEscapes(q: string, mode: LexMode): boolean {
  if (q === '`' || mode.noBackslashEscapes) return false
  return !(q === '"' && mode.ansiQuotes)
}

function skipQuoted(sql: string, start: number, mode: LexMode): number {
  const q = sql[start]
  const escapes = backslashEscapes(q, mode)
  let i = start + 1
  while (i < sql.length) {
    const c = sql[i]
    if (c === '\\' && escapes) {
      i += 2
      continue
    }
    if (c === q) {
      if (sql[i + 1] === q) {
        i += 2
        continue
      }
      return i + 1
    }
    i++
  }
  throw new LexError('unterminated quoted string')
}

/** A quoted token in `mode`, written as the default mode reads the same thing. */
function normalizeQuoted(token: string, mode: LexMode): string {
  const q = token[0]
  if (q === '`' || (!mode.ansiQuotes && !mode.noBackslashEscapes)) return token
  const body = token.slice(1, -1)
  if (q === '"' && mode.ansiQuotes) return '`' + body.replace(/""/g, '"').replace(/`/g, '``') + '`'
  if (!mode.noBackslashEscapes) return token
  // A string whose backslashes are literal: its value, re-quoted with escapes.
  const value = body.split(q + q).join(q)
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'"
}

/** The value of a MySQL string literal ('...' or "..."), escapes resolved. */
export function unquoteString(lit: string): string {
  const q = lit[0]
  const body = lit.slice(1, -1)
  let out = ''
  for (let i = 0; i < body.length; i++) {
    const c = body[i]
    if (c === '\\' && i + 1 < body.length) {
      const e = body[++i]
      out += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e === '0' ? '\0' : e === 'Z' ? '\x1a' : e === 'b' ? '\b' : e
    } else if (c === q && body[i + 1] === q) {
      out += q
      i++
    } else out += c
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Parsing

/**
 * One statement's text, as the lexer split it, as node-sql-parser trees; Unparsable when
 * neither grammar accepts it. `parses`: the session's (mysql-session.ts), so that policy's analysis
 * and masking's parse each statement text once. The lexer already wrote the text in the default
 * sql_mode's quoting, so its trees do not depend on the session's mode.
 */
export function parseMysql(text: string, parses?: MysqlParses): Node[] {
  const r = parses ? parses.get(text) : parseText(text)
  if (r instanceof Unparsable) throw r
  return r
}

/** A session's parses by statement text (parse-cache.ts). */
export type MysqlParses = ParseCache<Node[] | Unparsable>

export function newMysqlParses(): MysqlParses {
  return new ParseCache(parseText)
}

function parseText(text: string): Node[] | Unparsable {
  let lastError: string | undefined
  for (const database of ['MySQL', 'MariaDB']) {
    try {
      const ast = parser.astify(text, {database}) as unknown
      return (Array.isArray(ast) ? ast : [ast]).filter(isRecord)
    } catch (err) {
      lastError = errorMessage(err)
    }
  }
  return new Unparsable(firstLine(lastError ?? 'syntax error'))
}

function firstLine(s: string): string {
  const line = s.split('\n')[0]
  return line.length > 200 ? line.slice(0, 200) + '…' : line
}
