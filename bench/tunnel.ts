// `hopgate bench` (also `node --import tsx bench/tunnel.ts`): the whole tunnel, end to end, next
// to what it replaces. For each path a fresh set of processes per metric: client (this process) →
// middle process(es) → target (bench/lib/server.ts). hopgate: edge process → agent process (yamux
// over mutual TLS); raw-tcp: none; node-proxy: one Node TCP hop; tls-2hop: relay A → mutual TLS 1.3
// per connection → relay B; ssh-R: sshd + `ssh -R`, aes128-gcm. Progress on stderr, a table (or
// with --json one line) on stdout. Measurements and protocol are bench/lib's.
import { MiB, parseBytes } from './lib/args.js'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { parseArgs } from 'node:util'
import { makeTestPki } from '../certs/testing.js'
import { dial, type Dialer, type Pki } from './lib/links.js'
import * as measure from './lib/measure.js'
import { serveStream } from './lib/protocol.js'
import { Child } from './lib/procs.js'
import { env, formatTable, median } from './lib/report.js'
import { treeCpuMs } from './tunnel/mem.js'
import { setup, TUNNEL_PATHS, unavailable, type TunnelPath } from './tunnel/paths.js'

const METRICS = [
  'throughputMBps',
  'throughputDownMBps',
  'throughput8MBps',
  'rttP50Us',
  'rttP99Us',
  'connPerSec',
  'connCpuUs',
  'idleKiBPerConn',
  'idleRssKiBPerConn',
] as const
type Metric = (typeof METRICS)[number]
export type Row = { name: TunnelPath } & Record<Metric, number | null>

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    bytes: { type: 'string' },
    paths: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    edge: { type: 'string' },
    'serve-target': { type: 'string' },
    metrics: { type: 'string' },
    timeout: { type: 'string', default: '90' },
  },
})
const quick = flags.quick ?? false
const params: measure.Params = {
  bytes: flags.bytes ? parseBytes(flags.bytes) : (quick ? 16 : 256) * MiB,
  rttWarmup: quick ? 200 : 1000,
  rttCount: quick ? 2000 : 10_000,
  idleStreams: quick ? 200 : 1000,
  opensMs: quick ? 500 : 2000,
  inflight: 8,
  timeoutMs: Number(flags.timeout) * 1000,
}
const rounds = Math.max(1, Number(flags.rounds) | 0)
const external = flags.edge ? parseEdge(flags.edge) : undefined
const paths: TunnelPath[] = external
  ? ['hopgate']
  : (flags.paths ? flags.paths.split(',').map((s) => s.trim()) : [...TUNNEL_PATHS]).map((p) => {
      if ((TUNNEL_PATHS as readonly string[]).includes(p)) return p as TunnelPath
      throw new Error(`unknown path ${p}; known: ${TUNNEL_PATHS.join(',')}`)
    })

function parseEdge(s: string, what = "--edge wants host:port (an edge's TCP ingress)") {
  const m = /^(.+):(\d{1,5})$/.exec(s)
  if (!m) throw new Error(`${what}, got ${s}`)
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) }
}

const log = (msg: string) => process.stderr.write(`${msg}\n`)
process.on('unhandledRejection', (e) => log(`  (stray rejection: ${String(e)})`))
process.on('uncaughtException', (e) => log(`  (stray exception: ${e.message})`))

/** A plain TCP connection per stream to an existing edge's ingress (any host). */
function externalDialer(host: string, port: number): Dialer {
  const socks = new Set<net.Socket>()
  return {
    open: () =>
      new Promise<Duplex>((resolve, reject) => {
        const s = net.connect({ host, port })
        s.once('error', reject)
        s.once('connect', () => {
          s.off('error', reject)
          s.setNoDelay(true)
          socks.add(s)
          s.once('close', () => socks.delete(s))
          resolve(s)
        })
      }),
    close: () => {
      for (const s of socks) s.destroy()
    },
  }
}

function ctxFor(path: TunnelPath, pki: Pki): measure.Ctx {
  return {
    path: 'tcp',
    pki,
    p: params,
    cleanups: [],
    connect: async (c) => {
      let d: Dialer
      if (external) {
        d = externalDialer(external.host, external.port)
        middlePids = []
      } else {
        const topo = await setup(path, pki, c.cleanups)
        d = await dial('tcp', topo.port, pki)
        middlePids = topo.pids
      }
      c.cleanups.unshift(() => d.close())
      return d
    },
  }
}
/** The middle processes of the path the last connect() set up (none for an external edge). */
let middlePids: number[] = []

/** Connections per second, and the middle processes' CPU per connection (µs) while they ran. */
async function connRate(c: measure.Ctx): Promise<(number | null)[]> {
  const d = await c.connect!(c)
  const cpu = () => middlePids.reduce((sum, pid) => sum + treeCpuMs(pid), 0)
  const before = cpu()
  const { perSec, done } = await measure.countOpens({ ...c, connect: async () => d })
  const spent = cpu() - before
  return [perSec, middlePids.length && done ? (spent * 1000) / done : null]
}

