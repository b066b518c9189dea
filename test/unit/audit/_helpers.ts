import Database from 'better-sqlite3'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {events} from '../../../src/audit/events.js'
import type {AuditEvent} from '../../../src/audit/events.js'
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
