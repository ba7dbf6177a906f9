// The edge's tunnel metrics: definitions (names, help, bounded labels) and the small recorder the
// listener, control handshake and session table report to. Goes through shared/metrics.ts, so
// the hot path never imports prom-client; docs/METRICS.md lists every name (a test checks).
import type { MetricDef, Metrics } from '../../shared/metrics.js'
import type { SessionTable } from './sessions.js'

export const EDGE_TUNNEL_METRICS = {
  refusals: {
    name: 'hopgate_edge_tunnel_refusals_total',
    help: 'Tunnel connections refused (identity, enrollment, handshake), by typed reason code',
    labelNames: ['reason'],
  },
  sessions: {
    name: 'hopgate_edge_sessions',
    help: 'Live agent sessions on this edge, by connector',
    labelNames: ['connector'],
  },
  sessionsOpened: {
    name: 'hopgate_edge_sessions_opened_total',
    help: 'Agent sessions that completed the control handshake, by connector',
    labelNames: ['connector'],
  },
  controlErrors: {
    name: 'hopgate_edge_control_errors_total',
    help: 'Control stream errors (bad messages, store failures), by typed code',
    labelNames: ['code'],
  },
  renewals: {
    name: 'hopgate_edge_cert_renewals_total',
    help: 'Runner certificate renewals answered, by outcome (ok or the refusal code)',
    labelNames: ['outcome'],
  },
  drains: {
    name: 'hopgate_edge_drain_advice_total',
    help: 'Drain advice messages sent to agent sessions',
  },
} as const satisfies Record<string, MetricDef>

/** Typed codes are a closed set; anything else is folded so a label never grows unbounded. */
export function codeLabel(code: unknown): string {
  return typeof code === 'string' && /^HOPGATE_ERR_[A-Z0-9_]{1,64}$/.test(code) ? code : 'other'
}

export interface EdgeTunnelMetrics {
  refused(code: string): void
  controlError(err: unknown): void
  renewed(outcome: string): void
  drained(n: number): void
}

/** Makes the edge's tunnel metrics and keeps the session gauge in step with `sessions`. */
export function edgeTunnelMetrics(metrics: Metrics, sessions: SessionTable): EdgeTunnelMetrics {
  const refusals = metrics.counter(EDGE_TUNNEL_METRICS.refusals)
  const gauge = metrics.gauge(EDGE_TUNNEL_METRICS.sessions)
  const opened = metrics.counter(EDGE_TUNNEL_METRICS.sessionsOpened)
  const controlErrors = metrics.counter(EDGE_TUNNEL_METRICS.controlErrors)
  const renewals = metrics.counter(EDGE_TUNNEL_METRICS.renewals)
  const drains = metrics.counter(EDGE_TUNNEL_METRICS.drains)
  for (const connector of ['reverse', 'direct']) gauge.set(0, { connector })
  sessions.on('added', (e) => {
    gauge.inc({ connector: e.connector })
    opened.inc({ connector: e.connector })
  })
  sessions.on('removed', (e) => gauge.dec({ connector: e.connector }))
  return {
    refused: (code) => refusals.inc({ reason: codeLabel(code) }),
    controlError: (err) =>
      controlErrors.inc({ code: codeLabel((err as { code?: unknown } | undefined)?.code) }),
    renewed: (outcome) => renewals.inc({ outcome: outcome === 'ok' ? 'ok' : codeLabel(outcome) }),
    drained: (n) => drains.inc(undefined, n),
  }
}
