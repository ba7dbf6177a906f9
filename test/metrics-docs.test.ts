// Keeps docs/METRICS.md in step with the metric definitions (name, type, labels), checks each
// definition against the naming contract, and that the modules on a stream's path never import
// prom-client (only process start-up code chooses PromMetrics).
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EDGE_TUNNEL_METRICS } from '../edge/tunnel/metrics.js'
import { AGENT_METRICS } from '../agent/metrics.js'
import { EDGE_CLUSTER_METRICS } from '../edge/cluster/metrics.js'
import { checkMetricDef, type MetricDef } from '../shared/metrics.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const doc = readFileSync(join(ROOT, 'docs/METRICS.md'), 'utf8')
const rows = new Map<string, { type: string; labels: string }>()
for (const line of doc.split('\n')) {
  const m = /^\| `(hopgate_[a-z0-9_]+)` \| (\w+) \| ([^|]*)\|/.exec(line)
  if (m) rows.set(m[1]!, { type: m[2]!, labels: m[3]!.trim() })
}

const kindOf = (def: MetricDef): 'counter' | 'gauge' =>
  def.name.endsWith('_total') ? 'counter' : 'gauge'

t.test('every defined metric is documented with its type and labels', async (tt) => {
  const defs: MetricDef[] = [
    ...Object.values(EDGE_TUNNEL_METRICS),
    ...Object.values(AGENT_METRICS),
    ...Object.values(EDGE_CLUSTER_METRICS),
  ]
  tt.ok(defs.length >= 14, 'definitions found')
  for (const def of defs) {
    tt.doesNotThrow(() => checkMetricDef(def, kindOf(def)), `${def.name} follows the contract`)
    const row = rows.get(def.name)
    tt.ok(row, `${def.name} is in docs/METRICS.md`)
    if (!row) continue
    tt.equal(row.type, kindOf(def), `${def.name}: type`)
    const labels = (def.labelNames ?? []).map((l) => `\`${l}\``).join(', ')
    tt.equal(row.labels, labels, `${def.name}: labels`)
  }
  const defined = new Set(defs.map((d) => d.name))
  for (const name of rows.keys()) {
    if (name.startsWith('hopgate_agent_') || name.startsWith('hopgate_edge_t')) {
      tt.ok(defined.has(name), `${name} documented and defined`)
    }
  }
})

// Metrics defined inline (not in a catalog) are found by their literal names in the sources.
t.test('every metric named in the sources is documented', async (tt) => {
  const names = new Set<string>()
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name)
      if (e.isDirectory()) walk(rel)
      else if (e.name.endsWith('.ts')) {
        const text = readFileSync(join(ROOT, rel), 'utf8')
        for (const m of text.matchAll(/name: '(hopgate_(?:edge|agent)_[a-z0-9_]+)'/g))
          names.add(m[1]!)
      }
    }
  }
  for (const dir of ['edge', 'agent', 'shared', 'certs']) walk(dir)
  tt.ok(names.size >= 17, `${names.size} metric names found`)
  for (const name of names) tt.ok(rows.has(name), `${name} is in docs/METRICS.md`)
})

t.test('the hot path never imports prom-client', async (tt) => {
  const dirs = ['agent', 'edge/tunnel', 'shared/yamux', 'shared/tunnel']
  let files = 0
  for (const dir of dirs) {
    for (const f of readdirSync(join(ROOT, dir))) {
      if (!f.endsWith('.ts')) continue
      files++
      const text = readFileSync(join(ROOT, dir, f), 'utf8')
      tt.notMatch(text, /from ['"](prom-client|[./]*shared\/metrics-prom\.js)['"]/, `${dir}/${f}`)
    }
  }
  tt.ok(files > 20, `${files} files checked`)
})
