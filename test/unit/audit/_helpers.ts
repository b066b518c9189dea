import Database from 'better-sqlite3'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {canonicalize} from '../../../src/audit/canonical.js'
import {events} from '../../../src/audit/events.js'
import type {AuditEvent, StoredEvent} from '../../../src/audit/events.js'
import {leafHash} from '../../../src/audit/merkle.js'
import type {Identity} from '../../../src/identity/types.js'
import {openDatabase} from '../../../src/store/sqlite.js'

export const alice: Identity = {kind: 'user', subject: 'u-alice', name: 'alice', email: 'alice@example.com', groups: ['dev', 'oncall']}
export const bob: Identity = {kind: 'user', subject: 'u-bob', name: 'bob', email: 'bob@example.com', groups: ['dba']}

export function tempDir(): {dir: string; cleanup: () => void} {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-audit-test-'))
  return {dir, cleanup: () => rmSync(dir, {recursive: true, force: true})}
}

export function openDb(dir: string): Database.Database {
  return openDatabase(dir)
}

/** A small, varied session: start, statements with results, masking, approvals, end. */
export function sampleEvents(session = 'ses_AAAAAAAAAAAA', who: Identity = alice, connection = 'prod-db', at = new Date('2024-05-01T10:00:00Z')): AuditEvent[] {
  const t = (s: number) => new Date(at.getTime() + s * 1000)
  return [
    events.sessionStart({at: t(0), session, identity: who, connection, agent: 'embedded', clientAddress: '127.0.0.1:5555', connectionType: 'postgres'}),
    events.statement({at: t(1), session, identity: who, connection, statementId: 'st1', text: 'SELECT id, email FROM users WHERE note = \'a,b "c"\nd\'', decision: 'mask', ruleId: 'mask-pii'}),
    events.masking({at: t(1), session, identity: who, connection, statementId: 'st1', ruleId: 'mask-pii', fields: [{column: 'users.email', count: 3}, {entity: 'phone', count: 1}]}),
    events.statementResult({at: t(2), session, identity: who, connection, statementId: 'st1', rows: 3, bytes: 120, durationMs: 4}),
    events.approvalRequested({at: t(3), approvalId: 'apr_1', session, identity: who, connection, statement: 'DELETE FROM users WHERE id = 7', ruleId: 'review-deletes', justification: 'ticket OPS-1, "urgent"'}),
    events.approvalDecided({at: t(4), approvalId: 'apr_1', outcome: 'approved', requester: who, approver: bob, connection, session, justification: 'ok, checked', requestedAt: t(3)}),
    events.statement({at: t(5), session, identity: who, connection, statementId: 'st2', text: 'DROP TABLE users', decision: 'block', ruleId: 'no-drop'}),
    events.sessionEnd({at: t(6), session, identity: who, connection, agent: 'embedded', startedAt: t(0), bytesUp: 200, bytesDown: 900, reason: 'client closed'}),
  ]
}

/** Rewrites event `seq` (with `edit`) and recomputes every hash, leaf and link after it, as a forger would. */
export function forge(db: Database.Database, seq: number, edit: (e: StoredEvent) => void): void {
  const rows = db.prepare('SELECT seq, body FROM audit_events WHERE seq >= ? ORDER BY seq').all(seq) as {seq: number; body: string}[]
  let prev = (db.prepare('SELECT prev_hash FROM audit_events WHERE seq = ?').get(seq) as {prev_hash: string}).prev_hash
  const update = db.prepare('UPDATE audit_events SET body = ?, hash = ?, prev_hash = ?, leaf = ? WHERE seq = ?')
  for (const r of rows) {
    const e = JSON.parse(r.body) as StoredEvent
    if (r.seq === seq) edit(e)
    e.prev_hash = prev
    const body = canonicalize(e)
    const hash = createHash('sha256').update(body).digest('hex')
    update.run(body, hash, prev, leafHash(body), r.seq)
    prev = hash
  }
}
