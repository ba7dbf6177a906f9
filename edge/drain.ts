// Graceful drain of one edge (SIGTERM): not ready at once (/readyz 503), no new agent sessions,
// draining in the registry (peers stop forwarding here), `drain` advice to every agent (connect
// elsewhere first), then after a lame-duck period (load balancers see the 503 and stop sending)
// no new user connections; in-flight streams (SSH sessions too) get until the grace period ends,
// then the edge closes (SSH users get a disconnect). It owns the sequence and its timing only; each step is the edge's (edge/edge.ts).
import { systemClock, type Clock } from '../shared/clock.js'
import { noopMetrics, type Metrics } from '../shared/metrics.js'
import { EDGE_CLUSTER_METRICS } from './cluster/metrics.js'

export interface DrainConfig {
  /** From the start of the drain to the forced close, in ms. @default 30000 */
  gracePeriodMs?: number
  /**
   * How long user ingress keeps accepting after /readyz turned 503, in ms: at least a load
   * balancer's health-check interval times its failure threshold. @default 2000
   */
  lameDuckMs?: number
  /** How often in-flight streams are counted while waiting, in ms. @default 50 */
  pollIntervalMs?: number
}

/** What the drain acts on; edge/edge.ts provides it. */
export interface DrainTarget {
  /** /readyz answers 503 from now on. */
  setNotReady(): void
  /** The tunnel listener takes no new agent sessions (live ones go on). */
  stopTunnel(): void
  /** Registry entry marked draining. */
  markDraining(): Promise<void>
  /** Sends `drain` to every agent session; returns how many were told. */
  adviseAgents(): number
  /** User ingress takes no new connections (live ones go on). */
  stopIngress(): void
  /** User connections (raw TCP, HTTP, SSH) and forwarded streams still open. */
  inflight(): number
  close(): Promise<void>
}

export interface DrainReport {
  agentsAdvised: number
  /** In-flight count when ingress stopped accepting. */
  inflightAtStop: number
  /** In-flight count cut by the close at the grace deadline (0: everything finished). */
  inflightCut: number
  elapsedMs: number
}

export async function drainEdge(
  target: DrainTarget,
  config: DrainConfig = {},
  deps: {
    clock?: Clock
    onEvent?: (event: string, detail: Record<string, unknown>) => void
    /** hopgate_edge_draining, _drain_inflight, _drain_cut_total (edge/cluster/metrics.ts). */
    metrics?: Metrics
  } = {},
): Promise<DrainReport> {
  const clock = deps.clock ?? systemClock
  const metrics = deps.metrics ?? noopMetrics
  const drainingGauge = metrics.gauge(EDGE_CLUSTER_METRICS.draining)
  const inflightGauge = metrics.gauge(EDGE_CLUSTER_METRICS.drainInflight)
  const cut = metrics.counter(EDGE_CLUSTER_METRICS.drainCut)
  const grace = config.gracePeriodMs ?? 30_000
  const lameDuck = Math.min(config.lameDuckMs ?? 2000, grace)
  const poll = config.pollIntervalMs ?? 50
  const started = clock.now()
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      clock.setTimeout(resolve, ms)
    })
  // The clock's timers do not hold the process; with listeners closing, this must.
  const hold = setInterval(() => {}, 1 << 30)
  try {
    return await run()
  } finally {
    clearInterval(hold)
  }

  async function run(): Promise<DrainReport> {
    target.setNotReady()
    drainingGauge.set(1)
    target.stopTunnel()
    await target
      .markDraining()
      .catch((err: unknown) => deps.onEvent?.('drain-mark-failed', { err }))
    const agentsAdvised = target.adviseAgents()
    deps.onEvent?.('drain-started', { agentsAdvised, gracePeriodMs: grace, lameDuckMs: lameDuck })
    await sleep(lameDuck)
    target.stopIngress()
    const inflightAtStop = target.inflight()
    inflightGauge.set(inflightAtStop)
    while (target.inflight() > 0 && clock.now() - started < grace) {
      await sleep(Math.min(poll, Math.max(1, grace - (clock.now() - started))))
      inflightGauge.set(target.inflight())
    }
    const inflightCut = target.inflight()
    if (inflightCut > 0) cut.inc(undefined, inflightCut)
    await target.close()
    const report = { agentsAdvised, inflightAtStop, inflightCut, elapsedMs: clock.now() - started }
    deps.onEvent?.('drain-finished', report)
    return report
  }
}
