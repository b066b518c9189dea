// What the session recording keeps of a MySQL exchange, as the client saw it: one line per client
// command (the SQL itself for COM_QUERY and COM_STMT_PREPARE, the statement id for the COM_STMT_*
// commands that name one) and the ERR of each refused statement. Results are not summarized here:
// the gate records each statement's result event (rows, bytes, masked cells).
import {commandName, type Command} from '../../protocol/mysql/commands.js'

export function summarizeCommand(c: Command): string {
  switch (c.kind) {
    case 'Query':
    case 'StmtPrepare':
      return `${c.kind} ${c.sql}`
    case 'InitDb':
      return `InitDb ${c.database}`
    case 'StmtExecute':
    case 'StmtClose':
    case 'StmtReset':
    case 'StmtFetch':
      return `${c.kind} ${c.statementId}`
    case 'Unknown':
    case 'Malformed':
      return `${c.kind} ${commandName(c.command)}`
    default:
      return c.kind
  }
}

/** A refusal, as the ERR text the client got. */
export function summarizeRefusal(message: string): string {
  return `ERR ${message}`
}
