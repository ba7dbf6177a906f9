// A RouteStore in front of a shared one (Redis): routes and runner records cached for at most
// ttlMs, replaced at once by change events (pub/sub), served stale for up to staleIfErrorMs when
// the store is unavailable, and every read bounded by readTimeoutMs so an outage never hangs a
// connection. Writes and lists pass through. Limits: docs/LIMITS.md "Redis store".
import type { Clock, TimerHandle } from '../../shared/clock.js'
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import type { ChangeListener, RouteStore, StoreChange } from './store.js'
import type { Route, RouteUpdate, RunnerInfo, RunnerPatch, RunnerRecord } from './types.js'
import { freezeRunner } from './types.js'

export interface CachedStoreOptions {
  /** The shared store; its onResync (RedisStore has one) says when events may have been missed. */
  inner: RouteStore & { onResync?(listener: () => void): () => void }
  /** Cache ages, read deadlines and the local lease extension during an outage. */
  clock: Clock
  /** Longest an entry answers without asking the store, ms. @default 5000 */
  ttlMs?: number
  /** Longest past its last confirmation by the store an entry answers while the store is
   * unavailable, ms. @default 60000 */
  staleIfErrorMs?: number
  /** Longest a read waits for the store before it counts as unavailable, ms. @default 400 */
  readTimeoutMs?: number
}

interface Entry<T> {
  value: T
  /** Clock time the store last confirmed this value (read or event). */
  at: number
  /** False once events may have been missed (resync): ask the store before trusting it. */
  fresh: boolean
}

/** Counters for metrics and tests. */
export interface CacheStats {
  hits: number
  misses: number
  /** Answers given from an expired entry because the store was unavailable. */
  stale: number
  /** Reads that failed with the store unavailable and nothing cached to answer. */
  unavailable: number
}

/** The failures during which a cached answer is better than none. */
function storeDown(err: unknown): boolean {
  return (
    isHopgateError(err, 'HOPGATE_ERR_STORE_UNAVAILABLE') ||
    isHopgateError(err, 'HOPGATE_ERR_STORE_IO')
  )
}

export class CachedStore implements RouteStore {
  readonly stats: CacheStats = { hits: 0, misses: 0, stale: 0, unavailable: 0 }
  private readonly routes = new Map<string, Entry<Route>>()
  private readonly runners = new Map<string, Entry<RunnerRecord>>()
  private readonly listeners = new Set<ChangeListener>()
  private readonly unsubscribe: Array<() => void> = []
  // Bumped by every event and resync: a read that started before one must not cache its answer,
  // which may predate the change the event announced.
  private version = 0
  private inserts = 0
  private readonly ttlMs: number
  private readonly staleMs: number
  private readonly readTimeoutMs: number
  private readonly inner: CachedStoreOptions['inner']
  private readonly clock: Clock

  constructor(opts: CachedStoreOptions) {
    this.inner = opts.inner
    this.clock = opts.clock
    this.ttlMs = opts.ttlMs ?? 5000
    this.staleMs = opts.staleIfErrorMs ?? 60_000
    this.readTimeoutMs = opts.readTimeoutMs ?? 400
    this.unsubscribe.push(this.inner.onChange((c) => this.onInnerChange(c)))
    if (this.inner.onResync) this.unsubscribe.push(this.inner.onResync(() => this.resync()))
  }

  async getRoute(project: string): Promise<Route | undefined> {
    return this.read(this.routes, project, () => this.inner.getRoute(project))
  }

  async getRunner(runnerId: string): Promise<RunnerRecord | undefined> {
    return this.read(this.runners, runnerId, () => this.inner.getRunner(runnerId))
  }

  async casRoute(project: string, expected: number | null, next: RouteUpdate): Promise<Route> {
    const route = await this.inner.casRoute(project, expected, next)
    this.put(this.routes, project, route)
    return route
  }

  listRoutes(): Promise<Route[]> {
    return this.bounded(this.inner.listRoutes())
  }

  listRunners(): Promise<RunnerRecord[]> {
    return this.bounded(this.inner.listRunners())
  }

