// `npm run bench:yamux`: our yamux against yamux-js, libp2p-yamux, one-TLS-link-per-stream and
// raw TCP, all over loopback, in one run. The client side runs here; each metric gets a fresh
// server child (bench/lib/server.ts). See bench/lib/ for the protocol and the measurements.
import { MiB, parseBytes } from './lib/args.js'
import { parseArgs } from 'node:util'
import { makeTestPki } from '../certs/testing.js'
import * as measure from './lib/measure.js'
import { ALL_PATHS, BYTE_CAPS, IDLE_CAPS, type PathName } from './lib/muxes.js'
import {
  env,
  METRICS,
  ratios,
  table,
  tidy,
  toRow,
  type Metric,
  type Samples,
} from './lib/report.js'

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    bytes: { type: 'string' },
    paths: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '60' },
  },
})
const quick = flags.quick ?? false
const params: measure.Params = {
  bytes: flags.bytes ? parseBytes(flags.bytes) : (quick ? 16 : 256) * MiB,
  rttWarmup: quick ? 200 : 1000,
  rttCount: quick ? 2000 : 10_000,
  idleStreams: quick ? 200 : 1000,
  opensMs: quick ? 500 : 2000,
  inflight: 64,
  timeoutMs: Number(flags.timeout) * 1000,
}
const rounds = Math.max(1, Number(flags.rounds) | 0)
const paths = (flags.paths ? flags.paths.split(',').map((s) => s.trim()) : [...ALL_PATHS]).filter(
  (p): p is PathName => {
    if ((ALL_PATHS as readonly string[]).includes(p)) return true
    throw new Error(`unknown path ${p}; known: ${ALL_PATHS.join(',')}`)
  },
)

const log = (msg: string) => process.stderr.write(`${msg}\n`)
// A path under test that blows up asynchronously after its metric was abandoned must not take
// the whole run (and every other path's numbers) down with it.
process.on('unhandledRejection', (e) => log(`  (stray rejection: ${String(e)})`))
process.on('uncaughtException', (e) => log(`  (stray exception: ${e.message})`))

type Task = [label: string, metrics: Metric[], run: (c: measure.Ctx) => Promise<number[]>]
const TASKS: Task[] = [
  ['MB/s, 1 stream', ['throughputMBps'], async (c) => [await measure.throughput(c, 1)]],
  ['MB/s, 8 streams', ['throughput8MBps'], async (c) => [await measure.throughput(c, 8)]],
  [
    'RTT p50/p99 µs',
    ['rttP50Us', 'rttP99Us'],
    async (c) => {
      const r = await measure.rtt(c)
      return [r.p50, r.p99]
    },
  ],
  ['opens/s', ['opensPerSec'], async (c) => [await measure.opens(c)]],
  [
    'idle heap/RSS B per stream',
    ['idleHeapBytesPerStream', 'idleRssBytesPerStream'],
    async (c) => {
      const r = await measure.idle(c)
      return [r.heap, r.rss]
    },
  ],
]

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

async function main() {
  const pki = makeTestPki()
  const samples: Record<string, Samples> = {}
  for (const path of paths) {
    samples[path] = Object.fromEntries(
      METRICS.map((m) => [m, { values: [] as number[], errors: 0 }]),
    ) as Samples
  }
  for (let round = 1; round <= rounds; round++) {
    for (const path of paths) {
      for (const [label, metrics, run] of TASKS) {
        const ctx: measure.Ctx = { path, pki, p: params, cleanups: [] }
        const tag = `[${round}/${rounds}] ${path} ${label}`
        try {
          const vals = await withTimeout(run(ctx), params.timeoutMs)
          metrics.forEach((m, i) => samples[path]![m].values.push(vals[i]!))
          log(`${tag}: ${vals.map((v) => v.toFixed(1)).join(' / ')}`)
        } catch (err) {
          for (const m of metrics) samples[path]![m].errors++
          log(`${tag}: error: ${(err as Error).message}`)
        } finally {
          for (const c of ctx.cleanups) c()
        }
      }
    }
  }
  const rows = paths.map((p) => toRow(p, samples[p]!))
  const notes: Record<string, string> = {}
  for (const p of paths) {
    const cap = BYTE_CAPS[p]
    const why: string[] = []
    if (cap !== undefined && cap < params.bytes) why.push(`bulk capped at ${cap / MiB} MiB`)
    const idleN = measure.idleCount(p, params)
    if (idleN < params.idleStreams) why.push(`idle: ${idleN} streams`)
    if (why.length) notes[p] = why.join('; ')
  }
  if (flags.json) {
    const out = {
      paths: rows.map(tidy),
      env: env(),
      params: {
        ...params,
        rounds,
        quick,
        paths,
        byteCaps: BYTE_CAPS,
        idleCaps: IDLE_CAPS,
        opensUnit: 'per stream (mux) / per connection (tls, tcp)',
      },
    }
    process.stdout.write(`${JSON.stringify(out)}\n`)
  } else {
    const mib = (params.bytes / MiB).toFixed(params.bytes % MiB ? 2 : 0)
    process.stdout.write(
      `${table(rows, samples, notes)}\n\n${ratios(rows)}\n\n` +
        `bulk ${mib} MiB, RTT ${params.rttCount} x 64 B, ${params.idleStreams} idle streams, ` +
        `opens ${params.opensMs} ms x ${params.inflight} in flight, ${rounds} round(s)` +
        `${rounds > 1 ? ' (median)' : ''}; tls/tcp: opens and memory are per connection\n`,
    )
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`bench failed: ${String(err)}`)
    process.exit(1)
  },
)
