// Forwarded vs direct, in one run: two edges sharing one route store and one edge registry, one
// agent with sessions to edge-1 only, an echo target. A connection entering edge-1 is direct; one
// entering edge-2 is forwarded over the peer link to edge-1. Measures new-connection latency
// (connect, 1 byte echoed; p50/p99) and single-stream throughput (bytes echoed back), paths
// interleaved. By default each edge and the agent is its own process on a real Redis store, as
// deployed; --in-process runs everything on this process's thread (the edges on an embedded store).
// Run: node --import tsx bench/forward.ts [--connections 300] [--bytes 64MiB] [--rounds 5]
//        [--store redis://host:port] [--in-process] [--json]
import net from 'node:net'
import { once } from 'node:events'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { parseBytes } from './lib/args.js'
import { startForwardCluster, type ForwardCluster } from './tunnel/forward-cluster.js'
import { treeCpuMs } from './tunnel/mem.js'

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '300' },
    bytes: { type: 'string', default: '64MiB' },
    rounds: { type: 'string', default: '5' },
    store: { type: 'string' },
    'in-process': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
})
const N = Number(values.connections)
const BYTES = parseBytes(values.bytes)
const ROUNDS = Number(values.rounds)
if (!(N > 0) || !(ROUNDS > 0)) throw new Error('--connections and --rounds must be positive')
const say = (line: string): void => void process.stderr.write(`${line}\n`)

function connectEcho(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const c = net.connect({ port, host: '127.0.0.1' })
    c.setNoDelay(true)
    c.once('error', reject)
    c.once('connect', () => c.write('x'))
    c.once('data', () => {
      resolve(performance.now() - t0)
      c.destroy()
    })
  })
}

function throughput(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    const chunk = Buffer.alloc(256 * 1024, 7)
    let got = 0
    let t0 = 0
    c.once('error', reject)
    c.on('data', (d: Buffer) => {
      got += d.length
      if (got >= BYTES) {
        resolve(BYTES / 1e6 / ((performance.now() - t0) / 1000))
        c.destroy()
      }
    })
    const send = async (): Promise<void> => {
      t0 = performance.now()
      for (let sent = 0; sent < BYTES; sent += chunk.length) {
        if (!c.write(chunk)) await once(c, 'drain')
      }
    }
    c.once('connect', () => void send().catch(reject))
  })
}

const pct = (xs: number[], p: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!
const median = (xs: number[]): number => pct(xs, 0.5)
const PATHS = ['direct', 'forwarded'] as const
type PathName = (typeof PATHS)[number]
export interface PathResult {
  p50Ms: number
  p99Ms: number
  /** Median over the rounds; bestMBps the fastest round. */
  MBps: number
  bestMBps: number
  /** CPU (user + system) per MiB echoed, by process: bench, edge1, edge2, agent. */
  cpuMsPerMiB: Record<string, number>
}
/** The --json line. */
export interface ForwardBenchJson {
  mode: 'processes' | 'in-process'
  connections: number
  bytes: number
  rounds: number
  direct: PathResult
  forwarded: PathResult
  p50Ratio: number
  throughputRatio: number
  loadavg: number[]
}

const echo = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {})
  s.pipe(s)
})
echo.listen(0, '127.0.0.1')
await once(echo, 'listening')
let cluster: ForwardCluster | undefined
try {
  say(`starting ${values['in-process'] ? 'in-process' : 'edge and agent processes'}...`)
  cluster = await startForwardCluster({
    targetPort: (echo.address() as net.AddressInfo).port,
    inProcess: values['in-process'],
    ...(values.store !== undefined && { store: values.store }),
  })
  const ports: Record<PathName, number> = { direct: cluster.direct, forwarded: cluster.forwarded }
  // Warm-up: TLS on the peer link, JIT. The first forwarded tries may race edge-2 learning of
  // edge-1 (its registry refresh), so they are retried for a while.
  const warm = Date.now() + 15_000
  for (let i = 0; i < 30; i++) {
    for (const p of PATHS) {
      for (;;) {
        const ok = await connectEcho(ports[p]).then(
          () => true,
          (err: unknown) => {
            if (Date.now() > warm) throw err
            return false
          },
        )
        if (ok) break
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }
  const lat: Record<PathName, number[]> = { direct: [], forwarded: [] }
  for (let i = 0; i < N; i++) for (const p of PATHS) lat[p].push(await connectEcho(ports[p]))
  say(`latency: ${N} connections per path done`)

  // CPU per MiB echoed, per process: where the forwarded path's extra cost lands.
  const procs = { bench: process.pid, ...cluster.pids }
  type ProcName = keyof typeof procs
  const cpuNow = (): Record<string, number> =>
    Object.fromEntries(
      Object.entries(procs).map(([k, pid]) => [
        k,
        pid === process.pid ? cpuMsSelf() : treeCpuMs(pid),
      ]),
    )
  const tput: Record<PathName, number[]> = { direct: [], forwarded: [] }
  const cpu: Record<PathName, Record<string, number[]>> = { direct: {}, forwarded: {} }
  for (let i = 0; i < ROUNDS; i++) {
    for (const p of PATHS) {
      const c0 = cpuNow()
      tput[p].push(await throughput(ports[p]))
      const c1 = cpuNow()
      for (const k of Object.keys(procs) as ProcName[]) {
        ;(cpu[p][k] ??= []).push(((c1[k]! - c0[k]!) * 1024 * 1024) / BYTES)
      }
      say(`${p} round ${i + 1}: ${tput[p].at(-1)!.toFixed(1)} MB/s`)
    }
  }
  const result = Object.fromEntries(
    PATHS.map((p) => [
      p,
      {
        p50Ms: +median(lat[p]).toFixed(3),
        p99Ms: +pct(lat[p], 0.99).toFixed(3),
        MBps: +median(tput[p]).toFixed(1),
        bestMBps: +Math.max(...tput[p]).toFixed(1),
        cpuMsPerMiB: Object.fromEntries(
          Object.entries(cpu[p]).map(([k, xs]) => [k, +median(xs).toFixed(2)]),
        ),
      },
    ]),
  ) as Record<PathName, PathResult>
  const p50Ratio = +(result.forwarded.p50Ms / result.direct.p50Ms).toFixed(3)
  const throughputRatio = +(result.forwarded.MBps / result.direct.MBps).toFixed(3)
  if (values.json) {
    const line: ForwardBenchJson = {
      mode: cluster.mode,
      connections: N,
      bytes: BYTES,
      rounds: ROUNDS,
      ...result,
      p50Ratio,
      throughputRatio,
      loadavg: loadavg(),
    }
    process.stdout.write(JSON.stringify(line) + '\n')
  } else {
    console.table(
      PATHS.map((p) => ({
        path: p,
        'p50 ms': result[p].p50Ms,
        'p99 ms': result[p].p99Ms,
        [`MB/s (1 stream echo, median of ${ROUNDS})`]: result[p].MBps,
      })),
    )
    const cpuLine = (p: PathName): string =>
      Object.entries(result[p].cpuMsPerMiB)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    console.log(`mode: ${cluster.mode}`)
    console.log(`CPU ms per MiB echoed, direct: ${cpuLine('direct')}`)
    console.log(`CPU ms per MiB echoed, forwarded: ${cpuLine('forwarded')}`)
    console.log(
      `forwarded/direct: p50 ${p50Ratio}x (target <= 1.3), throughput ${throughputRatio}x (target >= 0.7)`,
    )
  }
} finally {
  await cluster?.close()
  await new Promise((r) => echo.close(r))
}

function cpuMsSelf(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}
