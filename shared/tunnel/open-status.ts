// The open status: the one byte the agent writes on a stream before any payload, answering the
// stream-open header (docs/PROTOCOL.md "Open status"). Owns the byte values, their names (metric
// label values) and the two-way mapping to typed errors; what the edge does about each status
// (re-resolve, retry, which HTTP answer) is the router's, guided by the catalogue's httpStatus.
import { HopgateError, type ErrorCode } from '../errors.js'

export const OpenStatus = {
  /** Target dialed; payload follows in both directions. */
  Ok: 0,
  /** The agent's registry does not list the project. */
  UnknownProject: 1,
  /** The agent holds another route epoch for the project (fencing). */
  StaleEpoch: 2,
  /** The registry lists the project but not this service or port (default deny). */
  Refused: 3,
  /** Allowed, but dialing the project's service failed. */
  TargetDown: 4,
  /** The stream-open header did not decode. */
  BadHeader: 5,
  /** The agent takes no new streams now (draining, or at a stream or dial limit); try later. */
  Overloaded: 6,
} as const
export type OpenStatus = (typeof OpenStatus)[keyof typeof OpenStatus]

/** Status names in byte order; bounded, so fit for a metric label. */
export const OPEN_STATUS_NAMES = [
  'ok',
  'unknown_project',
  'stale_epoch',
  'refused',
  'target_down',
  'bad_header',
  'overloaded',
] as const satisfies Record<OpenStatus, string>

const ERROR_BY_STATUS = [
  undefined,
  'HOPGATE_ERR_OPEN_UNKNOWN_PROJECT',
  'HOPGATE_ERR_OPEN_STALE_EPOCH',
  'HOPGATE_ERR_OPEN_REFUSED',
  'HOPGATE_ERR_OPEN_TARGET_DOWN',
  'HOPGATE_ERR_OPEN_BAD_HEADER',
  'HOPGATE_ERR_OPEN_OVERLOADED',
] as const satisfies Record<OpenStatus, ErrorCode | undefined>

export function isOpenStatus(value: unknown): value is OpenStatus {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 6
}

/** The name of a status byte, or `unknown` for bytes no version defines. */
export function openStatusName(status: number): (typeof OPEN_STATUS_NAMES)[number] | 'unknown' {
  return isOpenStatus(status) ? OPEN_STATUS_NAMES[status] : 'unknown'
}

export function encodeOpenStatus(status: OpenStatus): Buffer {
  if (!isOpenStatus(status)) throw new RangeError(`not an open status: ${String(status)}`)
  return Buffer.from([status])
}

/**
 * The error the edge raises for a status byte the agent answered: undefined for ok, and
 * HOPGATE_ERR_OPEN_BAD_STATUS for a byte no version defines (a newer or broken agent).
 */
export function statusToError(status: number, detail?: string): HopgateError | undefined {
  if (status === OpenStatus.Ok) return undefined
  if (!isOpenStatus(status)) {
    return new HopgateError('HOPGATE_ERR_OPEN_BAD_STATUS', detail ?? `status byte ${status}`)
  }
  return new HopgateError(ERROR_BY_STATUS[status]!, detail)
}

/**
 * The status byte the agent answers for a typed error it raised while opening: every
 * HOPGATE_ERR_OPEN_HEADER_* is BadHeader. Undefined for any other code: the agent then resets
 * the stream without a status (the edge sees HOPGATE_ERR_YAMUX_STREAM_RESET).
 */
export function errorToStatus(code: ErrorCode): Exclude<OpenStatus, 0> | undefined {
  if (code.startsWith('HOPGATE_ERR_OPEN_HEADER_')) return OpenStatus.BadHeader
  const i = ERROR_BY_STATUS.indexOf(code as (typeof ERROR_BY_STATUS)[number])
  return i > 0 ? (i as Exclude<OpenStatus, 0>) : undefined
}
