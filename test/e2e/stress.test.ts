// Load through the whole path (issue 3): 64 parallel connections x 16 MiB each through the edge's
// raw TCP ingress, the yamux-over-mTLS tunnel and the agent to a target that hashes what arrives,
// with SHA-256 checked both ways; then 2,000 idle tunnelled connections held and released, after
// which every stream, timer and socket on both ends is gone. Edge and agent run in this process
// (over real loopback sockets) so their sessions can be inspected; about 8,000 fds at the peak,
// under this box's RLIMIT_NOFILE of 20,000.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { createHash, randomBytes, randomInt } from 'node:crypto'
import { startEdge, type Edge } from '../../edge/edge.js'
import { startAgent, type Agent } from '../../agent/agent.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { enroll, initEdgeState, tempDir } from './fixtures/procs.js'

const P = '9b2e5c1a-7d4f-4e8b-a1c3-5f6d7e8f9a0b'
const GiB = 1024 ** 3
const MiB = 1024 ** 2
const PARALLEL = 64
const SIZE = 16 * MiB
const IDLE = 2000

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000) {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached in ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const sha = (): ReturnType<typeof createHash> => createHash('sha256')

/** A target that echoes and records the SHA-256 of each connection's upstream bytes. */
async function hashingEcho(tt: Test) {
  const upstream: string[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => s.destroy())
    const h = sha()
    s.on('data', (c: Buffer) => h.update(c))
    s.once('end', () => upstream.push(h.digest('hex')))
    s.pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  tt.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { server, sockets, upstream, port: (server.address() as net.AddressInfo).port }
}

function streamTotals(edge: Edge, agent: Agent, runnerId: string) {
  const e = edge.sessions.sessions(runnerId).map((x) => x.session.stats())
  const a = (agent.connector?.sessions() ?? []).map((x) => x.session.stats())
  const sum = (l: typeof e, k: 'streams' | 'timers') => l.reduce((n, s) => n + s[k], 0)
  return {
    edgeStreams: sum(e, 'streams'),
    agentStreams: sum(a, 'streams'),
    edgeTimers: sum(e, 'timers'),
    agentTimers: sum(a, 'timers'),
    sessions: [e.length, a.length],
  }
}

const connections = (server: net.Server): Promise<number> =>
  new Promise((resolve, reject) =>
    server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  )

/** Sends `data` in random-sized chunks (with backpressure), half-closes, hashes the echo. */
async function bulk(port: number, data: Buffer): Promise<{ sent: string; echoed: string }> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  await once(s, 'connect')
  const echoed = sha()
  let received = 0
  s.on('data', (c: Buffer) => {
    echoed.update(c)
    received += c.length
  })
  const ended = new Promise<void>((resolve, reject) => {
    s.once('end', resolve)
    s.once('error', reject)
    s.once('close', () => reject(new Error(`closed after ${received} echoed bytes`)))
  })
  const sent = sha()
  for (let off = 0; off < data.length;) {
    const chunk = data.subarray(off, off + randomInt(1, 256 * 1024))
    off += chunk.length
    sent.update(chunk)
    if (!s.write(chunk)) await once(s, 'drain')
  }
  s.end()
  await ended
  s.destroy()
  if (received !== data.length) throw new Error(`echoed ${received} of ${data.length} bytes`)
  return { sent: sent.digest('hex'), echoed: echoed.digest('hex') }
}

