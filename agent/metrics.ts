// The agent's metrics: definitions (names, help, bounded labels) and the recorder the agent's
// sessions, stream server, renewer and connector report to. Through shared/metrics.ts only, so
// nothing on a stream's path imports prom-client; docs/METRICS.md lists every name (a test checks).
import type { MetricDef, Metrics } from '../shared/metrics.js'
import { openStatusName } from '../shared/tunnel/open-status.js'

export const AGENT_METRICS = {
  sessions: {
    name: 'hopgate_agent_sessions',
    help: 'Live sessions to edges (reverse and direct)',
  },
  connectFailures: {
    name: 'hopgate_agent_session_failures_total',
    help: 'Sessions that failed to come up or ended with an error, by typed code',
    labelNames: ['code'],
  },
  streams: {
    name: 'hopgate_agent_streams_total',
    help: 'Streams the edge opened, by the status the agent answered (ok or the refusal)',
    labelNames: ['status'],
  },
  controlErrors: {
    name: 'hopgate_agent_control_errors_total',
    help: 'Control stream errors, by typed code',
    labelNames: ['code'],
  },
  renewals: {
    name: 'hopgate_agent_cert_renewals_total',
    help: 'Certificate renewal attempts, by outcome (ok or failed)',
    labelNames: ['outcome'],
  },
  certExpiry: {
    name: 'hopgate_agent_cert_expiry_timestamp_seconds',
    help: 'When the runner certificate in use expires, Unix time in seconds',
  },
  projects: {
    name: 'hopgate_agent_projects',
    help: 'Projects in the target registry',
  },
  drains: {
    name: 'hopgate_agent_drain_advice_total',
    help: 'Drain advice received from edges',
  },
} as const satisfies Record<string, MetricDef>

const codeLabel = (code: unknown): string =>
  typeof code === 'string' && /^HOPGATE_ERR_[A-Z0-9_]{1,64}$/.test(code) ? code : 'other'
const codeOf = (err: unknown): unknown => (err as { code?: unknown } | undefined)?.code

export interface AgentMetrics {
  session(delta: 1 | -1): void
  sessionFailed(err: unknown): void
  stream(status: number): void
  controlError(err: unknown): void
  renewed(ok: boolean): void
  certExpiry(notAfterMs: number): void
  projects(n: number): void
  drained(): void
}

export function agentMetrics(metrics: Metrics): AgentMetrics {
  const sessions = metrics.gauge(AGENT_METRICS.sessions)
  const failures = metrics.counter(AGENT_METRICS.connectFailures)
  const streams = metrics.counter(AGENT_METRICS.streams)
  const controlErrors = metrics.counter(AGENT_METRICS.controlErrors)
  const renewals = metrics.counter(AGENT_METRICS.renewals)
  const expiry = metrics.gauge(AGENT_METRICS.certExpiry)
  const projects = metrics.gauge(AGENT_METRICS.projects)
  const drains = metrics.counter(AGENT_METRICS.drains)
  sessions.set(0)
  return {
    session: (delta) => (delta > 0 ? sessions.inc() : sessions.dec()),
    sessionFailed: (err) => failures.inc({ code: codeLabel(codeOf(err)) }),
    stream: (status) => streams.inc({ status: openStatusName(status) }),
    controlError: (err) => controlErrors.inc({ code: codeLabel(codeOf(err)) }),
    renewed: (ok) => renewals.inc({ outcome: ok ? 'ok' : 'failed' }),
    certExpiry: (ms) => expiry.set(Math.floor(ms / 1000)),
    projects: (n) => projects.set(n),
    drained: () => drains.inc(),
  }
}
