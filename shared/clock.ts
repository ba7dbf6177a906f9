// Time, injected. Everything that waits (keepalive, deadlines, backoff, expiry) asks a Clock, so
// tests drive time by hand and run in milliseconds. This module owns no policy about durations.

export type TimerHandle = { readonly __timer: unique symbol } | object

export interface Clock {
  /** Monotonic milliseconds (fractional); only differences are meaningful. */
  now(): number
  /** Like setTimeout, but never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

interface ManualTimer {
  at: number
  seq: number
  fn: () => void
}

/** A clock that only moves when told to; timers fire in deadline order inside `advance`. */
export class ManualClock implements Clock {
  private current = 0
  private seq = 0
  private readonly timers = new Set<ManualTimer>()

  now(): number {
    return this.current
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn }
    this.timers.add(timer)
    return timer
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as ManualTimer)
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.timers.size
  }

  advance(ms: number): void {
    const target = this.current + ms
    for (;;) {
      let next: ManualTimer | undefined
      for (const t of this.timers) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) {
          next = t
        }
      }
      if (!next) break
      this.timers.delete(next)
      this.current = next.at
      next.fn()
    }
    this.current = target
  }
}

/**
 * The timers one owner has armed, so it can cancel them all at once and prove none are left.
 */
export class TimerGroup {
  private readonly handles = new Set<TimerHandle>()

  constructor(private readonly clock: Clock) {}

  set(fn: () => void, ms: number): TimerHandle {
    const handle = this.clock.setTimeout(() => {
      this.handles.delete(handle)
      fn()
    }, ms)
    this.handles.add(handle)
    return handle
  }

  clear(handle: TimerHandle | undefined): void {
    if (handle === undefined) return
    if (this.handles.delete(handle)) this.clock.clearTimeout(handle)
  }

  clearAll(): void {
    for (const h of this.handles) this.clock.clearTimeout(h)
    this.handles.clear()
  }

  get size(): number {
    return this.handles.size
  }
}
