// Telling a PostgreSQL client that it cannot have a session, in its own protocol: the startup
// exchange is played just far enough for the client to read our FATAL ErrorResponse as the reason
// (psql: "FATAL: hoop: ..."), instead of "server closed the connection unexpectedly".
// SSLRequest and GSSENCRequest are answered 'N' first: libpq ignores an error sent in answer to
// them (CVE-2024-10977), so the error must answer the StartupMessage. Pure: bytes in, bytes out.
// https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
import {ERROR_CODES, type ErrorCode} from '../../shared/errors.js'
import {Framer, MAX_STARTUP_PACKET} from './framer.js'
import {decodeStartup, encodeErrorResponse} from './messages.js'

/** The SQLSTATE a PostgreSQL client gets for each hoop error code (class 08: connection exceptions, 28: authorization). */
export function sqlStateOf(code: ErrorCode): string {
  switch (code) {
    case 'GATEWAY_UNREACHABLE':
    case 'UNKNOWN_CONNECTION':
    case 'AGENT_OFFLINE':
    case 'TARGET_REFUSED':
      return '08001' // sqlclient_unable_to_establish_sqlconnection
    case 'TOKEN_REJECTED':
    case 'NOT_LOGGED_IN':
    case 'LOGIN_FAILED':
    case 'ACCESS_DENIED':
      return '28000' // invalid_authorization_specification
    case 'AUDIT_UNAVAILABLE':
      return '08004' // sqlserver_rejected_establishment_of_sqlconnection
    case 'GATEWAY_SHUTDOWN':
      return '57P03' // cannot_connect_now
    case 'PROTOCOL_ERROR':
      return '08P01' // protocol_violation
    case 'INTERNAL':
      return 'XX000'
    default:
      return '08006' // connection_failure
  }
}

/** The FATAL ErrorResponse for a hoop error: `hoop: <message> [<CODE>]`, the code's hint as HINT. */
export function encodeHoopFatal(code: ErrorCode, message: string, sqlState = sqlStateOf(code)): Buffer {
  const hint = ERROR_CODES[code].hint
  return encodeErrorResponse({severity: 'FATAL', code: sqlState, message: `hoop: ${message} [${code}]`, hint: hint || undefined})
}

/**
 * What to do after the client's bytes: write `write`, then, `answered`: close (the client has the
 * error, or sent a CancelRequest that needs no answer); `foreign`: close without a word (these
 * bytes are not a PostgreSQL startup); `reading`: wait for more.
 */
export interface RefusalStep {
  write: Buffer[]
  state: 'reading' | 'answered' | 'foreign'
}

export class StartupRefusal {
  private readonly framer = new Framer('startup', MAX_STARTUP_PACKET)
  private state: RefusalStep['state'] = 'reading'

  constructor(private readonly error: Buffer) {}

  push(chunk: Buffer): RefusalStep {
    const write: Buffer[] = []
    if (this.state !== 'reading') return {write, state: this.state}
    const failed = this.framer.push(chunk, (f) => {
      // Bytes behind the StartupMessage (a first Query) are of no interest once it is answered.
      if (this.state !== 'reading') return
      const p = decodeStartup(f)
      switch (p.kind) {
        case 'SSLRequest':
        case 'GSSENCRequest':
          write.push(Buffer.from('N'))
          return
        case 'CancelRequest':
          this.state = 'answered'
          return
        case 'Startup':
          write.push(this.error)
          this.state = 'answered'
          return
        case 'Malformed':
          this.state = 'foreign'
          return
        default: {
          const never: never = p
          throw new Error(`unreachable ${String(never)}`)
        }
      }
    })
    if (failed && this.state === 'reading') this.state = 'foreign'
    return {write: this.state === 'foreign' ? [] : write, state: this.state}
  }
}
