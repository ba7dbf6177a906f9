// Forwarded vs direct, in one run: two edges in this process sharing one route store and one edge
// registry, one agent with sessions to edge-1 only, an echo target. A connection entering edge-1
// is direct; one entering edge-2 is forwarded over the peer link to edge-1. Measures new-connection
// latency (connect, 1 byte echoed; p50/p99) and single-stream throughput (bytes echoed back).
// Run: node --import tsx bench/forward.ts [--connections 300] [--bytes 64MiB]
import net from 'node:net'
import { once } from 'node:events'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { systemClock } from '../shared/clock.js'
import { initCa } from '../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../certs/enroll.js'
import { wallClock } from '../certs/state.js'
import { EmbeddedStore } from '../edge/routing/embedded-store.js'
import { MemoryEdgeRegistry } from '../edge/cluster/registry.js'
import { startEdge, type Edge } from '../edge/edge.js'
import { startAgent } from '../agent/agent.js'
import { parseTcpMapping } from '../edge/ingress/tcp.js'
import { parseBytes } from './lib/args.js'

const P = '0b5e7c4a-3f1d-4c2a-9e8b-6d7f5a4b3c21'
const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '300' },
    bytes: { type: 'string', default: '64MiB' },
  },
})
const N = Number(values.connections)
const BYTES = parseBytes(values.bytes)

const root = await mkdtemp(join(tmpdir(), 'hopgate-bench-forward-'))
const cleanups: Array<() => Promise<unknown>> = [() => rm(root, { recursive: true, force: true })]
try {
  const echo = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {})
    s.pipe(s)
  })
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  cleanups.unshift(() => new Promise((r) => echo.close(r)))
  const echoPort = (echo.address() as net.AddressInfo).port

  const dirs = [join(root, 'edge-1'), join(root, 'edge-2')]
  await initCa(dirs[0]!, { edgeId: 'edge-1' })
  await mkdir(join(dirs[1]!, 'pki'), { recursive: true, mode: 0o700 })
  for (const f of ['runner-ca.key', 'runner-ca.crt', 'edge-ca.key', 'edge-ca.crt']) {
    await copyFile(join(dirs[0]!, 'pki', f), join(dirs[1]!, 'pki', f))
  }
  await initCa(dirs[1]!, { edgeId: 'edge-2' })
  const store = await EmbeddedStore.open({ stateDir: join(root, 'routes'), clock: systemClock })
  cleanups.unshift(() => store.close())
  const registry = new MemoryEdgeRegistry(systemClock)
  const edges: Edge[] = []
  for (const dir of dirs) {
    const e = await startEdge({
      stateDir: dir,
      tunnelPort: 0,
      routeStore: store,
      tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)],
      cluster: { registry, peerPort: 0, refreshIntervalMs: 100 },
    })
    cleanups.unshift(() => e.close())
    edges.push(e)
  }
  const [e1, e2] = edges as [Edge, Edge]
  const { pki } = await initCa(dirs[0]!)
  const token = await createJoinToken(new FileTokenStore(dirs[0]!), {
    runnerId: 'bench-runner',
    ttlMs: 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  const agentDir = join(root, 'agent')
  const port1 = e1.tunnel.address.port
  await saveRunnerIdentity(agentDir, await joinOverTls({ host: '127.0.0.1', port: port1, token }))
  const GiB = 1024 ** 3
  const agent = await startAgent({
    stateDir: agentDir,
    edges: [`127.0.0.1:${port1}`],
    slots: 1,
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    report: () => ({
      capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
      storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
    }),
  })
  cleanups.unshift(() => agent.close())
  while (e1.sessions.size === 0 || e2.cluster!.member.peers().length === 0) {
    await new Promise((r) => setTimeout(r, 20))
  }

  const connectEcho = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
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
  const throughput = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
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
  const direct = e1.tcp[0]!.address.port
  const forwarded = e2.tcp[0]!.address.port
  // Warm-up: TLS on the peer link, JIT.
  for (let i = 0; i < 30; i++) {
    await connectEcho(direct)
    await connectEcho(forwarded)
  }
  const lat: Record<'direct' | 'forwarded', number[]> = { direct: [], forwarded: [] }
  for (let i = 0; i < N; i++) {
    lat.direct.push(await connectEcho(direct))
    lat.forwarded.push(await connectEcho(forwarded))
  }
  const pct = (xs: number[], p: number): number =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!
  const tput = { direct: [] as number[], forwarded: [] as number[] }
  for (let i = 0; i < 3; i++) {
    tput.direct.push(await throughput(direct))
    tput.forwarded.push(await throughput(forwarded))
  }
  const best = (xs: number[]): number => Math.max(...xs)
  const rows = (['direct', 'forwarded'] as const).map((k) => ({
    path: k,
    'p50 ms': +pct(lat[k], 0.5).toFixed(3),
    'p99 ms': +pct(lat[k], 0.99).toFixed(3),
    'MB/s (1 stream, echo)': +best(tput[k]).toFixed(1),
  }))
  console.table(rows)
  console.log(
    JSON.stringify({
      connections: N,
      bytes: BYTES,
      p50Ratio: +(pct(lat.forwarded, 0.5) / pct(lat.direct, 0.5)).toFixed(3),
      throughputRatio: +(best(tput.forwarded) / best(tput.direct)).toFixed(3),
    }),
  )
} finally {
  for (const c of cleanups) await c().catch(() => {})
}
