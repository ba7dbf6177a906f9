// The catalogue of hopgate's typed errors: a stable `code` per failure and what it maps to on the
// wire (yamux GoAway code, later HTTP status and stream-open status) and at the CLI (exit code).
// docs/errors.md lists every code; test/errors.test.ts keeps the two in step. Branch on `code`,
// never on `message`. Retired codes stay listed and are never reused.

export interface ErrorSpec {
  /** Human summary; the instance message may add detail after it. */
  readonly message: string
  /** yamux GoAway code sent when this error ends a session (0 normal, 1 protocol, 2 internal). */
  readonly goAway?: 0 | 1 | 2
  /** HTTP status when this error answers a user request. */
  readonly httpStatus?: number
  /** Process exit code when this error ends a CLI command. */
  readonly exitCode?: number
}

export const ERROR_CATALOG = {
  HOPGATE_ERR_CONFIG_INVALID: { message: 'configuration is invalid', exitCode: 78 },
  HOPGATE_ERR_ABORTED: { message: 'operation aborted' },

  // yamux: the peer broke the protocol. The session answers with GoAway(protocol error) and closes.
  HOPGATE_ERR_YAMUX_BAD_VERSION: { message: 'yamux frame has an unknown version', goAway: 1 },
  HOPGATE_ERR_YAMUX_BAD_TYPE: { message: 'yamux frame has an unknown type', goAway: 1 },
  HOPGATE_ERR_YAMUX_BAD_FLAGS: {
    message: 'yamux frame has flags its type does not allow',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_BAD_STREAM_ID: {
    message: 'yamux frame names a stream id that is not valid here',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_DUPLICATE_STREAM: {
    message: 'yamux SYN for a stream id already in use',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_UNEXPECTED_FRAME: {
    message: 'yamux frame for a stream the peer already closed or reset',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_FRAME_TOO_LARGE: {
    message: 'yamux data frame is larger than any window allows',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_RECV_WINDOW_EXCEEDED: {
    message: 'yamux peer sent more data than the receive window allows',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_WINDOW_OVERFLOW: {
    message: 'yamux window update grows the send window past 2^31-1',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_OPEN_FLOOD: {
    message: 'yamux peer keeps opening streams past the accept backlog',
    goAway: 1,
  },

  // yamux: the session or a stream ended for a reason that is not a protocol violation.
  HOPGATE_ERR_YAMUX_KEEPALIVE_TIMEOUT: {
    message: 'yamux keepalive ping was not answered in time',
    goAway: 2,
  },
  HOPGATE_ERR_YAMUX_CONNECTION_WRITE_TIMEOUT: {
    message: 'yamux transport accepted no writes for too long',
    goAway: 2,
  },
  HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN: { message: 'yamux session is closed' },
  HOPGATE_ERR_YAMUX_REMOTE_GOAWAY: { message: 'yamux peer sent GoAway: no new streams' },
  HOPGATE_ERR_YAMUX_GOING_AWAY: { message: 'yamux session is going away: no new streams' },
  HOPGATE_ERR_YAMUX_STREAM_RESET: { message: 'yamux stream was reset by the peer' },
  HOPGATE_ERR_YAMUX_STREAM_REFUSED: { message: 'yamux peer refused to open the stream' },
  HOPGATE_ERR_YAMUX_STREAMS_EXHAUSTED: { message: 'yamux session has no stream ids left' },
  HOPGATE_ERR_YAMUX_TOO_MANY_STREAMS: { message: 'yamux session is at its stream limit' },
  HOPGATE_ERR_YAMUX_BACKLOG_FULL: {
    message: 'yamux has too many opens the peer has not acknowledged',
  },
  HOPGATE_ERR_YAMUX_OPEN_TIMEOUT: { message: 'yamux peer did not acknowledge the stream in time' },
  HOPGATE_ERR_YAMUX_WRITE_TIMEOUT: { message: 'yamux stream write did not complete in time' },
  HOPGATE_ERR_YAMUX_CLOSE_TIMEOUT: { message: 'yamux peer did not close its side in time' },
  HOPGATE_ERR_YAMUX_PING_TIMEOUT: { message: 'yamux ping was not answered in time' },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERROR_CATALOG

export class HopgateError extends Error {
  readonly code: ErrorCode
  readonly goAway: 0 | 1 | 2 | undefined
  readonly httpStatus: number | undefined
  readonly exitCode: number | undefined

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERROR_CATALOG[code]
    super(detail ? `${spec.message}: ${detail}` : spec.message, options)
    this.name = 'HopgateError'
    this.code = code
    this.goAway = spec.goAway
    this.httpStatus = spec.httpStatus
    this.exitCode = spec.exitCode
  }
}

export function isHopgateError(err: unknown, code?: ErrorCode): err is HopgateError {
  return err instanceof HopgateError && (code === undefined || err.code === code)
}

/** The error to reject with when `signal` fired: its reason if typed, else HOPGATE_ERR_ABORTED. */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if (reason instanceof HopgateError) return reason
  return new HopgateError('HOPGATE_ERR_ABORTED', undefined, { cause: reason })
}
