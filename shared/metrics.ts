// The metrics seam: counters, gauges and histograms by name, behind a small interface with a
// no-op default, so hot paths (yamux, the opener, ingress) never import prom-client. The
// Prometheus implementation is shared/metrics-prom.ts, chosen once at process start. Names follow
// ../docs/ARCHITECTURE.md "Observability": hopgate_edge_* / hopgate_agent_*, base units, counters
// end in _total, and no label ever holds a project, runner, account or address.

export type Labels = Readonly<Record<string, string>>

export interface Counter {
  inc(labels?: Labels, value?: number): void
}

export interface Gauge {
  set(value: number, labels?: Labels): void
  inc(labels?: Labels, value?: number): void
  dec(labels?: Labels, value?: number): void
}

export interface Histogram {
  /** Seconds or bytes (base units), as the metric's name says. */
  observe(value: number, labels?: Labels): void
}

export interface MetricDef {
  /** hopgate_edge_* or hopgate_agent_*, base units, counters end in _total. */
  readonly name: string
  readonly help: string
  /** Bounded labels only (a reason code, a service), never an id or address. */
  readonly labelNames?: readonly string[]
}

export interface Metrics {
  counter(def: MetricDef): Counter
  gauge(def: MetricDef): Gauge
  histogram(def: MetricDef & { readonly buckets?: readonly number[] }): Histogram
}

const noopCounter: Counter = { inc() {} }
const noopGauge: Gauge = { set() {}, inc() {}, dec() {} }
const noopHistogram: Histogram = { observe() {} }

/** The default everywhere: costs one call per event and keeps nothing. */
export const noopMetrics: Metrics = {
  counter: () => noopCounter,
  gauge: () => noopGauge,
  histogram: () => noopHistogram,
}

const NAME_RE = /^hopgate_(edge|agent)_[a-z0-9_]+$/
// Label names that would make a series per tenant or per client; refused when a metric is made.
const UNBOUNDED_LABELS = new Set(['project', 'runner', 'account', 'ip', 'address', 'client'])

/** Throws a TypeError for a name or label the contract forbids; called by every implementation. */
export function checkMetricDef(def: MetricDef, kind: 'counter' | 'gauge' | 'histogram'): void {
  if (!NAME_RE.test(def.name)) throw new TypeError(`metric name ${def.name}`)
  if ((kind === 'counter') !== def.name.endsWith('_total')) {
    throw new TypeError(`metric ${def.name}: counters, and only counters, end in _total`)
  }
  for (const l of def.labelNames ?? []) {
    if (UNBOUNDED_LABELS.has(l)) throw new TypeError(`metric ${def.name}: unbounded label ${l}`)
  }
}
