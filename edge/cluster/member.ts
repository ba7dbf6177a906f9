// This edge's membership of the cluster: keeps its registry entry alive (lease renewed every
// third of its TTL), marks it draining, keeps a cached list of live edges for the forwarder and
// discovery (refreshed every refreshIntervalMs, so forwarding never waits on the registry), and
// keeps RunnerRecord.edges true for the runners this edge holds sessions to: added when a session
// comes, removed when the last one goes, repaired on every refresh (two edges writing one runner's
// record at once can lose an update; the repair makes it converge within one refresh).
import { systemClock, type Clock } from '../../shared/clock.js'
import type { RouteStore } from '../routing/store.js'
import type { SessionTable } from '../tunnel/sessions.js'
import type { EdgeInfo, EdgeRecord, EdgeRegistry } from './registry.js'

export interface ClusterMemberOptions {
  registry: EdgeRegistry
  store: RouteStore
  sessions: SessionTable
  self: Omit<EdgeInfo, 'draining'>
  /** This edge's registry lease, in ms. @default 15000 */
  leaseTtlMs?: number
  /** How often the live-edge list and the runners' edge lists are refreshed, in ms. @default 1000 */
  refreshIntervalMs?: number
  clock?: Clock
  onError?(err: unknown, what: string): void
}

export class ClusterMember {
  private draining = false
  private live: EdgeRecord[] = []
  private renewTimer: NodeJS.Timeout | undefined
  private refreshTimer: NodeJS.Timeout | undefined
  private readonly clock: Clock
  private readonly leaseTtlMs: number
  private readonly offSessions: () => void
  private stopped = false

  constructor(private readonly opts: ClusterMemberOptions) {
    this.clock = opts.clock ?? systemClock
    this.leaseTtlMs = opts.leaseTtlMs ?? 15_000
    const onAdded = (e: { runnerId: string }): void => void this.syncRunner(e.runnerId)
    const onRemoved = (e: { runnerId: string }): void => void this.syncRunner(e.runnerId)
    opts.sessions.on('added', onAdded)
    opts.sessions.on('removed', onRemoved)
    this.offSessions = () => {
      opts.sessions.off('added', onAdded)
      opts.sessions.off('removed', onRemoved)
    }
  }

  get edgeId(): string {
    return this.opts.self.edgeId
  }

  get isDraining(): boolean {
    return this.draining
  }

  /** Registers, then renews and refreshes on timers until stop(). */
  async start(): Promise<void> {
    await this.register()
    await this.refresh()
    this.renewTimer = setInterval(() => void this.register(), Math.max(50, this.leaseTtlMs / 3))
    this.renewTimer.unref()
    this.refreshTimer = setInterval(() => void this.refresh(), this.opts.refreshIntervalMs ?? 1000)
    this.refreshTimer.unref()
  }

  /** Live edges other than this one, as last refreshed. */
  peers(): EdgeRecord[] {
    const now = this.clock.now()
    return this.live.filter((e) => e.edgeId !== this.edgeId && e.expiresAt > now)
  }

  /** Live edges including this one, as last refreshed (discovery lists these). */
  edges(): EdgeRecord[] {
    const now = this.clock.now()
    return this.live.filter((e) => e.expiresAt > now)
  }

  /** Marks this edge draining in the registry, so others stop picking it and agents move. */
  async setDraining(): Promise<void> {
    this.draining = true
    await this.register()
  }

  /** Stops the timers and leaves the registry and the runners' edge lists at once. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.renewTimer)
    clearInterval(this.refreshTimer)
    this.offSessions()
    await this.opts.registry.remove(this.edgeId).catch((err: unknown) => this.fail(err, 'leave'))
    for (const r of await this.opts.store.listRunners().catch(() => [])) {
      if (r.edges.includes(this.edgeId)) await this.syncRunner(r.runnerId, true)
    }
  }

  private async register(): Promise<void> {
    if (this.stopped) return
    try {
      await this.opts.registry.put({ ...this.opts.self, draining: this.draining }, this.leaseTtlMs)
    } catch (err) {
      this.fail(err, 'register')
    }
  }

  async refresh(): Promise<void> {
    if (this.stopped) return
    try {
      this.live = await this.opts.registry.list()
    } catch (err) {
      // Keep the last list: forwarding to a stale list fails over per edge, none is worse.
      this.fail(err, 'list-edges')
    }
    const holding = new Set(this.opts.sessions.runners())
    try {
      for (const r of await this.opts.store.listRunners()) {
        const listed = r.edges.includes(this.edgeId)
        const stale = r.edges.some((e) => !this.isLive(e))
        if (holding.has(r.runnerId) !== listed || stale) await this.syncRunner(r.runnerId)
      }
    } catch (err) {
      this.fail(err, 'repair-runner-edges')
    }
  }

  private isLive(edgeId: string): boolean {
    return edgeId === this.edgeId || this.live.some((e) => e.edgeId === edgeId)
  }

  /**
   * Rewrites one runner's `edges`: this edge in it iff it holds a session (and is not leaving),
   * edges whose registry lease ran out taken out. The lease is kept, not extended: remaining
   * time is passed as the TTL, so this bookkeeping never makes a silent runner look healthy.
   */
  private async syncRunner(runnerId: string, leaving = false): Promise<void> {
    try {
      const rec = await this.opts.store.getRunner(runnerId)
      if (!rec) return
      const holds = !leaving && !this.stopped && this.opts.sessions.sessions(runnerId).length > 0
      const next = rec.edges.filter((e) => e !== this.edgeId && this.isLive(e))
      if (holds) next.push(this.edgeId)
      next.sort()
      const same = next.length === rec.edges.length && next.every((e, i) => e === rec.edges[i])
      if (same) return
      const remaining = Math.max(1, rec.lease.expiresAt - this.clock.now())
      await this.opts.store.heartbeat(runnerId, { edges: next }, remaining)
    } catch (err) {
      this.fail(err, 'runner-edges')
    }
  }

  private fail(err: unknown, what: string): void {
    this.opts.onError?.(err, what)
  }
}
