// Turns a project id into a route a stream may follow: health policy (lease, draining), placement
// of unrouted projects by headroom, and the typed refusals. It never moves a project (moves are an
// explicit operation, a later issue) and keeps no cache: every answer comes from the store.
import type { Clock } from '../../shared/clock.js'
import { HopgateError } from '../../shared/errors.js'
import { isRouteConflict, type RouteStore } from './store.js'
import { assertProjectId, type Route, type RunnerRecord } from './types.js'

export interface RouterOptions {
  store: RouteStore
  clock: Clock
}

/**
 * Headroom in [0, 1]: the scarcer of free storage (freeBytes / totalBytes) and free project slots
 * ((maxProjects - load) / maxProjects). The scarcer one, because a runner with an empty disk but
 * no slots left (or the reverse) cannot take another project. `load` is the larger of what the
 * runner reports and the routes already pointing at it, so a burst of placements between two
 * heartbeats spreads out instead of piling onto one runner.
 */
export function headroom(runner: RunnerRecord, load: number): number {
  const { maxProjects } = runner.capacity
  const { freeBytes, totalBytes } = runner.storage
  const slots = maxProjects > 0 ? Math.max(0, maxProjects - load) / maxProjects : 0
  const storage = totalBytes > 0 ? freeBytes / totalBytes : 0
  return Math.min(slots, storage)
}

/**
 * Candidates for a new project, best first: runners with a free slot, by headroom, then more free
 * bytes, then lower load, then runner id, so equal runners are picked deterministically.
 */
export function placementOrder(
  runners: readonly RunnerRecord[],
  loads: ReadonlyMap<string, number>,
): RunnerRecord[] {
  const scored = runners
    .map((r) => {
      const load = Math.max(r.projects, loads.get(r.runnerId) ?? 0)
      return { r, load, score: headroom(r, load) }
    })
    .filter((s) => s.load < s.r.capacity.maxProjects)
  scored.sort(
    (a, b) =>
      b.score - a.score ||
      b.r.storage.freeBytes - a.r.storage.freeBytes ||
      a.load - b.load ||
      (a.r.runnerId < b.r.runnerId ? -1 : a.r.runnerId > b.r.runnerId ? 1 : 0),
  )
  return scored.map((s) => s.r)
}

export class Router {
  private readonly store: RouteStore
  private readonly clock: Clock
  // Concurrent first requests for one unrouted project share one placement instead of racing
  // their CAS against each other.
  private readonly placing = new Map<string, Promise<Route>>()

  constructor(opts: RouterOptions) {
    this.store = opts.store
    this.clock = opts.clock
  }

  /** Healthy: the lease has not expired by the Clock and the runner is not draining. */
  isHealthy(runner: RunnerRecord): boolean {
    return !runner.draining && this.clock.now() < runner.lease.expiresAt
  }

  /** Healthy runners by runner id. */
  async healthyRunners(): Promise<RunnerRecord[]> {
    return (await this.store.listRunners()).filter((r) => this.isHealthy(r))
  }

  /** The stored route, without placing or health checks (`hopgate route get`). */
  async get(project: string): Promise<Route> {
    assertProjectId(project)
    const route = await this.store.getRoute(project)
    if (!route) throw new HopgateError('HOPGATE_ERR_ROUTE_NOT_FOUND', project)
    return route
  }

  /**
   * The route a new stream for `project` follows, placing the project first if it has none.
   * Refuses (503) a route whose runner is unhealthy or that is moving, rather than moving it. A
   * route in state `draining` still serves: its runner hosts the project until a move is made.
   */
  async resolve(project: string): Promise<Route> {
    assertProjectId(project)
    const route = (await this.store.getRoute(project)) ?? (await this.placeOnce(project))
    return this.check(route)
  }

  private async check(route: Route): Promise<Route> {
    if (route.state === 'moving') {
      throw new HopgateError('HOPGATE_ERR_ROUTE_MOVING', `project ${route.project}`)
    }
    const runner = await this.store.getRunner(route.runner)
    if (!runner || !this.isHealthy(runner)) {
      const why = !runner ? 'not registered' : runner.draining ? 'draining' : 'lease expired'
      throw new HopgateError(
        'HOPGATE_ERR_RUNNER_UNAVAILABLE',
        `runner ${route.runner} of project ${route.project}: ${why}`,
      )
    }
    return route
  }

  private placeOnce(project: string): Promise<Route> {
    let p = this.placing.get(project)
    if (!p) {
      p = this.place(project).finally(() => this.placing.delete(project))
      this.placing.set(project, p)
    }
    return p
  }

  private async place(project: string): Promise<Route> {
    const healthy = await this.healthyRunners()
    const loads = new Map<string, number>()
    for (const r of await this.store.listRoutes()) {
      loads.set(r.runner, (loads.get(r.runner) ?? 0) + 1)
    }
    const best = placementOrder(healthy, loads)[0]
    if (!best) {
      throw new HopgateError(
        'HOPGATE_ERR_RUNNER_NONE_AVAILABLE',
        `project ${project}: ${healthy.length} healthy runner(s), none with a free slot`,
      )
    }
    try {
      return await this.store.casRoute(project, null, { runner: best.runnerId, state: 'active' })
    } catch (err) {
      // Another edge (or an operator) routed it first: theirs stands, and gets the usual checks.
      if (isRouteConflict(err) && err.current) return err.current
      throw err
    }
  }
}
