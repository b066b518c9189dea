// Errors with stable codes. Every failure a user can act on has its own code, message and exit
// code; commands map codes to exit codes and hints (see docs/errors.md).

export const ERROR_CODES = {
  GATEWAY_UNREACHABLE: {exit: 10, hint: 'check the gateway URL (--gateway or HOOP_GATEWAY) and that `hoop gateway` is running'},
  TOKEN_REJECTED: {exit: 11, hint: 'run `hoop login`, or check HOOP_TOKEN / HOOP_AGENT_TOKEN'},
  NOT_LOGGED_IN: {exit: 11, hint: 'run `hoop login`, or set HOOP_TOKEN for a service account'},
  LOGIN_FAILED: {exit: 11, hint: 'run `hoop login` again; the message above says why the last attempt failed'},
  UNKNOWN_CONNECTION: {exit: 12, hint: 'run `hoop connections` to list the connections you may use'},
  AGENT_OFFLINE: {exit: 13, hint: 'start the agent that serves this connection (`hoop agent`)'},
  TARGET_REFUSED: {exit: 14, hint: 'the agent could not reach the target; check the connection\'s host and port'},
  ACCESS_DENIED: {exit: 15, hint: 'ask an administrator to grant you access (policy names the rule that decided)'},
  POLICY_BLOCKED: {exit: 16, hint: 'the statement was blocked by policy'},
  APPROVAL_REQUIRED: {exit: 17, hint: 'ask an approver to run `hoop approvals approve ID`'},
  CONFIG_INVALID: {exit: 18, hint: 'fix the file and line named above'},
  AUDIT_VERIFY_FAILED: {exit: 19, hint: 'the evidence does not verify; the first bad record is named above'},
  AUDIT_UNAVAILABLE: {exit: 24, hint: 'the audit store cannot write; statements are refused until it recovers (check disk space and the data dir)'},
  STATEMENT_FAILED: {exit: 25, hint: 'the database refused the statement; the message above is its own'},
  AUDIT_STORE_REFUSED: {exit: 26, hint: 'the audit store is behind or differs from the tree head the gateway published; restore the right store, or run `hoop gateway --accept-store-rollback` (audited) for disaster recovery'},
  NOTIFY_FAILED: {exit: 28, hint: 'the webhook named above refused the notification or could not be reached; see docs/notifications.md'},
  STORE_UNAVAILABLE: {exit: 27, hint: 'the gateway cannot reach its store; check `store` in the gateway config, the URL\'s secret and that the database is up'},
  PROTOCOL_ERROR: {exit: 20, hint: 'the peer sent a malformed message'},
  GATEWAY_SHUTDOWN: {exit: 21, hint: 'the gateway is restarting; retry in a moment'},
  NOT_FOUND: {exit: 22, hint: ''},
  CONFLICT: {exit: 23, hint: ''},
  INVALID_INPUT: {exit: 2, hint: ''},
  INTERNAL: {exit: 1, hint: 'this is a bug; the gateway log has details'},
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export class HoopError extends Error {
  override readonly name = 'HoopError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit
  }

  get hint(): string {
    return ERROR_CODES[this.code].hint
  }

  toJSON(): {code: ErrorCode; message: string} {
    return {code: this.code, message: this.message}
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value)
}

/** The message of anything thrown: an Error's (or error-like object's) message, else its string form. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  const message = (err as {message?: unknown} | null | undefined)?.message
  return typeof message === 'string' ? message : String(err)
}

/** Turns anything thrown into a HoopError without leaking internals to a peer. */
export function asHoopError(err: unknown): HoopError {
  if (err instanceof HoopError) return err
  return new HoopError('INTERNAL', 'internal error')
}
