// One function per metric. Each gets a fresh server child (so no metric inherits another's
// garbage, windows or half-closed streams) and registers its teardown in `cleanups`, which the
// caller runs even when the metric times out.
import type { Duplex } from 'node:stream'
import { dial, type Dialer, type Pki } from './links.js'
import { BYTE_CAPS, IDLE_CAPS, isMux, type PathName } from './muxes.js'
import { Child } from './procs.js'
import { download, echoOne, pingPong, upload } from './protocol.js'

export interface Params {
  bytes: number
  rttWarmup: number
  rttCount: number
  idleStreams: number
  opensMs: number
  inflight: number
  timeoutMs: number
}
export type Cleanups = (() => void)[]
export interface Ctx {
  path: PathName
  pki: Pki
  p: Params
  cleanups: Cleanups
  /** Sets up a fresh path under test and dials it; default: a server child for `path`. */
  connect?: (ctx: Ctx) => Promise<Dialer>
}

async function startServer(ctx: Ctx): Promise<{ child: Child; port: number }> {
  const child = Child.spawn('server.ts')
  ctx.cleanups.push(() => child.kill())
  const r = await child.request({ cmd: 'init', path: ctx.path, pki: ctx.pki })
  if (r.port === undefined) throw new Error('server reported no port')
  return { child, port: r.port }
}

async function connect(ctx: Ctx): Promise<Dialer> {
  if (ctx.connect) return ctx.connect(ctx)
  const { port } = await startServer(ctx)
  const d = await dial(ctx.path, port, ctx.pki)
  ctx.cleanups.unshift(() => d.close())
  return d
}

export function bulkBytes(path: PathName, p: Params): number {
  return Math.min(p.bytes, BYTE_CAPS[path] ?? Infinity)
}

/**
 * MB/s (10^6) for `bulkBytes` split over `n` concurrent streams/links, opened before the clock;
 * 'up' is client to server ('U'), 'down' server to client ('D').
 */
export async function throughput(ctx: Ctx, n: number, dir: 'up' | 'down' = 'up'): Promise<number> {
  const d = await connect(ctx)
  const total = bulkBytes(ctx.path, ctx.p)
  const streams: Duplex[] = []
  for (let i = 0; i < n; i++) streams.push(await d.open())
  const share = Math.floor(total / n)
  const spans = await Promise.all(
    streams.map((s, i) =>
      (dir === 'up' ? upload : download)(s, i === n - 1 ? total - share * (n - 1) : share),
    ),
  )
  let start = spans[0]![0]
  let end = spans[0]![1]
  for (const [a, b] of spans) {
    if (a < start) start = a
    if (b > end) end = b
  }
  return total / (Number(end - start) / 1e9) / 1e6
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN
}

export async function rtt(ctx: Ctx): Promise<{ p50: number; p99: number }> {
  const d = await connect(ctx)
  const s = await d.open()
  const samples = (await pingPong(s, ctx.p.rttWarmup, ctx.p.rttCount)).sort()
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) }
}

/** Streams (mux) or links (tls/tcp) per second, each doing a 1-byte echo and then ending. */
export async function opens(ctx: Ctx): Promise<number> {
  return (await countOpens(ctx)).perSec
}

/** As opens(), with the number of opens done. */
export async function countOpens(ctx: Ctx): Promise<{ perSec: number; done: number }> {
  const d = await connect(ctx)
  let done = 0
  const start = performance.now()
  const deadline = start + ctx.p.opensMs
  let last = start
  const worker = async () => {
    while (performance.now() < deadline) {
      const s = await d.open()
      s.on('error', () => {})
      await echoOne(s)
      s.end()
      done++
      last = performance.now()
    }
  }
  // A mux that silently stops accepting (yamux-js after 256 streams) would otherwise sit out the
  // whole metric timeout; no progress for STALL_MS is a failure with a useful message.
  let watchdog: NodeJS.Timeout | undefined
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setInterval(() => {
      if (performance.now() - last > STALL_MS) reject(new Error(`opens stalled after ${done}`))
    }, 250)
  })
  try {
    await Promise.race([Promise.all(Array.from({ length: ctx.p.inflight }, worker)), stalled])
  } finally {
    clearInterval(watchdog)
  }
  return { perSec: done / ((performance.now() - start) / 1000), done }
}
const STALL_MS = 5000

export function idleCount(path: PathName, p: Params): number {
  return Math.min(p.idleStreams, IDLE_CAPS[path] ?? Infinity)
}

/** Bytes per idle stream, summed over both processes; for tls/tcp, per idle link. */
export async function idle(ctx: Ctx): Promise<{ heap: number; rss: number }> {
  const { child: server, port } = await startServer(ctx)
  const client = Child.spawn('idle-client.ts')
  ctx.cleanups.push(() => client.kill())
  const n = idleCount(ctx.path, ctx.p)
  const c0 = await client.request({ cmd: 'dial', path: ctx.path, pki: ctx.pki, port })
  const s0 = await server.request({ cmd: 'mem' })
  const c1 = await client.request({ cmd: 'fill', n }, ctx.p.timeoutMs)
  const s1 = await server.request({ cmd: 'mem' })
  // For mux paths the warm-up stream may still be in the server's count; allow it.
  const open = s1.streams ?? 0
  if (open < n || open > n + (isMux(ctx.path) ? 1 : 0)) {
    throw new Error(`server holds ${open} streams, expected ${n}`)
  }
  const grow = (k: 'heapUsed' | 'rss') => c1.mem![k] - c0.mem![k] + (s1.mem![k] - s0.mem![k])
  return { heap: grow('heapUsed') / n, rss: grow('rss') / n }
}
