// Reconnect pacing: exponential backoff with full jitter (a uniformly random delay between 0 and
// min(cap, base * 2^attempt)), so a fleet of agents that lost an edge together does not come
// back in lockstep. Time and randomness are injected; this module never dials anything.
import { abortError } from './errors.js'
import { systemClock, type Clock } from './clock.js'

export interface BackoffOptions {
  /** First ceiling, in milliseconds. @default 250 */
  baseMs?: number
  /** Largest ceiling, in milliseconds. @default 30000 */
  capMs?: number
  /** Uniform [0, 1) source; injected for tests. @default Math.random */
  random?: () => number
}

export class Backoff {
  private attempt = 0
  private readonly baseMs: number
  private readonly capMs: number
  private readonly random: () => number

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 250
    this.capMs = opts.capMs ?? 30_000
    this.random = opts.random ?? Math.random
    if (!(this.baseMs > 0 && this.capMs >= this.baseMs)) {
      throw new RangeError(`backoff needs 0 < baseMs <= capMs, got ${this.baseMs}, ${this.capMs}`)
    }
  }

  /** The ceiling of the next delay, in milliseconds. */
  get ceilingMs(): number {
    // 2^attempt overflows to Infinity long after it passed the cap; min() keeps it finite.
    return Math.min(this.capMs, this.baseMs * 2 ** this.attempt)
  }

  /** The delay before the next try, in milliseconds; each call moves one attempt further. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceilingMs)
    if (this.ceilingMs < this.capMs) this.attempt++
    return delay
  }

  /** After a success: the next failure starts from the base again. */
  reset(): void {
    this.attempt = 0
  }
}

/** Waits `ms` on `clock`; rejects with the abort reason (typed) if `signal` fires first. */
export function sleep(
  ms: number,
  opts: { clock?: Clock; signal?: AbortSignal } = {},
): Promise<void> {
  const clock = opts.clock ?? systemClock
  const signal = opts.signal
  if (signal?.aborted) return Promise.reject(abortError(signal))
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(timer)
      reject(abortError(signal!))
    }
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