/**
 * KiB per idle, echo-verified connection in the middle processes (for hopgate: edge and agent
 * together), connections held by a separate client child: [heap + external after forced GCs
 * (Node middles; RSS for ssh -R, which is not Node), RSS].
 */
async function idleKiB(path: TunnelPath, ctx: measure.Ctx): Promise<(number | null)[]> {
  if (external || path === 'raw-tcp') return [null, null]
  const topo = await setup(path, ctx.pki, ctx.cleanups)
  const client = Child.spawn('idle-client.ts')
  ctx.cleanups.push(() => client.kill())
  // The warm-up connection (JIT, lazy tables, first stream) happens before the baseline.
  await client.request({ cmd: 'dial', path: 'tcp', pki: ctx.pki, port: topo.port })
  await new Promise((r) => setTimeout(r, 300))
  const before = await topo.middleMem!()
  const n = params.idleStreams
  const filled = await client.request({ cmd: 'fill', n }, params.timeoutMs)
  if (filled.streams !== n) throw new Error(`client holds ${filled.streams} connections, not ${n}`)
  const held = (await topo.target.request({ cmd: 'mem' })).streams ?? 0
  if (held < n) throw new Error(`target sees ${held} connections, expected ${n}`)
  await new Promise((r) => setTimeout(r, 300))
  const after = await topo.middleMem!()
  const kib = (a: number, b: number) => (a - b) / n / 1024
  const rss = kib(after.rss, before.rss)
  const js = after.js === null || before.js === null ? null : kib(after.js, before.js)
  if (after.external && before.external) {
    const ext = after.external.map((e, i) => kib(e, before.external![i]!).toFixed(2))
    log(`  ${path}: external (Buffers) KiB/conn per middle process: ${ext.join(' + ')}`)
  }
  return [js ?? rss, rss]
}

type Task = [
  label: string,
  metrics: Metric[],
  run: (p: TunnelPath, c: measure.Ctx) => Promise<(number | null)[]>,
]
const TASKS: Task[] = [
  ['MB/s up, 1 stream', ['throughputMBps'], async (_, c) => [await measure.throughput(c, 1, 'up')]],
  [
    'MB/s down, 1 stream',
    ['throughputDownMBps'],
    async (_, c) => [await measure.throughput(c, 1, 'down')],
  ],
  ['MB/s up, 8 streams', ['throughput8MBps'], async (_, c) => [await measure.throughput(c, 8)]],
  [
    'RTT p50/p99 µs',
    ['rttP50Us', 'rttP99Us'],
    async (_, c) => {
      const r = await measure.rtt(c)
      return [r.p50, r.p99]
    },
  ],
  ['conn/s, middle CPU µs/conn', ['connPerSec', 'connCpuUs'], (_, c) => connRate(c)],
  ['idle KiB/conn heap+ext / RSS', ['idleKiBPerConn', 'idleRssKiBPerConn'], idleKiB],
]

/** `--metrics up,down,8,rtt,conn,idle`: a subset of the tasks (default all). */
const TASK_KEYS = ['up', 'down', '8', 'rtt', 'conn', 'idle'] as const
const wanted = flags.metrics?.split(',').map((m) => m.trim()) ?? [...TASK_KEYS]
for (const m of wanted) {
  if (!(TASK_KEYS as readonly string[]).includes(m)) {
    throw new Error(`unknown metric ${m}; known: ${TASK_KEYS.join(',')}`)
  }
}
const tasks = TASKS.filter((_, i) => wanted.includes(TASK_KEYS[i]!))

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

const DIGITS: Record<Metric, number> = {
  throughputMBps: 1,
  throughputDownMBps: 1,
  throughput8MBps: 1,
  rttP50Us: 1,
  rttP99Us: 1,
  connPerSec: 0,
  connCpuUs: 0,
  idleKiBPerConn: 1,
  idleRssKiBPerConn: 1,
}
const HEADERS = [
  'path',
  'MB/s up',
  'MB/s down',
  'MB/s 8',
  'RTT p50 µs',
  'RTT p99 µs',
  'conn/s',
  'CPU µs/conn',
]

