// MySQL / MariaDB text to trees, shared by statement analysis for policy (mysql-analyze.ts) and
// output taint for masking (mysql-taint.ts). A small lexer that knows MySQL's quoting and comment
// rules splits the text into statements and unwraps executable comments; node-sql-parser parses
// each statement (MySQL grammar, MariaDB grammar as a fallback).
import sqlParser from 'node-sql-parser'
import {errorMessage} from '../shared/errors.js'

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
 * Splits SQL into statements the way the server does. Comments become a space; the content of an
 * executable comment is kept as SQL (whatever its version number: the server may run it).
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = []
  let cur = ''
  let inExec = false
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql[i]
    const next = sql[i + 1]
    if (c === "'" || c === '"' || c === '`') {
      const end = skipQuoted(sql, i)
      cur += sql.slice(i, end)
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
      if (cur.trim()) out.push(cur.trim())
      cur = ''
      i++
      continue
    }
    cur += c
    i++
  }
  if (inExec) throw new LexError('unterminated executable comment')
  if (cur.trim()) out.push(cur.trim())
  return out
}

function skipQuoted(sql: string, start: number): number {
  const q = sql[start]
  let i = start + 1
  while (i < sql.length) {
    const c = sql[i]
    if (c === '\\' && q !== '`') {
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

/** One statement's text, as the lexer split it, as node-sql-parser trees; Unparsable when neither grammar accepts it. */
export function parseMysql(text: string): Node[] {
  let lastError: string | undefined
  for (const database of ['MySQL', 'MariaDB']) {
    try {
      const ast = parser.astify(text, {database}) as unknown
      return (Array.isArray(ast) ? ast : [ast]).filter(isRecord)
    } catch (err) {
      lastError = errorMessage(err)
    }
  }
  throw new Unparsable(firstLine(lastError ?? 'syntax error'))
}

function firstLine(s: string): string {
  const line = s.split('\n')[0]
  return line.length > 200 ? line.slice(0, 200) + '…' : line
}
