// A FIFO of callers waiting for something (a backlog slot, an inbound stream), each with an
// optional AbortSignal and deadline. Owns no policy: the session decides what to wait for.
import { HopgateError, abortError, type ErrorCode } from '../errors.js'
import type { TimerGroup, TimerHandle } from '../clock.js'

interface Waiter<T> {
  resolve(value: T): void
  reject(err: Error): void
}

export class WaitQueue<T> {
  private readonly list: Array<Waiter<T>> = []

  constructor(private readonly timers: TimerGroup) {}

  get length(): number {
    return this.list.length
  }

  /** Waits until resolveNext(); rejects on abort, or with `timeoutCode` after `timeoutMs` (0 = never). */
  wait(signal: AbortSignal | undefined, timeoutMs: number, timeoutCode: ErrorCode): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: TimerHandle | undefined
      const cleanup = (): void => {
        const i = this.list.indexOf(waiter)
        if (i >= 0) this.list.splice(i, 1)
        this.timers.clear(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      const waiter: Waiter<T> = {
        resolve: (v) => (cleanup(), resolve(v)),
        reject: (e) => (cleanup(), reject(e)),
      }
      const onAbort = (): void => waiter.reject(abortError(signal!))
      signal?.addEventListener('abort', onAbort, { once: true })
      if (timeoutMs > 0) {
        timer = this.timers.set(() => waiter.reject(new HopgateError(timeoutCode)), timeoutMs)
      }
      this.list.push(waiter)
    })
  }

  /** Hands `value` to the longest waiter; false if nobody waits. */
  resolveNext(value: T): boolean {
    const waiter = this.list[0]
    if (!waiter) return false
    waiter.resolve(value)
    return true
  }

  rejectAll(err: Error): void {
    for (const waiter of [...this.list]) waiter.reject(err)
  }
}