function ratioLines(rows: Row[]): string {
  const by = (n: TunnelPath) => rows.find((r) => r.name === n)
  const h = by('hopgate')
  const div = (a: number | null | undefined, b: number | null | undefined) =>
    a == null || b == null ? 'n/a' : `${(a / b).toFixed(2)}x`
  const kib = h?.idleKiBPerConn
  return [
    `hopgate/tls-2hop single-stream up:   ${div(h?.throughputMBps, by('tls-2hop')?.throughputMBps)} (target >= 1.0x)`,
    `hopgate/ssh-R single-stream up:      ${div(h?.throughputMBps, by('ssh-R')?.throughputMBps)} (heading for >= 1.0x)`,
    `hopgate/node-proxy conn/s:           ${div(h?.connPerSec, by('node-proxy')?.connPerSec)} (target >= 0.9x)`,
    `hopgate/ssh-R p50 RTT:               ${div(h?.rttP50Us, by('ssh-R')?.rttP50Us)} (target <= 1.0x)`,
    `hopgate/tls-2hop p50 RTT:            ${div(h?.rttP50Us, by('tls-2hop')?.rttP50Us)}`,
    `hopgate/ssh-R single-stream down:    ${div(h?.throughputDownMBps, by('ssh-R')?.throughputDownMBps)}`,
    `hopgate/node-proxy CPU per conn:     ${div(h?.connCpuUs, by('node-proxy')?.connCpuUs)} (edge+agent vs one hop)`,
    `hopgate idle KiB/conn (edge+agent):  ${kib == null ? 'n/a' : kib.toFixed(1)} heap+external, ${h?.idleRssKiBPerConn == null ? 'n/a' : h.idleRssKiBPerConn.toFixed(1)} RSS (target <= 16)`,
  ].join('\n')
}

async function main() {
  const pki = makeTestPki()
  const samples = new Map<TunnelPath, Record<Metric, { values: number[]; errors: number }>>()
  const notes: Record<string, string[]> = {}
  for (const p of paths) {
    samples.set(p, Object.fromEntries(METRICS.map((m) => [m, { values: [], errors: 0 }])) as never)
    notes[p] = []
    const why = external ? null : unavailable(p)
    if (why) notes[p].push(why)
  }
  if (external) notes.hopgate!.push(`external edge ${flags.edge}; idle memory not measured`)
  for (let round = 1; round <= rounds; round++) {
    for (const path of paths) {
      if (notes[path]!.length && !external) continue // unavailable here
      for (const [label, metrics, run] of tasks) {
        const ctx = ctxFor(path, pki)
        const tag = `[${round}/${rounds}] ${path} ${label}`
        try {
          const vals = await withTimeout(run(path, ctx), params.timeoutMs)
          metrics.forEach((m, i) => {
            const v = vals[i]
            if (v != null) samples.get(path)![m].values.push(v)
          })
          log(`${tag}: ${vals.map((v) => (v == null ? 'n/a' : v.toFixed(1))).join(' / ')}`)
        } catch (err) {
          for (const m of metrics) samples.get(path)![m].errors++
          log(`${tag}: error: ${(err as Error).message}`)
        } finally {
          for (const c of ctx.cleanups) c()
        }
      }
    }
  }
  const rows: Row[] = paths.map((name) => {
    const s = samples.get(name)!
    const row = { name } as Row
    for (const m of METRICS) {
      const v = median(s[m].values)
      row[m] = v === null ? null : Number(v.toFixed(DIGITS[m]))
      if (s[m].errors > 0) notes[name]!.push(`${m}: ${s[m].errors} error(s)`)
    }
    return row
  })
  if (flags.json) {
    const out = {
      paths: rows,
      notes: Object.fromEntries(Object.entries(notes).filter(([, v]) => v.length)),
      env: env(),
      params: { ...params, rounds, quick, paths, metrics: wanted, edge: flags.edge ?? null },
    }
    process.stdout.write(`${JSON.stringify(out)}\n`)
    return
  }
  const lines = [[...HEADERS, 'idle KiB/conn', 'idle RSS KiB/conn', 'note']]
  for (const r of rows) {
    const cells = METRICS.map((m) => (r[m] === null ? 'n/a' : r[m].toFixed(DIGITS[m])))
    lines.push([r.name, ...cells, notes[r.name]!.join('; ')])
  }
  const mib = (params.bytes / MiB).toFixed(params.bytes % MiB ? 2 : 0)
  process.stdout.write(
    `${formatTable(lines)}\n\n${ratioLines(rows)}\n\n` +
      `bulk ${mib} MiB, RTT ${params.rttCount} x 64 B, ${params.idleStreams} idle connections ` +
      `(middle processes' heap+external after GC; RSS), conn/s ${params.opensMs} ms x ${params.inflight} in flight, ` +
      `${rounds} round(s)${rounds > 1 ? ' (median)' : ''}\n`,
  )
}

/**
 * `--serve-target host:port`: only the bench target ('U'/'D'/'E'), for measuring a deployed edge:
 * run it next to an agent, allow its port for a project, map an edge `--tcp` port to it, and
 * point `--edge` at that. Prints one JSON line with the bound address; runs until a signal.
 */
async function serveTarget(spec: string): Promise<never> {
  const { host, port } = parseEdge(spec, '--serve-target wants host:port')
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.setNoDelay(true)
    serveStream(sock)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const a = server.address() as net.AddressInfo
  process.stdout.write(`${JSON.stringify({ event: 'ready', target: `${a.address}:${a.port}` })}\n`)
  return new Promise<never>(() => {})
}

;(flags['serve-target'] ? serveTarget(flags['serve-target']) : main()).then(
  () => process.exit(0),
  (err: unknown) => {
    log(`bench failed: ${String(err)}`)
    process.exit(1)
  },
)
