// Client command packets (the command phase), decoded into a discriminated union. Commands the
// gateway does not model come back as `Unknown` for the engine to refuse, never as an exception.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
import {COM} from './constants.js'

export type Command =
  | {kind: 'Query'; sql: string}
  | {kind: 'InitDb'; database: string}
  | {kind: 'FieldList'; table: string}
  | {kind: 'StmtPrepare'; sql: string}
  | {kind: 'StmtExecute'; statementId: number; flags: number}
  | {kind: 'StmtFetch'; statementId: number; rows: number}
  | {kind: 'StmtClose'; statementId: number}
  | {kind: 'StmtReset'; statementId: number}
  | {kind: 'StmtSendLongData'; statementId: number}
  | {kind: 'Ping'}
  | {kind: 'Quit'}
  | {kind: 'Statistics'}
  | {kind: 'ResetConnection'}
  | {kind: 'SetOption'; option: number}
  | {kind: 'ProcessKill'; connectionId: number}
  | {kind: 'ChangeUser'}
  | {kind: 'Unknown'; command: number}
  | {kind: 'Malformed'; command: number; reason: string}

/** Statement id meaning "the statement prepared last" (MariaDB pipelined prepare + execute). */
export const LAST_STATEMENT_ID = 0xffffffff

export function decodeCommand(p: Buffer): Command {
  if (p.length === 0) return {kind: 'Malformed', command: -1, reason: 'empty command packet'}
  const c = p[0]
  const text = () => p.toString('utf8', 1)
  const id = (): number | undefined => (p.length >= 5 ? p.readUInt32LE(1) : undefined)
  const needId = <T extends Command>(make: (id: number) => T): Command => {
    const v = id()
    return v === undefined ? {kind: 'Malformed', command: c, reason: 'statement id missing'} : make(v)
  }
  switch (c) {
    case COM.QUERY:
      return {kind: 'Query', sql: text()}
    case COM.INIT_DB:
      return {kind: 'InitDb', database: text()}
    case COM.FIELD_LIST: {
      const end = p.indexOf(0, 1)
      return {kind: 'FieldList', table: p.toString('utf8', 1, end < 0 ? p.length : end)}
    }
    case COM.STMT_PREPARE:
      return {kind: 'StmtPrepare', sql: text()}
    case COM.STMT_EXECUTE:
      if (p.length < 10) return {kind: 'Malformed', command: c, reason: 'COM_STMT_EXECUTE shorter than 10 bytes'}
      return {kind: 'StmtExecute', statementId: p.readUInt32LE(1), flags: p[5]}
    case COM.STMT_FETCH:
      if (p.length < 9) return {kind: 'Malformed', command: c, reason: 'COM_STMT_FETCH shorter than 9 bytes'}
      return {kind: 'StmtFetch', statementId: p.readUInt32LE(1), rows: p.readUInt32LE(5)}
    case COM.STMT_CLOSE:
      return needId((statementId) => ({kind: 'StmtClose', statementId}))
    case COM.STMT_RESET:
      return needId((statementId) => ({kind: 'StmtReset', statementId}))
    case COM.STMT_SEND_LONG_DATA:
      return needId((statementId) => ({kind: 'StmtSendLongData', statementId}))
    case COM.PING:
      return {kind: 'Ping'}
    case COM.QUIT:
      return {kind: 'Quit'}
    case COM.STATISTICS:
      return {kind: 'Statistics'}
    case COM.RESET_CONNECTION:
      return {kind: 'ResetConnection'}
    case COM.SET_OPTION:
      if (p.length < 3) return {kind: 'Malformed', command: c, reason: 'COM_SET_OPTION shorter than 3 bytes'}
      return {kind: 'SetOption', option: p.readUInt16LE(1)}
    case COM.PROCESS_KILL:
      return needId((connectionId) => ({kind: 'ProcessKill', connectionId}))
    case COM.CHANGE_USER:
      return {kind: 'ChangeUser'}
    default:
      return {kind: 'Unknown', command: c}
  }
}

export function encodeCommand(command: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([command]), typeof body === 'string' ? Buffer.from(body, 'utf8') : body])
}

/** Human name of a command byte, for messages ("COM_BINLOG_DUMP"). */
export function commandName(c: number): string {
  for (const [k, v] of Object.entries(COM)) if (v === c) return `COM_${k}`
  return `0x${c.toString(16).padStart(2, "0")}`
}
