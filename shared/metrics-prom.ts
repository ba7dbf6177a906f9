// The Prometheus implementation of shared/metrics.ts, on a registry of its own (not prom-client's
// global one, so two edges in one test process do not collide). Only process start-up code
// imports this file; what it exposes is served at /metrics on the admin port.
import client from 'prom-client'
import {
  checkMetricDef,
  type Counter,
  type Gauge,
  type Histogram,
  type MetricDef,
  type Metrics,
} from './metrics.js'

export class PromMetrics implements Metrics {
  readonly registry = new client.Registry()
  private readonly made = new Map<string, unknown>()

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) client.collectDefaultMetrics({ register: this.registry })
  }

  counter(def: MetricDef): Counter {
    return this.once(def, 'counter', () => {
      const c = new client.Counter({ ...this.base(def), registers: [this.registry] })
      return { inc: (labels, value = 1) => (labels ? c.inc(labels, value) : c.inc(value)) }
    })
  }

  gauge(def: MetricDef): Gauge {
    return this.once(def, 'gauge', () => {
      const g = new client.Gauge({ ...this.base(def), registers: [this.registry] })
      return {
        set: (value, labels) => (labels ? g.set(labels, value) : g.set(value)),
        inc: (labels, value = 1) => (labels ? g.inc(labels, value) : g.inc(value)),
        dec: (labels, value = 1) => (labels ? g.dec(labels, value) : g.dec(value)),
      }
    })
  }

  histogram(def: MetricDef & { readonly buckets?: readonly number[] }): Histogram {
    return this.once(def, 'histogram', () => {
      const h = new client.Histogram({
        ...this.base(def),
        ...(def.buckets ? { buckets: [...def.buckets] } : {}),
        registers: [this.registry],
      })
      return { observe: (value, labels) => (labels ? h.observe(labels, value) : h.observe(value)) }
    })
  }

  /** The text exposition format, for GET /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  // Two modules asking for the same metric share it; the same name as another kind is a bug.
  private once<T>(def: MetricDef, kind: 'counter' | 'gauge' | 'histogram', make: () => T): T {
    checkMetricDef(def, kind)
    const key = `${kind}:${def.name}`
    const have = this.made.get(key)
    if (have) return have as T
    if ([...this.made.keys()].some((k) => k.endsWith(`:${def.name}`))) {
      throw new TypeError(`metric ${def.name} already exists as another kind`)
    }
    const made = make()
    this.made.set(key, made)
    return made
  }

  private base(def: MetricDef): { name: string; help: string; labelNames: string[] } {
    return { name: def.name, help: def.help, labelNames: [...(def.labelNames ?? [])] }
  }
}
