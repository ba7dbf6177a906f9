// The default, single-edge RouteStore: state in memory, made durable in <stateDir>/routes.json.
// It owns write ordering (one writer, batches group-committed), durability and change events; the
// file format is routes-file.ts, placement and health are router.ts. One process per state dir.
import type { Clock } from '../../shared/clock.js'
import { HopgateError } from '../../shared/errors.js'
import type { Logger } from '../../shared/log.js'
import { loadRoutesFile, writeRoutesFile } from './routes-file.js'
import {
  RouteConflictError,
  type ChangeListener,
  type RouteStore,
  type StoreChange,
} from './store.js'
import * as t from './types.js'

export interface EmbeddedStoreOptions {
  stateDir: string
  /** Judges every lease. */
  clock: Clock
  /** Least ms between the starts of two durable writes; changes meanwhile share one. @default 20 */
  flushIntervalMs?: number
  /** Unix ms for the informational timestamps (updatedAt, registeredAt...). @default Date.now */
  wallClock?: () => number
  /** Where a throwing change listener is reported. */
  logger?: Logger
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error }
type OpBody =
  | { kind: 'cas'; project: string; expected: number | null; next: t.RouteUpdate }
  | { kind: 'put'; runnerId: string; info: t.RunnerInfo; ttlMs: number }
  | { kind: 'remove'; runnerId: string }
type Op = OpBody & { settle: (o: Outcome) => void }

export class EmbeddedStore implements RouteStore {
  // What readers see: only changes already durable, so nobody acts on an epoch a crash could undo.
  private routes = new Map<string, t.Route>()
  private readonly runners = new Map<string, t.RunnerRecord>()
  private readonly listeners = new Set<ChangeListener>()
  private queue: Op[] = []
  private writing = false
  private timer: NodeJS.Timeout | undefined
  private lastWriteAt = -Infinity
  private idleWaiters: Array<() => void> = []
  private closed = false
  private writes = 0
  private readonly flushIntervalMs: number
  private readonly wall: () => number

  private constructor(private readonly opts: EmbeddedStoreOptions) {
    this.flushIntervalMs = opts.flushIntervalMs ?? 20
    this.wall = opts.wallClock ?? Date.now
  }

