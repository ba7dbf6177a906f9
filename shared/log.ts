// Logging: pino JSON lines on stderr (fd 2), so stdout stays free for a command's data (`--json`).
// Ids go in fields, not in messages; secrets are redacted wherever they appear one level deep.
import { pino, type Logger } from 'pino'
import { HopgateError } from './errors.js'

export type { Logger } from 'pino'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LEVELS)[number]

/** Field paths whose values never reach a log line. */
export const REDACT_PATHS: readonly string[] = [
  'token',
  'key',
  'password',
  'authorization',
  '*.token',
  '*.key',
  '*.password',
  '*.authorization',
]

export interface LoggerOptions {
  /** Overrides HOPGATE_LOG_LEVEL. @default process.env.HOPGATE_LOG_LEVEL ?? 'info' */
  level?: string
  /** Fields on every line, e.g. `{ component: 'edge' }`. */
  bindings?: Record<string, unknown>
  /** Where lines go; fd 2 (stderr) unless a test passes its own stream. */
  destination?: pino.DestinationStream
}

/** The level from `level`, else HOPGATE_LOG_LEVEL, else info; an unknown name is a config error. */
export function resolveLogLevel(level = process.env.HOPGATE_LOG_LEVEL): LogLevel {
  const wanted = (level ?? '').trim().toLowerCase() || 'info'
  const found = LEVELS.find((l) => l === wanted)
  if (!found) {
    throw new HopgateError(
      'HOPGATE_ERR_CONFIG_INVALID',
      `log level ${JSON.stringify(level)} is not one of ${LEVELS.join(', ')} (HOPGATE_LOG_LEVEL)`,
    )
  }
  return found
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = resolveLogLevel(options.level)
  // Synchronous writes: a CLI that exits right after logging must not lose the line.
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true })
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    destination,
  )
  return options.bindings ? logger.child(options.bindings) : logger
}