t.test(
  '64 x 16 MiB with SHA-256 both ways, then 2,000 idle connections leave nothing behind',
  async (tt) => {
    const edgeDir = await tempDir(tt, 'hopgate-stress-edge-')
    const agentDir = await tempDir(tt, 'hopgate-stress-agent-')
    const target = await hashingEcho(tt)
    const { edgeCaFingerprint } = await initEdgeState(edgeDir)
    const edge = await startEdge({
      stateDir: edgeDir,
      tunnelPort: 0,
      tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${target.port}`)],
      heartbeatIntervalMs: 1000,
    })
    tt.teardown(() => edge.close())
    await enroll({
      edgeDir,
      edgeCaFingerprint,
      host: '127.0.0.1',
      port: edge.tunnel.address.port,
      runnerId: 'runner-s',
      agentDir,
    })
    const agent = await startAgent({
      stateDir: agentDir,
      edges: [`127.0.0.1:${edge.tunnel.address.port}`],
      slots: 2,
      projects: { [P]: { host: '127.0.0.1', allowedPorts: [target.port] } },
      report: () => ({
        capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
        storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
      }),
    })
    tt.teardown(() => agent.close())
    await until(() => edge.sessions.sessions('runner-s').length === 2, 'two sessions')
    await until(() => (agent.connector?.sessions() ?? []).length === 2, 'two sessions, agent side')
    const ingress = edge.tcp[0]!
    const baseline = streamTotals(edge, agent, 'runner-s')
    tt.comment(`baseline (control streams and their timers): ${JSON.stringify(baseline)}`)

    // 1. 64 parallel x 16 MiB. Each connection sends a different 16 MiB window of one pool.
    let started = Date.now()
    const pool = randomBytes(SIZE + MiB)
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) => {
        const off = (i * 16411) % MiB
        return bulk(ingress.address.port, pool.subarray(off, off + SIZE))
      }),
    )
    const secs = (Date.now() - started) / 1000
    tt.ok(
      results.every((r) => r.sent === r.echoed),
      `${PARALLEL} x 16 MiB echoed intact (SHA-256 of every download = its upload), ${secs.toFixed(1)} s, ` +
        `${((2 * PARALLEL * SIZE) / MiB / secs).toFixed(0)} MiB/s both ways`,
    )
    await until(() => target.upstream.length === PARALLEL, 'the target saw every upload end')
    tt.same(
      [...target.upstream].sort(),
      results.map((r) => r.sent).sort(),
      'SHA-256 of every upload as the target received it = what the client sent',
    )
    tt.equal(new Set(results.map((r) => r.sent)).size, PARALLEL, 'the 64 payloads all differ')
    await until(
      async () =>
        (await connections(ingress.server)) === 0 &&
        target.sockets.size === 0 &&
        streamTotals(edge, agent, 'runner-s').edgeStreams === baseline.edgeStreams &&
        streamTotals(edge, agent, 'runner-s').agentStreams === baseline.agentStreams,
      'bulk connections gone',
    )

    // 2. 2,000 idle tunnelled connections: each proven live by a one-byte echo, then held.
    started = Date.now()
    const idle: net.Socket[] = []
    for (let batch = 0; batch < IDLE; batch += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, IDLE - batch) }, async () => {
          const s = net.connect(ingress.address.port, '127.0.0.1')
          s.on('error', () => {})
          idle.push(s)
          await once(s, 'connect')
          s.write('i')
          const [c] = (await once(s, 'data')) as [Buffer]
          if (c.toString() !== 'i') throw new Error('bad echo')
        }),
      )
    }
    const held = streamTotals(edge, agent, 'runner-s')
    tt.comment(`opened ${IDLE} in ${Date.now() - started} ms; held: ${JSON.stringify(held)}`)
    tt.equal(held.edgeStreams - baseline.edgeStreams, IDLE, `the edge holds ${IDLE} tunnel streams`)
    tt.equal(
      held.agentStreams - baseline.agentStreams,
      IDLE,
      `the agent holds ${IDLE} tunnel streams`,
    )
    tt.equal(await connections(ingress.server), IDLE, `the ingress holds ${IDLE} sockets`)
    tt.equal(target.sockets.size, IDLE, `the target holds ${IDLE} sockets`)

    // Release: half end gracefully (FIN), half are reset.
    started = Date.now()
    idle.forEach((s, i) => (i % 2 ? s.destroy() : s.end()))
    await until(
      async () => {
        const now = streamTotals(edge, agent, 'runner-s')
        return (
          now.edgeStreams === baseline.edgeStreams &&
          now.agentStreams === baseline.agentStreams &&
          (await connections(ingress.server)) === 0 &&
          target.sockets.size === 0
        )
      },
      'every idle connection released on both ends',
      15_000,
    )
    for (const s of idle) s.destroy()
    const after = streamTotals(edge, agent, 'runner-s')
    tt.comment(`released in ${Date.now() - started} ms; after: ${JSON.stringify(after)}`)
    tt.same(
      after,
      baseline,
      'streams and yamux timers back to the baseline on edge and agent (tunnel streams: 0)',
    )
    tt.equal(await connections(ingress.server), 0, 'no ingress sockets left')
    tt.equal(target.sockets.size, 0, 'no target sockets left')
  },
)