  /** Loads the state dir; a damaged routes.json rejects with HOPGATE_ERR_STORE_CORRUPT. */
  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const store = new EmbeddedStore(opts)
    const snap = await loadRoutesFile(opts.stateDir)
    for (const r of snap.routes) store.routes.set(r.project, Object.freeze(r))
    // Leases live in this process's Clock; one granted before a restart proves nothing now, so a
    // loaded runner stays unhealthy until it heartbeats again.
    const expired = { expiresAt: opts.clock.now() }
    for (const r of snap.runners) {
      store.runners.set(r.runnerId, t.freezeRunner({ ...r, lease: expired }))
    }
    return store
  }

  async getRoute(project: string): Promise<t.Route | undefined> {
    this.assertOpen()
    t.assertProjectId(project)
    return this.routes.get(project)
  }

  async listRoutes(): Promise<t.Route[]> {
    this.assertOpen()
    return [...this.routes.values()].sort((a, b) => (a.project < b.project ? -1 : 1))
  }

  casRoute(project: string, expected: number | null, next: t.RouteUpdate): Promise<t.Route> {
    return this.enqueue(() => {
      t.assertProjectId(project)
      t.assertRunnerId(next.runner)
      t.assertRouteState(next.state)
      return { kind: 'cas', project, expected, next: { runner: next.runner, state: next.state } }
    })
  }

  putRunner(runnerId: string, info: t.RunnerInfo, ttlMs: number): Promise<t.RunnerRecord> {
    return this.enqueue(() => {
      t.assertRunnerId(runnerId)
      if (!info.capacity || !info.storage) {
        throw new HopgateError('HOPGATE_ERR_RUNNER_INVALID', 'registration without capacity')
      }
      t.assertRunnerPatch(info)
      t.assertLeaseTtl(ttlMs)
      return { kind: 'put', runnerId, info, ttlMs }
    })
  }

  removeRunner(runnerId: string): Promise<boolean> {
    return this.enqueue(() => {
      t.assertRunnerId(runnerId)
      return { kind: 'remove', runnerId }
    })
  }

  async heartbeat(runnerId: string, patch: t.RunnerPatch, ttlMs: number): Promise<t.RunnerRecord> {
    this.assertOpen()
    t.assertRunnerId(runnerId)
    t.assertRunnerPatch(patch)
    t.assertLeaseTtl(ttlMs)
    const prev = this.runners.get(runnerId)
    if (!prev) throw new HopgateError('HOPGATE_ERR_RUNNER_UNKNOWN', runnerId)
    const rec = t.applyRunnerPatch(prev, patch, this.opts.clock.now() + ttlMs, this.wall())
    this.runners.set(runnerId, rec)
    if (t.routingFieldsDiffer(prev, rec)) this.emit([{ kind: 'runner', runnerId, runner: rec }])
    return rec
  }

  async getRunner(runnerId: string): Promise<t.RunnerRecord | undefined> {
    this.assertOpen()
    t.assertRunnerId(runnerId)
    return this.runners.get(runnerId)
  }

  async listRunners(): Promise<t.RunnerRecord[]> {
    this.assertOpen()
    return [...this.runners.values()].sort((a, b) => (a.runnerId < b.runnerId ? -1 : 1))
  }

  /** Durable writes so far (each one fsync'ed file); a metric, and how tests see coalescing. */
  get writeCount(): number {
    return this.writes
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.writing || this.queue.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
    }
    this.listeners.clear()
  }

  private assertOpen(): void {
    if (this.closed) throw new HopgateError('HOPGATE_ERR_STORE_CLOSED')
  }

  // Validation throws inside the executor, so a bad call rejects without touching the queue.
  private enqueue<T>(build: () => OpBody): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.assertOpen()
      const settle = (o: Outcome): void => (o.ok ? resolve(o.value as T) : reject(o.error))
      this.queue.push({ ...build(), settle })
      this.schedule()
    })
  }

  // One write in flight at a time, and write starts at least flushIntervalMs apart: a burst of
  // changes (placements after a restart, Promise.all'd CAS) costs one fsync, not one each. Pacing
  // uses real time, not the Clock: it is I/O, not expiry, and a ManualClock must not stall writes.
  private schedule(): void {
    if (this.writing || this.timer || this.queue.length === 0) return
    const wait = Math.max(0, this.lastWriteAt + this.flushIntervalMs - performance.now())
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.writeBatch()
    }, wait)
  }

  private async writeBatch(): Promise<void> {
    const batch = this.queue
    this.queue = []
    this.writing = true
    this.lastWriteAt = performance.now()
    // Ops apply in call order to copies; readers keep seeing the old maps until the file is synced.
    const routes = new Map(this.routes)
    const before = new Map(this.runners)
    const runners = new Map(before)
    let outcomes: Array<{ outcome: Outcome; change?: StoreChange }> = []
    let changes: StoreChange[] = []
    let failure: Error | undefined
    try {
      outcomes = batch.map((op) => this.apply(op, routes, runners))
      changes = outcomes.flatMap((o) => (o.change ? [o.change] : []))
      if (changes.length > 0) {
        await writeRoutesFile(this.opts.stateDir, {
          routes: [...routes.values()],
          runners: [...runners.values()].map(({ lease: _lease, ...stored }) => stored),
        })
        this.writes++
      }
    } catch (err) {
      // Whatever failed, the batch must settle and the writer free up, or close() would hang.
      failure = err as Error
    }
    if (!failure) {
      this.routes = routes
      this.commitRunners(changes, before)
      this.emit(changes)
    }
    batch.forEach((op, i) =>
      op.settle(failure ? { ok: false, error: failure } : outcomes[i]!.outcome),
    )
    this.writing = false
    this.schedule()
    if (!this.writing && !this.timer && this.queue.length === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake()
    }
  }

  private apply(
    op: Op,
    routes: Map<string, t.Route>,
    runners: Map<string, t.RunnerRecord>,
  ): { outcome: Outcome; change?: StoreChange } {
    if (op.kind === 'cas') {
      const cur = routes.get(op.project)
      const matches = op.expected === null ? !cur : cur?.epoch === op.expected
      if (!matches) {
        return {
          outcome: { ok: false, error: new RouteConflictError(op.project, op.expected, cur) },
        }
      }
      // Frozen: readers share this object, and a caller bumping `epoch` in place would break fencing.
      const route: t.Route = Object.freeze({
        project: op.project,
        runner: op.next.runner,
        epoch: (cur?.epoch ?? 0) + 1,
        state: op.next.state,
        updatedAt: this.wall(),
      })
      routes.set(op.project, route)
      return {
        outcome: { ok: true, value: route },
        change: { kind: 'route', project: op.project, route },
      }
    }
    if (op.kind === 'put') {
      const prev = runners.get(op.runnerId)
      const now = this.wall()
      const base: t.RunnerRecord = {
        runnerId: op.runnerId,
        lease: { expiresAt: 0 },
        capacity: op.info.capacity,
        storage: op.info.storage,
        projects: 0,
        edges: [],
        draining: false,
        registeredAt: prev?.registeredAt ?? now,
        lastHeartbeatAt: now,
      }
      const rec = t.applyRunnerPatch(base, op.info, this.opts.clock.now() + op.ttlMs, now)
      runners.set(op.runnerId, rec)
      const change: StoreChange = { kind: 'runner', runnerId: op.runnerId, runner: rec }
      return { outcome: { ok: true, value: rec }, change }
    }
    const existed = runners.delete(op.runnerId)
    const change: StoreChange = { kind: 'runner', runnerId: op.runnerId, runner: null }
    return { outcome: { ok: true, value: existed }, change: existed ? change : undefined }
  }

  // Heartbeats may land on the live map while a batch is being written. Replaying only the
  // batch's own runner changes keeps them, and a lease renewed meanwhile is not shortened.
  private commitRunners(changes: StoreChange[], before: Map<string, t.RunnerRecord>): void {
    for (const c of changes) {
      if (c.kind !== 'runner') continue
      if (c.runner === null) {
        this.runners.delete(c.runnerId)
        continue
      }
      const live = this.runners.get(c.runnerId)
      const renewed = live !== undefined && live !== before.get(c.runnerId)
      const expiresAt = renewed
        ? Math.max(c.runner.lease.expiresAt, live.lease.expiresAt)
        : c.runner.lease.expiresAt
      this.runners.set(c.runnerId, t.freezeRunner({ ...c.runner, lease: { expiresAt } }))
    }
  }

  private emit(changes: StoreChange[]): void {
    for (const change of changes) {
      for (const listener of [...this.listeners]) {
        try {
          listener(change)
        } catch (err) {
          // A subscriber's bug must not undo or stall a change that is already durable.
          if (this.opts.logger) this.opts.logger.error({ err }, 'route store listener threw')
          else process.emitWarning(err as Error)
        }
      }
    }
  }
}