  async putRunner(runnerId: string, info: RunnerInfo, ttlMs: number): Promise<RunnerRecord> {
    const rec = await this.inner.putRunner(runnerId, info, ttlMs)
    this.put(this.runners, runnerId, rec)
    return rec
  }

  async heartbeat(runnerId: string, patch: RunnerPatch, ttlMs: number): Promise<RunnerRecord> {
    try {
      const rec = await this.inner.heartbeat(runnerId, patch, ttlMs)
      this.put(this.runners, runnerId, rec)
      return rec
    } catch (err) {
      // The runner just proved itself alive over this edge's session; while the store cannot
      // record that, this edge's cached copy does, so its projects keep resolving here for the
      // stale window instead of failing once the last lease read runs out. Nothing is deleted.
      const e = this.runners.get(runnerId)
      if (storeDown(err) && e) {
        e.value = freezeRunner({ ...e.value, lease: { expiresAt: this.clock.now() + ttlMs } })
      }
      throw err
    }
  }

  async removeRunner(runnerId: string): Promise<boolean> {
    const existed = await this.inner.removeRunner(runnerId)
    this.runners.delete(runnerId)
    this.version++
    return existed
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Drops every cached entry (tests, and an operator's "forget what you know"). */
  clear(): void {
    this.routes.clear()
    this.runners.clear()
    this.version++
  }

  async close(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off()
    this.listeners.clear()
    await this.inner.close()
  }

  private async read<T>(
    cache: Map<string, Entry<T>>,
    key: string,
    fetch: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    const e = cache.get(key)
    const now = this.clock.now()
    if (e && e.fresh && now - e.at < this.ttlMs) {
      this.stats.hits++
      return e.value
    }
    this.stats.misses++
    const version = this.version
    let value: T | undefined
    try {
      value = await this.bounded(fetch())
    } catch (err) {
      if (storeDown(err) && e && this.clock.now() - e.at < this.staleMs) {
        this.stats.stale++
        return e.value
      }
      if (storeDown(err)) this.stats.unavailable++
      throw err
    }
    // Only what exists is cached: an unknown project is asked again, so a route created by
    // another edge is never hidden behind a cached "none".
    if (version === this.version) {
      if (value === undefined) cache.delete(key)
      else this.put(cache, key, value)
    }
    return value
  }

  /** The inner call, or HOPGATE_ERR_STORE_UNAVAILABLE once readTimeoutMs has passed. */
  private bounded<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer: TimerHandle = this.clock.setTimeout(
        () =>
          reject(
            new HopgateError(
              'HOPGATE_ERR_STORE_UNAVAILABLE',
              `no answer in ${this.readTimeoutMs} ms`,
            ),
          ),
        this.readTimeoutMs,
      )
      p.then(
        (v) => {
          this.clock.clearTimeout(timer)
          resolve(v)
        },
        (err: Error) => {
          this.clock.clearTimeout(timer)
          reject(err)
        },
      )
    })
  }

  private put<T>(cache: Map<string, Entry<T>>, key: string, value: T): void {
    cache.set(key, { value, at: this.clock.now(), fresh: true })
    // Entries past the stale window can never answer again; sweep them now and then.
    if (++this.inserts % 1024 === 0) this.sweep()
  }

  private sweep(): void {
    const oldest = this.clock.now() - this.staleMs
    for (const cache of [this.routes, this.runners] as Array<Map<string, Entry<unknown>>>) {
      for (const [k, e] of cache) if (e.at < oldest) cache.delete(k)
    }
  }

  private onInnerChange(change: StoreChange): void {
    this.version++
    if (change.kind === 'route') this.put(this.routes, change.project, change.route)
    else if (change.runner === null) this.runners.delete(change.runnerId)
    else this.put(this.runners, change.runnerId, change.runner)
    for (const l of [...this.listeners]) {
      try {
        l(change)
      } catch (err) {
        process.emitWarning(err as Error)
      }
    }
  }

  // Events may have been missed: nothing is fresh any more, but everything may still answer
  // during an outage (stale-if-error counts from the last confirmation, not from now).
  private resync(): void {
    this.version++
    for (const e of this.routes.values()) e.fresh = false
    for (const e of this.runners.values()) e.fresh = false
  }
}
