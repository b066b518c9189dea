// Child for the crash-safety test: appends in a loop and prints each acknowledged seq.
import {AuditLog} from '../../../src/audit/log.js'
import {events} from '../../../src/audit/events.js'
import {openDatabase} from '../../../src/store/sqlite.js'

const dir = process.argv[2]
const db = openDatabase(dir)
const log = AuditLog.open({db, dataDir: dir, checkpointEvery: {events: 500, ms: 50}})
const identity = {kind: 'user' as const, subject: 'u1', name: 'crash', groups: []}
let i = 0
for (;;) {
  const batch = Array.from({length: 50}, () =>
    log.append(events.statement({session: 'ses_crashcrash', identity, connection: 'db', statementId: String(i++), text: `SELECT ${i}`, decision: 'allow'})),
  )
  const acks = await Promise.all(batch)
  process.stdout.write(acks.map((a) => a.seq).join('\n') + '\n')
}
