// `hoop sessions list|show`: the store's sessions joined with their recordings, and a readable
// replay of one recording (what the client saw, with timing).
import type Database from 'better-sqlite3'
import {HoopError} from '../shared/errors.js'
import {sessionFromRow} from '../store/rows.js'
import type {SessionRecord} from '../store/types.js'
import {ensureAuditSchema} from './schema.js'

export interface SessionListItem extends SessionRecord {
  recording?: {bytes: number; chunks: number; capBytes: number; truncated: boolean; droppedBytes: number; sha256?: string; pruned: boolean}
}

interface ReplayChunk {
  idx: number
  atMs: number
  direction: string
  kind: string
  encoding: string
  size: number
  sha256: string
  /** Text, JSON text, or base64 for binary; absent once retention pruned it. */
  payload?: string
}

export interface SessionDetail extends SessionListItem {
  chunks: ReplayChunk[]
}

type Row = Record<string, unknown>

const SELECT = `SELECT s.*, r.bytes AS r_bytes, r.chunks AS r_chunks, r.cap_bytes AS r_cap, r.truncated AS r_truncated,
  r.dropped_bytes AS r_dropped, r.sha256 AS r_sha256, r.pruned_at AS r_pruned, r.session_id AS r_id
  FROM sessions s LEFT JOIN audit_recordings r ON r.session_id = s.id`

/** A session row joined with its recording (the columns of SELECT), for both stores. */
export function sessionListItem(r: Row): SessionListItem {
  return {
    ...sessionFromRow(r),
    recording: r.r_id
      ? {
          bytes: r.r_bytes as number,
          chunks: r.r_chunks as number,
          capBytes: r.r_cap as number,
          truncated: r.r_truncated === 1,
          droppedBytes: r.r_dropped as number,
          sha256: (r.r_sha256 as string | null) ?? undefined,
          pruned: r.r_pruned !== null,
        }
      : undefined,
  }
}

export function listSessions(db: Database.Database, opts: {limit?: number; connection?: string; user?: string} = {}): SessionListItem[] {
  ensureAuditSchema(db)
  const where: string[] = []
  const args: unknown[] = []
  if (opts.connection) {
    where.push('s.connection = ?')
    args.push(opts.connection)
  }
  if (opts.user) {
    where.push('s.subject = ?')
    args.push(opts.user)
  }
  const sql = `${SELECT}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY s.started_at DESC LIMIT ?`
  return (db.prepare(sql).all(...args, opts.limit ?? 50) as Row[]).map(sessionListItem)
}

export function showSession(db: Database.Database, id: string): SessionDetail {
  ensureAuditSchema(db)
  const row = db.prepare(`${SELECT} WHERE s.id = ?`).get(id) as Row | undefined
  if (!row) throw new HoopError('NOT_FOUND', `no session ${id} in this data dir; run \`hoop sessions list\``)
  const chunks = (db.prepare('SELECT * FROM audit_recording_chunks WHERE session_id = ? ORDER BY idx').all(id) as Row[]).map(replayChunk)
  return {...sessionListItem(row), chunks}
}

/** A stored chunk for a replay, for both stores: text as is, binary as base64, a pruned payload absent. */
export function replayChunk(c: Row): ReplayChunk {
  const payload = c.payload as Buffer | null
  return {
    idx: c.idx as number,
    atMs: c.at_ms as number,
    direction: c.direction as string,
    kind: c.kind as string,
    encoding: c.encoding as string,
    size: c.size as number,
    sha256: c.sha256 as string,
    payload: payload === null ? undefined : c.encoding === 'binary' ? payload.toString('base64') : payload.toString('utf8'),
  }
}

function printable(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** A readable replay: one block per exchange, offset from the session start, client `>` / server `<`. */
export function renderReplay(s: SessionDetail): string {
  const lines: string[] = []
  lines.push(`Session ${s.id}: ${s.subject} (${s.identityKind}) -> ${s.connection} via ${s.agent}${s.clientAddress ? ` from ${s.clientAddress}` : ''}`)
  lines.push(`Started ${s.startedAt}${s.endedAt ? `, ended ${s.endedAt} (${s.endReason ?? 'closed'})` : ', still open'}; ${s.bytesUp} bytes up, ${s.bytesDown} bytes down`)
  if (!s.recording) {
    lines.push('No recording for this session.')
    return lines.join('\n') + '\n'
  }
  const r = s.recording
  lines.push(
    `Recording: ${r.chunks} exchanges, ${r.bytes} bytes, cap ${r.capBytes} bytes` +
      (r.truncated ? ` - TRUNCATED at the cap, ${r.droppedBytes} bytes not recorded` : '') +
      (r.pruned ? ' - payloads pruned by retention (hashes kept)' : '') +
      (r.sha256 ? `, sha256 ${r.sha256}` : ''),
  )
  lines.push('')
  for (const c of s.chunks) {
    const arrow = c.direction === 'client' ? '>' : '<'
    const head = `[+${(c.atMs / 1000).toFixed(3)}s] ${arrow} ${c.kind}`
    if (c.payload === undefined) {
      lines.push(`${head} (${c.size} bytes, pruned; sha256 ${c.sha256})`)
    } else if (c.encoding === 'binary') {
      const bytes = Buffer.from(c.payload, 'base64')
      lines.push(`${head} (${c.size} bytes)`)
      for (let i = 0; i < bytes.length && i < 4096; i += 16) {
        const part = bytes.subarray(i, i + 16)
        const hex = [...part].map((b) => b.toString(16).padStart(2, '0')).join(' ')
        const ascii = [...part].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('')
        lines.push(`    ${i.toString(16).padStart(6, '0')}  ${hex.padEnd(47)}  ${ascii}`)
      }
      if (bytes.length > 4096) lines.push(`    ... ${bytes.length - 4096} more bytes`)
    } else {
      lines.push(head)
      for (const l of printable(c.payload).split('\n')) lines.push(`    ${l}`)
    }
  }
  return lines.join('\n') + '\n'
}
