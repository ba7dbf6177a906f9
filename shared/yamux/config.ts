// Typed yamux session configuration: every field has a unit in its name and a default, and
// verifyConfig() refuses a bad value with HOPGATE_ERR_CONFIG_INVALID before a session starts.
import { HopgateError } from '../errors.js'
import { INITIAL_STREAM_WINDOW, MAX_WINDOW } from './frame.js'

export interface YamuxConfig {
  /** Inbound opens waiting to be accepted, and outbound opens not yet acknowledged. @default 256 */
  acceptBacklog: number
  /** Streams open at once in one session, both directions together. @default 16384 */
  maxStreams: number
  /** Upper bound of a stream's auto-tuned receive window, in bytes. @default 16 MiB */
  maxStreamWindowBytes: number
  /** Largest Data frame we send, in bytes; bigger writes are split. @default 256 KiB */
  maxDataFrameBytes: number
  /** Send a keepalive ping this often, in milliseconds; 0 disables keepalive. @default 15000 */
  keepAliveIntervalMs: number
  /** Fraction of the interval each keepalive is moved by at random, so fleets don't ping in step. @default 0.2 */
  keepAliveJitter: number
  /** A ping (keepalive or ping()) unanswered this long fails, in milliseconds. @default 10000 */
  pingTimeoutMs: number
  /** Reset an outbound stream the peer has not acknowledged after this long, in ms. @default 30000 */
  streamOpenTimeoutMs: number
  /** Reset a stream whose peer has not closed its side this long after ours, in ms. @default 60000 */
  streamCloseTimeoutMs: number
  /** Reset a stream whose write waits this long for window or transport, in ms; 0 = no limit. @default 0 */
  streamWriteTimeoutMs: number
  /** Close the session when the transport accepts no writes for this long, in ms. @default 30000 */
  connectionWriteTimeoutMs: number
  /** Bytes queued on the transport before streams wait for its 'drain'. @default 256 KiB */
  sendBufferBytes: number
  /** Stop answering pings while this many bytes wait to be written to the transport. @default 4 MiB */
  maxPendingControlBytes: number
}

export const defaultConfig: Readonly<YamuxConfig> = Object.freeze({
  acceptBacklog: 256,
  maxStreams: 16384,
  maxStreamWindowBytes: 16 * 1024 * 1024,
  maxDataFrameBytes: 256 * 1024,
  keepAliveIntervalMs: 15_000,
  keepAliveJitter: 0.2,
  pingTimeoutMs: 10_000,
  streamOpenTimeoutMs: 30_000,
  streamCloseTimeoutMs: 60_000,
  streamWriteTimeoutMs: 0,
  connectionWriteTimeoutMs: 30_000,
  sendBufferBytes: 256 * 1024,
  maxPendingControlBytes: 4 * 1024 * 1024,
})

type Rule = [min: number, max: number, integer: boolean]

const rules: Record<keyof YamuxConfig, Rule> = {
  acceptBacklog: [1, 65536, true],
  maxStreams: [1, 2 ** 30, true],
  maxStreamWindowBytes: [INITIAL_STREAM_WINDOW, MAX_WINDOW, true],
  maxDataFrameBytes: [1024, 16 * 1024 * 1024, true],
  keepAliveIntervalMs: [0, 24 * 3600_000, true],
  keepAliveJitter: [0, 0.5, false],
  pingTimeoutMs: [1, 3600_000, true],
  streamOpenTimeoutMs: [1, 3600_000, true],
  streamCloseTimeoutMs: [1, 24 * 3600_000, true],
  streamWriteTimeoutMs: [0, 24 * 3600_000, true],
  connectionWriteTimeoutMs: [1, 3600_000, true],
  sendBufferBytes: [0, 64 * 1024 * 1024, true],
  maxPendingControlBytes: [64 * 1024, 2 ** 31, true],
}

/** Merges `partial` over the defaults and validates every field. */
export function verifyConfig(partial: Partial<YamuxConfig> = {}): YamuxConfig {
  const config: YamuxConfig = { ...defaultConfig }
  for (const [key, value] of Object.entries(partial)) {
    if (!(key in rules)) {
      throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `yamux: unknown option ${key}`)
    }
    if (value === undefined) continue
    const [min, max, integer] = rules[key as keyof YamuxConfig]
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      (integer && !Number.isInteger(value)) ||
      value < min ||
      value > max
    ) {
      throw new HopgateError(
        'HOPGATE_ERR_CONFIG_INVALID',
        `yamux: ${key} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${String(value)}`,
      )
    }
    config[key as keyof YamuxConfig] = value
  }
  return config
}
