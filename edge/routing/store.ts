// The contract every route store meets: the embedded store (embedded-store.ts) and Redis
// (redis-store.ts, behind cached-store.ts on an edge). It fixes the semantics both share (epochs,
// compare-and-set, leases, change events); it holds no state and knows nothing of placement or
// health policy (router.ts).
import { HopgateError } from '../../shared/errors.js'
import type { Route, RouteUpdate, RunnerInfo, RunnerPatch, RunnerRecord } from './types.js'

/** A change a store has made durable; emitted after the write, in commit order. */
export type StoreChange =
  | { readonly kind: 'route'; readonly project: string; readonly route: Route }
  | { readonly kind: 'runner'; readonly runnerId: string; readonly runner: RunnerRecord | null }

export type ChangeListener = (change: StoreChange) => void

export interface RouteStore {
  /** The route as last made durable; undefined if the project has none. */
  getRoute(project: string): Promise<Route | undefined>

  /**
   * Compare-and-set: writes `next` if the route's epoch is `expectedEpoch` (`null`: only if the
   * project has no route yet) and resolves with the new route, its epoch one higher (1 on
   * creation), once the change is durable. Every success is a change, even one that rewrites the
   * same runner and state, so an epoch is never reused for two writes. A mismatch rejects with
   * RouteConflictError carrying the current route. Of concurrent calls naming the same expected
   * epoch exactly one succeeds.
   */
  casRoute(project: string, expectedEpoch: number | null, next: RouteUpdate): Promise<Route>

  /** Every route, sorted by project id. */
  listRoutes(): Promise<Route[]>

  /**
   * Registers a runner (its hello) or re-registers it, replacing every reported field, and grants
   * a lease of `leaseTtlMs`. Resolves once durable. `registeredAt` keeps its first value.
   *
   * `edges` in a shared store (Redis): each edge speaks only for itself. A write whose `edges`
   * includes the writing edge's own id adds (or renews) that edge's entry with an expiry of
   * `leaseTtlMs`; one whose `edges` omits it removes that entry; a putRunner without `edges`
   * removes it too, a heartbeat without `edges` renews it only if present. Ids of other edges in
   * `edges` are ignored, and each entry expires on its own. The reported `edges` is the sorted set
   * of live entries of every edge. The embedded store (one edge) stores the list as given.
   */
  putRunner(runnerId: string, info: RunnerInfo, leaseTtlMs: number): Promise<RunnerRecord>

  /**
   * Renews the lease of a registered runner to now + `leaseTtlMs` and applies `patch`. Rejects
   * with HOPGATE_ERR_RUNNER_UNKNOWN if the runner is not registered (it must say hello again).
   * Lease renewals are not waited on for durability: a lease never survives a restart anyway.
   */
  heartbeat(runnerId: string, patch: RunnerPatch, leaseTtlMs: number): Promise<RunnerRecord>

  getRunner(runnerId: string): Promise<RunnerRecord | undefined>

  /** Every registered runner, expired leases included (health is the router's call), by id. */
  listRunners(): Promise<RunnerRecord[]>

  /** Forgets a runner; its routes stay (and resolve as unavailable). False if it was unknown. */
  removeRunner(runnerId: string): Promise<boolean>

  /**
   * Calls `listener` for each route change and each runner registration, removal, or heartbeat
   * that changes `draining`, `directAddress` or `edges` (not for lease renewals or stats, which
   * would flood subscribers). Returns the unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void

  /** Waits for pending writes, then refuses further calls with HOPGATE_ERR_STORE_CLOSED. */
  close(): Promise<void>
}

/** A compare-and-set lost: `current` is the route it lost to (undefined: the project has none). */
export class RouteConflictError extends HopgateError {
  readonly current: Route | undefined
  readonly expectedEpoch: number | null

  constructor(project: string, expectedEpoch: number | null, current: Route | undefined) {
    const want = expectedEpoch === null ? 'no route' : `epoch ${expectedEpoch}`
    const have = current ? `epoch ${current.epoch}` : 'no route'
    super('HOPGATE_ERR_ROUTE_CONFLICT', `project ${project}: expected ${want}, found ${have}`)
    this.name = 'RouteConflictError'
    this.current = current
    this.expectedEpoch = expectedEpoch
  }
}

export function isRouteConflict(err: unknown): err is RouteConflictError {
  return err instanceof RouteConflictError
}
