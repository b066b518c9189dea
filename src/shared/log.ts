// Structured logging: one JSON object per line on stderr (or human lines on a TTY). Secrets never
// reach here: callers log ids and names, and `redact` scrubs anything that looks like a token.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<LogLevel, number> = {debug: 10, info: 20, warn: 30, error: 40}

const TOKEN_LIKE = /\b(hoop_(?:sa|ag)_[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)/g

export function redact(text: string): string {
  return text.replace(TOKEN_LIKE, (m) => m.slice(0, 8) + '…[redacted]')
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(fields: Record<string, unknown>): Logger
}

interface LoggerOptions {
  level?: LogLevel
  json?: boolean
  write?: (line: string) => void
}

export function createLogger(opts: LoggerOptions = {}, base: Record<string, unknown> = {}): Logger {
  const level = opts.level ?? ((process.env.HOOP_LOG_LEVEL as LogLevel | undefined) ?? 'info')
  const json = opts.json ?? (process.env.HOOP_LOG_FORMAT === 'json' || !process.stderr.isTTY)
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return
    const all = {...base, ...fields}
    if (json) {
      write(redact(JSON.stringify({time: new Date().toISOString(), level: lvl, msg, ...all})))
    } else {
      const extra = Object.entries(all)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ')
      write(redact(`${lvl.padEnd(5)} ${msg}${extra ? ' ' + extra : ''}`))
    }
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(opts, {...base, ...fields}),
  }
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
}
